//! The HAProxy front against the nodes alone: requests/s and latency at 1, 2
//! and 3 nodes on the same load, in one run.
//!
//! ```text
//! cargo bench -p e2e --bench cluster_load -- [--requests 60] [--concurrency 6] [--nodes 3]
//! ```
//!
//! For each node count it starts a cluster with scripts/start-cluster.sh
//! (release build, the default voices and haproxy needed), then sends the
//! same closed-loop load twice: through the front (one URL, HAProxy picks
//! the node), and straight to the nodes (each client request to the next
//! node in turn: what a client balancing by itself gets). Every node runs
//! one engine thread, so N nodes use N cores where the machine has them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::cluster::Cluster;
use e2e::node::try_http;

const TEXTS: [&str; 6] = [
    "Hello there, how can I help you today?",
    "Your order has been shipped and will arrive on Tuesday.",
    "The meeting starts in five minutes.",
    "Please hold while I transfer your call.",
    "Thank you for calling, have a nice day.",
    "The temperature outside is twelve degrees.",
];

struct Run {
    rps: f64,
    p50: Duration,
    p95: Duration,
    failed: usize,
}

/// `requests` requests from `concurrency` clients; request `i` goes to
/// `ports[i % ports.len()]`.
fn load(ports: &[u16], requests: usize, concurrency: usize) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let ports = Arc::new(ports.to_vec());
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = Arc::clone(&next);
            let ports = Arc::clone(&ports);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let body = serde_json::json!({"text": TEXTS[i % TEXTS.len()]}).to_string();
                    let t = Instant::now();
                    let r = try_http(
                        ports[i % ports.len()],
                        "POST",
                        "/api/tts",
                        &[("Content-Type", "application/json")],
                        body.as_bytes(),
                    );
                    lat.push(t.elapsed());
                    if !matches!(r, Ok(ref r) if r.status == 200) {
                        failed += 1;
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut failed = 0;
    for w in workers {
        if let Ok((l, f)) = w.join() {
            lat.extend(l);
            failed += f;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Run {
        rps: requests as f64 / wall,
        p50: pct(0.5),
        p95: pct(0.95),
        failed,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut requests = 60usize;
    let mut concurrency = 6usize;
    let mut max_nodes = 3u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<usize>().ok());
        match a.as_str() {
            "--requests" => requests = value().unwrap_or(requests),
            "--concurrency" => concurrency = value().unwrap_or(concurrency),
            "--nodes" => max_nodes = value().map_or(max_nodes, |v| v.clamp(1, 9) as u16),
            _ => {}
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{requests} requests from {concurrency} clients, {cores} cores, one engine thread per node"
    );
    println!("nodes | through the front: req/s, p50, p95 | nodes alone: req/s, p50, p95 | front/alone req/s, p95");
    let mut first_front = None;
    for n in 1..=max_nodes {
        let cluster = Cluster::start(
            &format!("bench-{n}"),
            n,
            &[
                ("TTS_THREADS_PER_WORKER", "1".to_string()),
                ("TTS_QUEUE_SIZE", "64".to_string()),
            ],
        );
        let nodes: Vec<u16> = (1..=n).map(|i| cluster.node_port(i)).collect();
        // Warm-up: each node once.
        load(&nodes, nodes.len(), 1);
        let front = load(&[cluster.lb_port], requests, concurrency);
        let alone = load(&nodes, requests, concurrency);
        let base = *first_front.get_or_insert(front.rps);
        println!(
            "{n} | {:.2} req/s, {:.0} ms, {:.0} ms{} | {:.2} req/s, {:.0} ms, {:.0} ms{} | {:.2}, {:.2} (x{:.2} of one node through the front)",
            front.rps,
            ms(front.p50),
            ms(front.p95),
            if front.failed > 0 { format!(", {} failed", front.failed) } else { String::new() },
            alone.rps,
            ms(alone.p50),
            ms(alone.p95),
            if alone.failed > 0 { format!(", {} failed", alone.failed) } else { String::new() },
            front.rps / alone.rps,
            ms(front.p95) / ms(alone.p95).max(1e-9),
            front.rps / base,
        );
    }
}
