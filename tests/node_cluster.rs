//! Three real nodes behind the real HAProxy front (scripts/start-cluster.sh),
//! shipping GELF to a receiver that applies Graylog's rules: steady load
//! while nodes are killed and restarted, request ids end to end, and
//! streaming through the front.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::cluster::Cluster;
use e2e::node::{self, events_where, post_streamed, try_http, Response, TEN_SENTENCES};
use e2e::{field_str, short_message, GelfReceiver};
use serde_json::json;

const COMPLETED: &str = "Audio generation completed";

const TEXTS: [&str; 4] = [
    "Your order has been shipped.",
    "The meeting starts in five minutes.",
    "Please hold while I transfer your call.",
    "The temperature outside is twelve degrees.",
];

/// One request of the load, as the client saw it.
struct Outcome {
    /// When it was sent, from the start of the load.
    sent: Duration,
    /// The `X-Request-Id` the client sent, if any.
    client_id: Option<String>,
    result: Result<Response, String>,
}

/// Sends one request every `period` for `at_least`, and on until `until`
/// says stop; each from its own thread so a slow answer never delays the
/// next request (a steady rate, as clients of a service send).
fn steady_load(
    port: u16,
    period: Duration,
    at_least: Duration,
    until: Arc<Mutex<bool>>,
) -> Vec<Outcome> {
    let t0 = Instant::now();
    let mut handles = Vec::new();
    let mut i = 0usize;
    while t0.elapsed() < at_least || !*until.lock().unwrap_or_else(|p| p.into_inner()) {
        let due = period * i as u32;
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            thread::sleep(wait);
        }
        let sent = t0.elapsed();
        // Half the clients send their own request id; the front makes the others.
        let client_id = i.is_multiple_of(2).then(|| format!("load-{i}"));
        let text = TEXTS[i % TEXTS.len()];
        handles.push(thread::spawn(move || {
            let body = json!({ "text": text }).to_string();
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(id) = &client_id {
                headers.push(("X-Request-Id", id.as_str()));
            }
            let result = try_http(port, "POST", "/api/tts", &headers, body.as_bytes());
            Outcome {
                sent,
                client_id,
                result,
            }
        }));
        i += 1;
    }
    handles
        .into_iter()
        .map(|h| h.join().expect("a load thread"))
        .collect()
}

