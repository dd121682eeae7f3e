//! Prometheus metrics with the Prometheus project's Rust client
//! (`prometheus-client`), served in the Prometheus text format 0.0.4:
//! counters and the latency histogram kept as requests happen, and the
//! figures that live elsewhere (queue, GPU memory, GELF delivery) read at
//! scrape time. Every error code and every GELF drop cause is exported from
//! the start, at 0, so that `rate()` and `increase()` see the first one.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::errors::Code;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0,
];

/// Upper bounds of the time-to-first-audio histogram, in seconds.
const FIRST_AUDIO_BUCKETS: [f64; 10] = [0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyStatus {
    key: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyCode {
    key: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabel {
    key: String,
}

/// The node's counters and histogram.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    errors: Family<CodeLabel, Counter>,
    latency: Histogram,
    first_audio: Histogram,
    audio_seconds: Counter<f64, AtomicU64>,
    key_requests: Family<KeyStatus, Counter>,
    key_errors: Family<KeyCode, Counter>,
    key_audio_seconds: Family<KeyLabel, Counter<f64, AtomicU64>>,
}

/// Figures read at scrape time from elsewhere in the node.
#[derive(Debug)]
pub struct Gauges {
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub busy_workers: usize,
    pub ready: bool,
    pub gpu: Option<crate::telemetry::GpuMemory>,
    pub gelf: Option<gelf_tracing::Stats>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "tts_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let errors = Family::<CodeLabel, Counter>::default();
        for c in Code::ALL {
            let _ = errors.get_or_create(&CodeLabel { code: c.as_str() });
        }
        registry.register(
            "tts_errors",
            "Failed requests by error_code (every code of the node, from 0)",
            errors.clone(),
        );
        let latency = Histogram::new(BUCKETS);
        registry.register(
            "tts_synthesis_seconds",
            "Latency of successful syntheses (queue wait included)",
            latency.clone(),
        );
        let first_audio = Histogram::new(FIRST_AUDIO_BUCKETS);
        registry.register(
            "tts_first_audio_seconds",
            "Time from a request to its first audio byte (streamed and whole)",
            first_audio.clone(),
        );
        let audio_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "tts_audio_seconds",
            "Seconds of audio produced",
            audio_seconds.clone(),
        );
        // By API key name (the keys file's `name`, never the key); empty
        // when the node runs without keys.
        let key_requests = Family::<KeyStatus, Counter>::default();
        registry.register(
            "tts_key_requests",
            "HTTP requests by API key name and status",
            key_requests.clone(),
        );
        let key_errors = Family::<KeyCode, Counter>::default();
        registry.register(
            "tts_key_errors",
            "Failed requests by API key name and error_code",
            key_errors.clone(),
        );
        let key_audio_seconds = Family::<KeyLabel, Counter<f64, AtomicU64>>::default();
        registry.register(
            "tts_key_audio_seconds",
            "Seconds of audio produced by API key name",
            key_audio_seconds.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            latency,
            first_audio,
            audio_seconds,
            key_requests,
            key_errors,
            key_audio_seconds,
        }
    }
}

impl Metrics {
    /// Counts a finished HTTP request (and by key, when it had one).
    pub fn request(&self, route: &str, status: u16, key: Option<&str>) {
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_owned(),
                status,
            })
            .inc();
        if let Some(key) = key {
            self.key_requests
                .get_or_create(&KeyStatus {
                    key: key.to_owned(),
                    status,
                })
                .inc();
        }
    }

    /// Counts a failed request by its code (and by key, when it had one).
    pub fn error(&self, code: Code, key: Option<&str>) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
        if let Some(key) = key {
            self.key_errors
                .get_or_create(&KeyCode {
                    key: key.to_owned(),
                    code: code.as_str(),
                })
                .inc();
        }
    }

    /// Records a successful synthesis: its latency and audio length.
    pub fn synthesis(&self, latency_s: f64, audio_s: f64, key: Option<&str>) {
        self.latency.observe(latency_s);
        self.audio_seconds.inc_by(audio_s);
        if let Some(key) = key {
            self.key_audio_seconds
                .get_or_create(&KeyLabel {
                    key: key.to_owned(),
                })
                .inc_by(audio_s);
        }
    }

    /// Records the time to a request's first audio byte.
    pub fn first_audio(&self, seconds: f64) {
        self.first_audio.observe(seconds);
    }

    /// The exposition text: the kept metrics, then the live ones.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(8192);
        let mut live = Registry::default();
        live.register_collector(Box::new(Live(g)));
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &live);
        out
    }
}

