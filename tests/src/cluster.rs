//! A cluster for the end-to-end tests: real nodes behind the real HAProxy
//! front, started with `scripts/start-cluster.sh` and stopped with
//! `scripts/stop.sh --all`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::node::{free_port_run, node_bin, require_node_prerequisites, run_dir, script};

/// Fails with a clear message when HAProxy is not installed.
pub fn require_haproxy() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("haproxy").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "haproxy is missing: run scripts/install-deps.sh (it installs Debian's haproxy)"
    );
}

/// `n` nodes on the ports after the front's, ids `PREFIX-01` …; stopped
/// (front and nodes) when it drops.
pub struct Cluster {
    /// The front's port; node `i` (from 1) listens on `lb_port + i`.
    pub lb_port: u16,
    pub n: u16,
    pub prefix: String,
    /// The settings every script of this cluster runs with.
    pub env: Vec<(&'static str, String)>,
    pub run_dir: PathBuf,
}

impl Cluster {
    /// Starts `n` nodes and the front; `extra` adds settings (the GELF
    /// endpoint, workers, …).
    pub fn start(test: &str, n: u16, extra: &[(&'static str, String)]) -> Self {
        require_node_prerequisites();
        require_haproxy();
        let lb_port = free_port_run(n + 1);
        let dir = run_dir(test);
        let prefix = format!("{test}-node");
        let mut env = vec![
            ("TTS_LB_PORT", lb_port.to_string()),
            ("NODE_ID_PREFIX", prefix.clone()),
            ("TTS_RUN_DIR", dir.display().to_string()),
            ("TTS_STOP_TIMEOUT_S", "30".to_string()),
            ("TTS_NODE_BIN", node_bin().display().to_string()),
        ];
        env.extend(extra.iter().cloned());
        let c = Self {
            lb_port,
            n,
            prefix,
            env,
            run_dir: dir,
        };
        let out = c.script("start-cluster.sh", &[&n.to_string()], &[]);
        assert!(out.status.success(), "start-cluster.sh {n} failed");
        c
    }

    /// Runs a project script with this cluster's settings and `extra` ones.
    pub fn script(&self, name: &str, args: &[&str], extra: &[(&'static str, String)]) -> Output {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        script(name, args, &env)
    }

    /// Node `i`'s port (`i` from 1).
    pub fn node_port(&self, i: u16) -> u16 {
        self.lb_port + i
    }

    /// Node `i`'s id, as start-cluster.sh names it.
    pub fn node_id(&self, i: u16) -> String {
        format!("{}-{i:02}", self.prefix)
    }

    /// The settings that make start.sh start node `i` as start-cluster.sh did.
    pub fn node_env(&self, i: u16) -> Vec<(&'static str, String)> {
        vec![
            ("TTS_PORT", self.node_port(i).to_string()),
            ("NODE_ID", self.node_id(i)),
        ]
    }

    /// Node `i`'s PID from its PID file.
    pub fn node_pid(&self, i: u16) -> Option<u32> {
        read_pid(
            &self
                .run_dir
                .join(format!("tts-node-{}.pid", self.node_port(i))),
        )
    }

    /// The HAProxy master's PID from the front's PID file.
    pub fn front_pid(&self) -> Option<u32> {
        read_pid(&self.run_dir.join(format!("haproxy-{}.pid", self.lb_port)))
    }

    /// The front's rendered configuration file.
    pub fn front_cfg(&self) -> PathBuf {
        self.run_dir.join(format!("haproxy-{}.cfg", self.lb_port))
    }

    /// HAProxy's log (one line per request, see deploy/haproxy/).
    pub fn front_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join(format!("haproxy-{}.log", self.lb_port)))
            .unwrap_or_default()
    }

    /// PIDs of HAProxy masters running this cluster's configuration
    /// (HAProxy's workers are their children and are not listed).
    pub fn front_masters(&self) -> Vec<u32> {
        let cfg = self.front_cfg().display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let runs_cfg = args.contains(&cfg.as_bytes());
            let parent_is_haproxy = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rsplit_once(')')?.1.to_owned();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                .map(|ppid| {
                    std::fs::read_to_string(format!("/proc/{ppid}/comm"))
                        .unwrap_or_default()
                        .trim()
                        == "haproxy"
                })
                .unwrap_or(false);
            if comm.trim() == "haproxy" && runs_cfg && !parent_is_haproxy {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script("stop.sh", &["--all"], &[]);
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
