//! Access control in real nodes: HTTPS with a CA made here, API keys with
//! roles and limits driven by OpenAI's Python client (over HTTPS and over
//! plain HTTP on loopback), no key anywhere in what the node emits, SIGHUP
//! reloads of keys and certificate under load, and the refusal to start on
//! a public address without keys.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::node::{self, gelf_env, Node};
use e2e::receivers::TestPki;
use e2e::{field_str, GelfReceiver};

const USER: &str = "user-0d6f1c9a8e2b4f7a9c3e5d1b";
const METRICS: &str = "prom-8a1e3c5b7d9f2a4c6e8b0d2f";
const LIMITED: &str = "slow-3b5d7f9a1c3e5a7c9e1b3d5f";
const WRONG: &str = "nope-0000000000000000000000000";
const FRESH: &str = "fresh-9e8d7c6b5a4f3e2d1c0b9a8f";

/// A keys file: `web` (user), `prom` (metrics), `slow` (user, one request
/// per two seconds), and `extra` entries as (name, key).
fn write_keys(path: &Path, extra: &[(&str, &str)]) {
    let mut text = format!(
        "[[keys]]\nname = \"web\"\nrole = \"user\"\nhash = \"{}\"\n\n\
         [[keys]]\nname = \"prom\"\nrole = \"metrics\"\nhash = \"{}\"\n\n\
         [[keys]]\nname = \"slow\"\nrole = \"user\"\nhash = \"{}\"\nrequests_per_second = 0.5\nburst = 1\n",
        node::hash_api_key(USER),
        node::hash_api_key(METRICS),
        node::hash_api_key(LIMITED)
    );
    for (name, key) in extra {
        text.push_str(&format!(
            "\n[[keys]]\nname = \"{name}\"\nrole = \"user\"\nhash = \"{}\"\n",
            node::hash_api_key(key)
        ));
    }
    std::fs::write(path, text).expect("write keys");
}

fn keys_path(test: &str) -> PathBuf {
    let p = node::root()
        .join("target/e2e-run")
        .join(format!("{test}-keys.toml"));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
    p
}

fn tls_env(pki: &TestPki) -> Vec<(&'static str, String)> {
    vec![
        ("TTS_TLS_CERT", pki.server_cert_file.display().to_string()),
        ("TTS_TLS_KEY", pki.server_key_file.display().to_string()),
        // start.sh checks /readyz over HTTPS against this CA.
        ("TTS_TLS_CA", pki.ca_file.display().to_string()),
    ]
}

/// Runs tests/openai_access.py against `base` (`…/v1`).
fn openai_checks(base: &str, ca: Option<&Path>) {
    let ca = ca.map_or_else(|| "-".to_owned(), |p| p.display().to_string());
    let out = node::python("openai_access.py")
        .args([base, &ca, USER, METRICS, LIMITED, WRONG])
        .output()
        .expect("run tests/openai_access.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the OpenAI client check failed");
    assert_eq!(stdout.lines().count(), 6, "six checks");
}

/// Every key string, searched in what the node emitted.
fn assert_no_key_in(what: &str, text: &str) {
    for key in [USER, METRICS, LIMITED, WRONG, FRESH] {
        assert!(!text.contains(key), "a key appears in {what}");
    }
}