/// The scrape-time figures as metrics.
#[derive(Debug)]
struct Live(Gauges);

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: impl Into<f64>) -> std::fmt::Result {
    let g = ConstGauge::new(v.into());
    let m = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    let m = e.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

/// A counter with one label, one sample per value.
fn counters<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (l, v) in values {
        let labels = [(label, l)];
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Live {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let g = &self.0;
        gauge(
            &mut e,
            "tts_queue_depth",
            "Requests waiting for a worker",
            g.queue_depth as f64,
        )?;
        gauge(
            &mut e,
            "tts_queue_capacity",
            "Requests that may wait",
            g.queue_capacity as f64,
        )?;
        gauge(
            &mut e,
            "tts_busy_workers",
            "Workers synthesising now",
            g.busy_workers as f64,
        )?;
        gauge(
            &mut e,
            "tts_ready",
            "Whether the voice is loaded",
            u8::from(g.ready),
        )?;
        if let Some(gpu) = g.gpu {
            let gib = 1024.0 * 1024.0 * 1024.0;
            gauge(
                &mut e,
                "tts_gpu_memory_used_bytes",
                "GPU memory in use (whole device)",
                gpu.used_gb * gib,
            )?;
            gauge(
                &mut e,
                "tts_gpu_memory_total_bytes",
                "GPU memory in all",
                gpu.total_gb * gib,
            )?;
        }
        if let Some(s) = &g.gelf {
            counter(&mut e, "tts_gelf_emitted", "Log events the GELF layer accepted (emitted + recovered = sent + dropped + queued)", s.emitted + s.recovered)?;
            counter(
                &mut e,
                "tts_gelf_sent",
                "Log events delivered to GELF (acknowledged over TCP)",
                s.sent,
            )?;
            counters(
                &mut e,
                "tts_gelf_dropped",
                "Log events dropped, by cause (queue_full, shutdown, rejected, spool_full, spool_corrupt, spool_io)",
                "cause",
                s.dropped_by_cause(),
            )?;
            gauge(
                &mut e,
                "tts_gelf_queued",
                "Log events not yet sent nor dropped (memory and spool)",
                s.queued as f64,
            )?;
            gauge(
                &mut e,
                "tts_gelf_connected",
                "Whether the GELF connection is up",
                u8::from(s.connected),
            )?;
            gauge(
                &mut e,
                "tts_gelf_spool_bytes",
                "Bytes the GELF spool's files hold on disk",
                s.spool_bytes as f64,
            )?;
            counter(
                &mut e,
                "tts_gelf_stalls",
                "GELF endpoints given up because they stopped reading",
                s.stalls,
            )?;
            counter(
                &mut e,
                "tts_gelf_unacknowledged_resent",
                "Log events sent again because the endpoint they were written to was given up before acknowledging them",
                s.unacknowledged_resent,
            )?;
            counters(
                &mut e,
                "tts_gelf_endpoint_sent",
                "Log events delivered, per GELF endpoint",
                "endpoint",
                s.endpoints.iter().map(|x| (x.endpoint.as_str(), x.sent)),
            )?;
            counters(
                &mut e,
                "tts_gelf_endpoint_failed",
                "Failed connections and writes, per GELF endpoint",
                "endpoint",
                s.endpoints.iter().map(|x| (x.endpoint.as_str(), x.failed)),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            queue_depth: 2,
            queue_capacity: 8,
            busy_workers: 1,
            ready: true,
            gpu: None,
            gelf: None,
        }
    }

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.request("/api/tts", 200, None);
        m.request("/api/tts", 200, Some("web"));
        m.request("/api/tts", 503, Some("web"));
        m.error(Code::QueueFull, Some("web"));
        m.synthesis(0.3, 2.0, None);
        m.synthesis(3.0, 4.5, Some("web"));
        let text = m.render(gauges());
        for want in [
            "tts_requests_total{route=\"/api/tts\",status=\"200\"} 2",
            "tts_errors_total{code=\"QUEUE_FULL\"} 1",
            "tts_synthesis_seconds_bucket{le=\"0.25\"} 0",
            "tts_synthesis_seconds_bucket{le=\"0.5\"} 1",
            "tts_synthesis_seconds_bucket{le=\"4\"} 2",
            "tts_synthesis_seconds_count 2",
            "tts_audio_seconds_total 6.5",
            "tts_key_requests_total{key=\"web\",status=\"200\"} 1",
            "tts_key_requests_total{key=\"web\",status=\"503\"} 1",
            "tts_key_errors_total{key=\"web\",code=\"QUEUE_FULL\"} 1",
            "tts_key_audio_seconds_total{key=\"web\"} 4.5",
            "tts_queue_depth 2",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert!(!text.contains("gpu"));
    }

    #[test]
    fn every_error_code_is_exported_from_zero() {
        let text = Metrics::default().render(gauges());
        for c in Code::ALL {
            let line = format!("tts_errors_total{{code=\"{}\"}} 0", c.as_str());
            assert!(text.contains(&line), "{line}");
        }
    }
}