#[test]
fn three_nodes_behind_the_front_lose_no_request_while_nodes_die_and_restart() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let cluster = Cluster::start(
        "cluster",
        3,
        &[
            ("GELF_ENDPOINT", rx.endpoint()),
            // Three nodes share two cores: one engine thread each.
            ("TTS_THREADS_PER_WORKER", "1".to_string()),
        ],
    );
    let lb = cluster.lb_port;
    let master = cluster.front_pid().expect("the front's PID file");
    assert_eq!(cluster.front_masters(), vec![master], "one HAProxy master");
    let status = cluster.script("status.sh", &["--all"], &[]);
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "status.sh --all: {report}");
    for i in 1..=3 {
        let line = format!(
            "{} 127.0.0.1:{}: UP",
            cluster.node_id(i),
            cluster.node_port(i)
        );
        assert!(
            report.contains(&line),
            "status.sh shows node {i} UP behind the front: {report}"
        );
    }

    // 60 s of load, 4 requests a second, while the control thread below
    // kills node 1 (kill -9) and starts it again, restarts node 2 with
    // stop.sh / start.sh, and reruns start-cluster.sh (every node replaced
    // in turn, the front reloaded in place).
    let done = Arc::new(Mutex::new(false));
    let load = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            steady_load(
                lb,
                Duration::from_millis(250),
                Duration::from_secs(60),
                done,
            )
        })
    };
    let t0 = Instant::now();
    let at = |s: u64| {
        if let Some(w) = Duration::from_secs(s).checked_sub(t0.elapsed()) {
            thread::sleep(w);
        }
    };
    let mut timeline = Vec::new();
    at(8);
    let pid1 = cluster.node_pid(1).expect("node 1's PID");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid1.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    timeline.push(format!("{:?}: node 1 killed (PID {pid1})", t0.elapsed()));
    at(12);
    let out = cluster.script("start.sh", &[], &cluster.node_env(1));
    assert!(out.status.success(), "start.sh of node 1 after kill -9");
    timeline.push(format!("{:?}: node 1 started again", t0.elapsed()));
    at(24);
    let out = cluster.script("stop.sh", &[&cluster.node_port(2).to_string()], &[]);
    assert!(out.status.success(), "stop.sh of node 2");
    let out = cluster.script("start.sh", &[], &cluster.node_env(2));
    assert!(out.status.success(), "start.sh of node 2");
    timeline.push(format!("{:?}: node 2 restarted", t0.elapsed()));
    at(36);
    let out = cluster.script("start-cluster.sh", &["3"], &[]);
    assert!(out.status.success(), "start-cluster.sh 3, a second time");
    timeline.push(format!("{:?}: start-cluster.sh rerun", t0.elapsed()));
    *done.lock().unwrap_or_else(|p| p.into_inner()) = true;
    let outcomes = load.join().expect("the load thread");
    eprintln!("{}", timeline.join("\n"));

    assert_eq!(
        cluster.front_masters(),
        vec![master],
        "the rerun reloaded the same HAProxy master, it started no second one"
    );
    assert!(outcomes.len() >= 240, "{} requests sent", outcomes.len());
    let mut failed = Vec::new();
    let mut ok = Vec::new();
    for o in &outcomes {
        match &o.result {
            Ok(r) if r.status == 200 => ok.push((o, r)),
            Ok(r) => failed.push(format!(
                "{:?}: {} {}",
                o.sent,
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => failed.push(format!("{:?}: {e}", o.sent)),
        }
    }
    // At 4 requests a second three nodes are never all saturated: every
    // request must succeed, also those that met a dead or stopping node.
    assert!(
        failed.is_empty(),
        "{} of {} requests failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );

    let events = events_where(&rx, ok.len(), |m| short_message(m) == COMPLETED);
    let mut by_id: HashMap<&str, Vec<&gelf_tracing::graylog::Accepted>> = HashMap::new();
    for e in &events {
        if let Some(id) = field_str(e, "request_id") {
            by_id.entry(id).or_default().push(e);
        }
    }
    let log = cluster.front_log();
    let mut served = HashMap::<String, usize>::new();
    for (o, r) in &ok {
        let rid = r.header("x-request-id").expect("X-Request-Id");
        let node_id = r.header("x-node-id").expect("X-Node-Id");
        match &o.client_id {
            Some(id) => assert_eq!(rid, id, "the client's sane id is kept"),
            None => assert_eq!(rid.len(), 36, "a UUID made by the front: {rid}"),
        }
        let mine = by_id.get(rid).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(mine.len(), 1, "exactly one completion event for {rid}");
        assert_eq!(field_str(mine[0], "node_id"), Some(node_id), "{rid}");
        assert!(
            log.contains(&format!("rid={rid} node={node_id} ")),
            "HAProxy's log has {rid} served by {node_id}"
        );
        *served.entry(node_id.to_owned()).or_default() += 1;
    }
    eprintln!("requests served per node: {served:?}");
    assert_eq!(served.len(), 3, "every node served some: {served:?}");
    // A node that is loading answers NOT_READY (and logs it): none did, so
    // the front sent nothing to a node before its /readyz said ready.
    let not_ready: Vec<_> = rx
        .lock()
        .accepted
        .iter()
        .filter(|m| field_str(m, "error_code") == Some("NOT_READY"))
        .map(|m| {
            format!(
                "{:?} {:?}",
                field_str(m, "node_id"),
                field_str(m, "request_id")
            )
        })
        .collect();
    assert!(
        not_ready.is_empty(),
        "requests reached loading nodes: {not_ready:?}"
    );
    // Through restarts and kill -9 too, nodes sent only catalogued fields.
    node::assert_fields_catalogued(&rx);

    // Streaming through the front: the first audio within 50 ms of what a
    // node alone gives (medians of 5, the two alternated).
    let req = json!({"text": TEN_SENTENCES, "stream": true, "format": "pcm"});
    let mut front = Vec::new();
    let mut alone = Vec::new();
    for _ in 0..5 {
        for (port, into) in [(lb, &mut front), (cluster.node_port(3), &mut alone)] {
            let s = post_streamed(port, "/api/tts", &req, None);
            assert_eq!(s.status, 200);
            assert!(s.complete, "the stream ends with its final chunk");
            assert_eq!(s.header("transfer-encoding"), Some("chunked"));
            let first = s.arrivals.first().expect("some audio").0;
            let last = s.arrivals.last().expect("some audio").0;
            assert!(
                s.arrivals.len() > 1 && last > first + Duration::from_millis(100),
                "audio arrives as it is made, not at once: {:?}",
                s.arrivals
            );
            into.push(first);
        }
    }
    front.sort();
    alone.sort();
    eprintln!("time to first audio: through the front {front:?}, node alone {alone:?}");
    assert!(
        front[2] <= alone[2] + Duration::from_millis(50),
        "the front adds more than 50 ms to the first audio: median {:?} against {:?}",
        front[2],
        alone[2]
    );

    stop_and_check(&cluster);
}

/// Stops the cluster with `stop.sh --all` and checks that nothing of it runs.
fn stop_and_check(cluster: &Cluster) {
    let out = cluster.script("stop.sh", &["--all"], &[]);
    assert!(out.status.success(), "stop.sh --all");
    assert!(cluster.front_masters().is_empty(), "no HAProxy left");
    for i in 1..=cluster.n {
        assert!(
            node::node_pids_on_port(cluster.node_port(i)).is_empty(),
            "no node left on {}",
            cluster.node_port(i)
        );
    }
    let status = cluster.script("status.sh", &["--all"], &[]);
    assert!(
        !status.status.success(),
        "status.sh reports nothing running"
    );
}
