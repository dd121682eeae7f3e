//! Prometheus metrics in the text exposition format, kept by hand: a few
//! counters and one histogram need no framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0,
];

/// The node's counters.
#[derive(Default)]
pub struct Metrics {
    /// (route, HTTP status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// error_code → count.
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    audio_ms: AtomicU64,
    synth_ok: AtomicU64,
}

/// Figures read at scrape time from elsewhere in the node.
pub struct Gauges {
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub busy_workers: usize,
    pub ready: bool,
    pub gpu: Option<crate::telemetry::GpuMemory>,
    pub gelf: Option<gelf_tracing::Stats>,
}

impl Metrics {
    /// Counts a finished HTTP request.
    pub fn request(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_owned(), status)).or_default() += 1;
        }
    }

    /// Counts an error response by its code.
    pub fn error(&self, code: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// Records a successful synthesis: its latency and audio length.
    pub fn synthesis(&self, latency_s: f64, audio_s: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if latency_s <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((latency_s * 1e6) as u64, Ordering::Relaxed);
        self.audio_ms
            .fetch_add((audio_s * 1e3) as u64, Ordering::Relaxed);
        self.synth_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut o = String::with_capacity(4096);
        o.push_str("# HELP tts_requests_total HTTP requests by route and status.\n# TYPE tts_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "tts_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        o.push_str("# HELP tts_errors_total Error responses by error_code.\n# TYPE tts_errors_total counter\n");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(o, "tts_errors_total{{code=\"{code}\"}} {n}");
            }
        }
        o.push_str("# HELP tts_synthesis_seconds Latency of successful syntheses (queue wait included).\n# TYPE tts_synthesis_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(o, "tts_synthesis_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(o, "tts_synthesis_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "tts_synthesis_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "tts_synthesis_seconds_count {count}");
        let _ = writeln!(o, "# HELP tts_audio_seconds_total Seconds of audio produced.\n# TYPE tts_audio_seconds_total counter\ntts_audio_seconds_total {}", self.audio_ms.load(Ordering::Relaxed) as f64 / 1e3);
        let _ = writeln!(o, "# HELP tts_queue_depth Requests waiting for a worker.\n# TYPE tts_queue_depth gauge\ntts_queue_depth {}", g.queue_depth);
        let _ = writeln!(o, "# HELP tts_queue_capacity Requests that may wait.\n# TYPE tts_queue_capacity gauge\ntts_queue_capacity {}", g.queue_capacity);
        let _ = writeln!(o, "# HELP tts_busy_workers Workers synthesising now.\n# TYPE tts_busy_workers gauge\ntts_busy_workers {}", g.busy_workers);
        let _ = writeln!(
            o,
            "# HELP tts_ready Whether the voice is loaded.\n# TYPE tts_ready gauge\ntts_ready {}",
            u8::from(g.ready)
        );
        if let Some(gpu) = g.gpu {
            let _ = writeln!(o, "# HELP tts_gpu_memory_used_bytes GPU memory in use (whole device).\n# TYPE tts_gpu_memory_used_bytes gauge\ntts_gpu_memory_used_bytes {}", (gpu.used_gb * 1073741824.0) as u64);
            let _ = writeln!(o, "# HELP tts_gpu_memory_total_bytes GPU memory in all.\n# TYPE tts_gpu_memory_total_bytes gauge\ntts_gpu_memory_total_bytes {}", (gpu.total_gb * 1073741824.0) as u64);
        }
        if let Some(s) = &g.gelf {
            let _ = writeln!(o, "# HELP tts_gelf_sent_total Log events delivered to GELF.\n# TYPE tts_gelf_sent_total counter\ntts_gelf_sent_total {}", s.sent);
            let _ = writeln!(o, "# HELP tts_gelf_dropped_total Log events dropped (queue full, shutdown, refused, spool full or damaged).\n# TYPE tts_gelf_dropped_total counter\ntts_gelf_dropped_total {}", s.dropped);
            let _ = writeln!(o, "# HELP tts_gelf_queued Log events waiting to be sent.\n# TYPE tts_gelf_queued gauge\ntts_gelf_queued {}", s.queued);
            let _ = writeln!(o, "# HELP tts_gelf_connected Whether the GELF connection is up.\n# TYPE tts_gelf_connected gauge\ntts_gelf_connected {}", u8::from(s.connected));
            let _ = writeln!(o, "# HELP tts_gelf_spool_bytes Bytes of log events in the GELF spool.\n# TYPE tts_gelf_spool_bytes gauge\ntts_gelf_spool_bytes {}", s.spool_bytes);
            let _ = writeln!(o, "# HELP tts_gelf_endpoint_sent_total Log events delivered, per GELF endpoint.\n# TYPE tts_gelf_endpoint_sent_total counter");
            for e in &s.endpoints {
                let _ = writeln!(
                    o,
                    "tts_gelf_endpoint_sent_total{{endpoint=\"{}\"}} {}",
                    e.endpoint, e.sent
                );
            }
            let _ = writeln!(o, "# HELP tts_gelf_endpoint_failed_total Failed connections and writes, per GELF endpoint.\n# TYPE tts_gelf_endpoint_failed_total counter");
            for e in &s.endpoints {
                let _ = writeln!(
                    o,
                    "tts_gelf_endpoint_failed_total{{endpoint=\"{}\"}} {}",
                    e.endpoint, e.failed
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.request("/api/tts", 200);
        m.request("/api/tts", 200);
        m.request("/api/tts", 503);
        m.error("QUEUE_FULL");
        m.synthesis(0.3, 2.0);
        m.synthesis(3.0, 4.5);
        let text = m.render(&Gauges {
            queue_depth: 2,
            queue_capacity: 8,
            busy_workers: 1,
            ready: true,
            gpu: None,
            gelf: None,
        });
        assert!(text.contains("tts_requests_total{route=\"/api/tts\",status=\"200\"} 2"));
        assert!(text.contains("tts_errors_total{code=\"QUEUE_FULL\"} 1"));
        assert!(text.contains("tts_synthesis_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("tts_synthesis_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("tts_synthesis_seconds_bucket{le=\"4\"} 2"));
        assert!(text.contains("tts_synthesis_seconds_count 2"));
        assert!(text.contains("tts_audio_seconds_total 6.5"));
        assert!(text.contains("tts_queue_depth 2"));
        assert!(!text.contains("gpu"));
    }
}