/// The node's events, the node's log and /metrics: the refusals logged as
/// WARN with route, client address and (when known) the key's name, the
/// completion events with the key's name, usage by key in /metrics, and no
/// key anywhere.
fn check_what_the_node_emitted(n: &Node, rx: &GelfReceiver, metrics: &str) {
    let unauthorized = node::events_where(rx, 2, |m| {
        field_str(m, "error_code") == Some("UNAUTHORIZED")
    });
    assert!(!unauthorized.is_empty());
    for m in &unauthorized {
        assert_eq!(
            m.standard.get("level").and_then(|l| l.as_u64()),
            Some(4),
            "WARN"
        );
        assert_eq!(field_str(m, "route"), Some("/v1/audio/speech"));
        assert_eq!(field_str(m, "client_addr"), Some("127.0.0.1"));
        assert!(field_str(m, "api_key_name").is_none());
    }
    let forbidden = node::events_where(rx, 1, |m| field_str(m, "error_code") == Some("FORBIDDEN"));
    assert_eq!(forbidden.len(), 1, "logged once");
    assert_eq!(field_str(&forbidden[0], "api_key_name"), Some("prom"));
    assert_eq!(
        forbidden[0].standard.get("level").and_then(|l| l.as_u64()),
        Some(4)
    );
    let limited = node::events_where(rx, 2, |m| {
        field_str(m, "error_code") == Some("RATE_LIMITED")
    });
    assert!(limited
        .iter()
        .all(|m| field_str(m, "api_key_name") == Some("slow")));
    let done = node::events_where(rx, 3, |m| {
        m.standard.get("short_message").and_then(|s| s.as_str())
            == Some("Audio generation completed")
    });
    assert!(done
        .iter()
        .any(|m| field_str(m, "api_key_name") == Some("web")));
    assert!(done
        .iter()
        .any(|m| field_str(m, "api_key_name") == Some("slow")));
    for want in [
        "tts_key_requests_total{key=\"web\",status=\"200\"}",
        "tts_key_requests_total{key=\"slow\",status=\"429\"}",
        "tts_key_errors_total{key=\"prom\",code=\"FORBIDDEN\"} 1",
        "tts_key_audio_seconds_total{key=\"web\"}",
        "tts_errors_total{code=\"UNAUTHORIZED\"}",
    ] {
        assert!(metrics.contains(want), "{want} missing from /metrics");
    }
    assert_no_key_in("/metrics", metrics);
    assert_no_key_in("the node's log", &n.log());
    let all = rx.lock().accepted.clone();
    assert!(all.len() > 5);
    for m in &all {
        let text = serde_json::to_string(&(&m.standard, &m.fields)).expect("json");
        assert_no_key_in("a GELF event", &text);
    }
    node::assert_fields_catalogued(rx);
}

#[test]
fn over_https_keys_and_roles_meet_openais_client_and_no_key_is_ever_shown() {
    let _serial = node::serial();
    let pki = TestPki::generate("node-access");
    let keys = keys_path("access-https");
    write_keys(&keys, &[]);
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-access-https");
    env.extend(tls_env(&pki));
    env.push(("TTS_API_KEYS_FILE", keys.display().to_string()));
    let n = Node::start("access-https", &env);
    let base = format!("https://127.0.0.1:{}/v1", n.port);
    openai_checks(&base, Some(&pki.ca_file));

    // Plain HTTP to the HTTPS port gets no answer; the probes need no key.
    assert!(node::try_http(n.port, "GET", "/healthz", &[], b"").is_err());
    let (ready, _) =
        node::try_https(n.port, &pki.ca_file, "GET", "/readyz", &[], b"").expect("readyz");
    assert_eq!(ready.status, 200);
    let auth = format!("Bearer {METRICS}");
    let (m, cert) = node::try_https(
        n.port,
        &pki.ca_file,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    )
    .expect("metrics");
    assert_eq!(m.status, 200);
    assert_eq!(cert, pki.server_cert_der());
    check_what_the_node_emitted(&n, &rx, &String::from_utf8_lossy(&m.body));
}

#[test]
fn over_plain_http_on_loopback_the_same_keys_hold() {
    let _serial = node::serial();
    let keys = keys_path("access-http");
    write_keys(&keys, &[]);
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-access-http");
    env.push(("TTS_API_KEYS_FILE", keys.display().to_string()));
    let n = Node::start("access-http", &env);
    openai_checks(&format!("{}/v1", n.url()), None);
    let auth = format!("Bearer {METRICS}");
    let m = node::http(n.port, "GET", "/metrics", &[("Authorization", &auth)], b"");
    assert_eq!(m.status, 200);
    check_what_the_node_emitted(&n, &rx, &String::from_utf8_lossy(&m.body));
    // X-Api-Key, for curl users.
    let r = node::post_json(
        n.port,
        "/api/tts",
        &serde_json::json!({"text": "Hi."}),
        &[("X-Api-Key", USER)],
    );
    assert_eq!(r.status, 200);
}

fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok);
}

