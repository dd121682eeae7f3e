//! The Graylog kit end to end: `scripts/graylog-provision.sh` against a
//! stand-in for Graylog's REST API and GELF TCP input
//! (`tests/scripts/graylog_standin.py`; no Graylog can run here), then a real
//! node shipping to the input the pack created, found by a search for its
//! request id.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use e2e::node::{self, free_port_run, post_json, root, Node};
use serde_json::{json, Value};

const PASSWORD: &str = "provision-test-secret";

/// The stand-in on `port`, reporting Graylog `version`; ALIVE after 2 s.
struct StandIn {
    child: Child,
    port: u16,
}

impl StandIn {
    fn start(port: u16, version: &str) -> Self {
        let child = Command::new("python3")
            .arg(root().join("tests/scripts/graylog_standin.py"))
            .args(["--port", &port.to_string(), "--version", version])
            .args(["--password", PASSWORD, "--ready-after", "2"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the Graylog stand-in");
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> Value {
        let r = node::http(self.port, "GET", "/standin/state", &[], b"");
        serde_json::from_slice(&r.body).expect("stand-in state")
    }

    fn search(&self, query: &str) -> Value {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"))
        );
        let body =
            json!({"query": query, "fields": ["node_id", "request_id", "duration_ms"], "size": 10});
        let r = node::http(
            self.port,
            "POST",
            "/api/search/messages",
            &[
                ("Authorization", auth.as_str()),
                ("X-Requested-By", "test"),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).expect("search answer")
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provision(standin: &StandIn, gelf_port: u16, password: &str) -> Output {
    let out = Command::new(root().join("scripts/graylog-provision.sh"))
        .arg(standin.url())
        .env("GRAYLOG_PASSWORD", password)
        .env("GELF_PORT", gelf_port.to_string())
        .env("GRAYLOG_WAIT_S", "30")
        .env("TTS_NODE_BIN", node::node_bin())
        .output()
        .expect("run graylog-provision.sh");
    eprintln!(
        "$ scripts/graylog-provision.sh {}\n{}{}",
        standin.url(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn count(state: &Value, key: &str) -> usize {
    match &state[key] {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        v => v.as_u64().unwrap_or(0) as usize,
    }
}

fn provisions_idempotently(version: &str) -> (StandIn, u16) {
    let base = free_port_run(2);
    let standin = StandIn::start(base, version);
    let gelf_port = base + 1;

    let first = provision(&standin, gelf_port, PASSWORD);
    assert!(first.status.success(), "first provisioning failed");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("installed revision 1"), "{stdout}");
    assert!(stdout.contains("found the test event"), "{stdout}");
    // The test event came through the layer (it adds `target`, and the
    // node's static fields), with the node id the script gives it.
    let through_layer =
        standin.search("node_id:graylog-provision AND _exists_:target AND service:tts-node");
    assert_eq!(through_layer["datarows"].as_array().map(Vec::len), Some(1));
    let state = standin.state();
    assert_eq!(count(&state, "installations"), 1);
    assert_eq!(count(&state, "inputs"), 1);
    assert_eq!(state["inputs"][0]["port"], gelf_port);
    assert_eq!(
        count(&state, "streams"),
        4,
        "three node streams and the errors stream"
    );
    let paused: Vec<_> = state["streams"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["paused"] != false)
        .collect();
    assert!(paused.is_empty(), "streams left paused: {paused:?}");

    let again = provision(&standin, gelf_port, PASSWORD);
    assert!(again.status.success(), "second provisioning failed");
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("already uploaded"), "{stdout}");
    assert!(stdout.contains("already installed"), "{stdout}");
    let state = standin.state();
    assert_eq!(count(&state, "installations"), 1, "no second copy");
    assert_eq!(count(&state, "inputs"), 1, "no second input");
    assert_eq!(count(&state, "streams"), 4);

    let refused = provision(&standin, gelf_port, "wrong-password");
    assert!(
        !refused.status.success(),
        "a refused login fails the script"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    (standin, gelf_port)
}

#[test]
fn provisioning_7x_is_idempotent_and_a_node_lands_in_the_pack_input() {
    let _serial = node::serial();
    let (standin, gelf_port) = provisions_idempotently("7.1.7");
    let n = Node::start(
        "graylog-kit",
        &[
            ("GELF_ENDPOINT", format!("tcp://127.0.0.1:{gelf_port}")),
            ("NODE_ID", "tts-node-02".to_string()),
        ],
    );
    let r = post_json(
        n.port,
        "/api/tts",
        &json!({"text": "Hello Graylog."}),
        &[("X-Request-Id", "kit-request-1")],
    );
    assert_eq!(r.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let found = standin.search("request_id:kit-request-1 AND _exists_:duration_ms");
        let rows = found["datarows"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        rows.len(),
        1,
        "one completion event for the request: {rows:?}"
    );
    assert_eq!(rows[0][0], "tts-node-02");
    assert!(rows[0][2].as_f64().is_some_and(|d| d > 0.0));
}

#[test]
fn provisioning_6x_sends_the_bare_install_request() {
    // Serial: two stand-ins started at once could pick the same free ports.
    let _serial = node::serial();
    provisions_idempotently("6.1.4");
}