#[test]
fn sighup_reloads_keys_and_certificate_under_load_and_no_request_fails() {
    let _serial = node::serial();
    let pki = TestPki::generate("node-reload");
    let keys = keys_path("access-reload");
    write_keys(&keys, &[("old", WRONG)]);
    let mut env = tls_env(&pki);
    env.push(("TTS_API_KEYS_FILE", keys.display().to_string()));
    let n = Node::start("access-reload", &env);
    let pid = n.pid().expect("pid");
    let port = n.port;
    let ca = pki.ca_file.clone();
    let auth = format!("Bearer {USER}");
    let synth = move |auth: &str, ca: &Path| {
        node::try_https(
            port,
            ca,
            "POST",
            "/api/tts",
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            br#"{"text": "Reloading under load.", "noise_scale": 0, "noise_w": 0}"#,
        )
    };

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (stop, done, ca, auth) = (
                Arc::clone(&stop),
                Arc::clone(&done),
                ca.clone(),
                auth.clone(),
            );
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match synth(&auth, &ca) {
                        Ok((r, _)) if r.status == 200 => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((r, _)) => failures.push(format!(
                            "{} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )),
                        Err(e) => failures.push(e),
                    }
                }
                failures
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    // New keys: `fresh` in, `old` out.
    write_keys(&keys, &[("fresh", FRESH)]);
    hup(pid);
    std::thread::sleep(Duration::from_millis(1500));
    // A renewed certificate.
    let renewed = pki.renew_server_cert();
    hup(pid);
    std::thread::sleep(Duration::from_millis(1500));
    // A broken file: the keys in use stay.
    std::fs::write(&keys, "[[keys]]\nname = \"web\"\nrole = \"root\"\n").expect("write");
    hup(pid);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = load
        .into_iter()
        .flat_map(|t| t.join().expect("load thread"))
        .collect();
    let ok = done.load(Ordering::Relaxed);
    eprintln!("{ok} requests under load, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "requests failed during reloads: {failures:?}"
    );
    assert!(ok >= 10, "only {ok} requests under load");

    let (r, cert) = synth(&format!("Bearer {FRESH}"), &ca).expect("fresh key");
    assert_eq!(r.status, 200, "the new key works");
    assert_eq!(cert, renewed, "the renewed certificate is served");
    let (r, _) = synth(&format!("Bearer {WRONG}"), &ca).expect("old key");
    assert_eq!(r.status, 401, "the removed key is refused");
    let (r, _) = synth(&auth, &ca).expect("user key");
    assert_eq!(r.status, 200, "after a broken file the keys in use stay");
    let log = n.log();
    assert!(log.contains("API keys reloaded"), "{log}");
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(log.contains("API keys not reloaded"), "{log}");
    assert_no_key_in("the node's log", &log);
}

#[test]
fn with_a_client_ca_only_clients_showing_a_certificate_get_in() {
    let _serial = node::serial();
    let pki = TestPki::generate("node-mtls");
    let mut env = tls_env(&pki);
    env.push(("TTS_TLS_CLIENT_CA", pki.ca_file.display().to_string()));
    // start.sh and status.sh show this certificate to /readyz.
    env.push(("TTS_READY_CERT", pki.client_cert.display().to_string()));
    env.push(("TTS_READY_KEY", pki.client_key.display().to_string()));
    let n = Node::start("access-mtls", &env);
    let without = node::try_https(n.port, &pki.ca_file, "GET", "/readyz", &[], b"");
    assert!(
        without.is_err(),
        "a client without a certificate got in: {without:?}"
    );
    let client = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let (r, _) = node::try_https_as(n.port, &pki.ca_file, client, "GET", "/readyz", &[], b"")
        .expect("a client with a certificate from the CA");
    assert_eq!(r.status, 200);
    let (r, _) = node::try_https_as(
        n.port,
        &pki.ca_file,
        client,
        "POST",
        "/api/tts",
        &[("Content-Type", "application/json")],
        br#"{"text": "Certificates, both ways."}"#,
    )
    .expect("synthesis");
    assert_eq!(r.status, 200);
    let status = node::script("status.sh", &[&n.port.to_string()], &n.env);
    assert!(status.status.success(), "status.sh reports it ready");
    assert!(n.log().contains("tls_client_auth=true"));
}

#[test]
fn a_node_on_all_addresses_without_keys_does_not_start_and_names_the_options() {
    let _serial = node::serial();
    node::require_node_prerequisites();
    let started = Instant::now();
    let port = node::free_port_run(1);
    let env = vec![
        ("TTS_HOST", "0.0.0.0".to_string()),
        ("TTS_PORT", port.to_string()),
        (
            "TTS_RUN_DIR",
            node::run_dir("access-public").display().to_string(),
        ),
        ("TTS_NODE_BIN", node::node_bin().display().to_string()),
    ];
    let out = node::script("start.sh", &[], &env);
    assert!(!out.status.success(), "a public node without keys started");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for option in [
        "--api-keys-file",
        "TTS_API_KEYS_FILE",
        "--allow-anonymous",
        "TTS_ALLOW_ANONYMOUS",
    ] {
        assert!(said.contains(option), "{option} not named in: {said}");
    }
    assert!(node::node_pids_on_port(port).is_empty());
    assert!(started.elapsed() < Duration::from_secs(30));
}
