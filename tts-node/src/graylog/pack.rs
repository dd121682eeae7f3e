//! The Graylog content pack for a cluster of nodes (`--print-graylog-pack`):
//! a GELF TCP input, a stream per node and an errors stream, the alerts an
//! operator of the cluster needs, an HTTP notification with its URL allowlist
//! entry, and one dashboard. Every field it names comes from
//! [`crate::fields`] or `gelf_tracing::fields`, the constants the events are
//! written with.
//!
//! The pack targets Graylog 6.1 and later (format v1, `dashboard` v2): it
//! uses only keys every version from 6.1 to 7.2 accepts (`validate.rs`
//! checks that). Entity ids are UUID-shaped and derived from the cluster
//! name and the entity's role, so the same settings give the same pack,
//! byte for byte.

use serde_json::{json, Value};

use crate::errors::Code;
use crate::fields as f;
use gelf_tracing::fields as lf;

/// The server versions the pack is written for.
pub const SERVER_VERSION: &str = ">=6.1.0";
/// The events stream every Graylog has (where alerts are stored).
pub const EVENTS_STREAM: &str = "000000000000000000000002";
/// The pack parameter for the GELF input's port.
pub const GELF_PORT_PARAMETER: &str = "GELF_PORT";

/// What the pack is made for.
#[derive(Debug, Clone)]
pub struct PackSpec {
    /// Names the pack, its streams and its dashboard ("tts").
    pub cluster: String,
    /// The nodes' ids: one stream each.
    pub nodes: Vec<String>,
    /// Where alerts are POSTed (Graylog's HTTP notification).
    pub webhook_url: String,
    /// The GELF TCP port's default (the pack parameter `GELF_PORT`).
    pub gelf_port: u16,
    /// The alert bound on a node's p95 `duration_ms` over 5 minutes.
    pub p95_bound_ms: u64,
    /// CUDA_OOM errors a minute on one node above which the alert fires.
    pub oom_per_minute: u32,
    /// QUEUE_FULL refusals in 5 minutes on one node above which the alert fires.
    pub queue_full_per_5min: u32,
    /// UNAUTHORIZED refusals in 5 minutes from one client address on one
    /// node above which the alert fires.
    pub unauthorized_per_5min: u32,
    /// The pack's revision: raise it when the pack changes.
    pub rev: u32,
}

impl PackSpec {
    /// The defaults, for `nodes` and `webhook_url`.
    pub fn new(nodes: Vec<String>, webhook_url: String) -> Self {
        Self {
            cluster: "tts".into(),
            nodes,
            webhook_url,
            gelf_port: 12201,
            p95_bound_ms: 5000,
            oom_per_minute: 5,
            queue_full_per_5min: 20,
            unauthorized_per_5min: 20,
            rev: 1,
        }
    }

    /// The pack's id (stable for a cluster name).
    pub fn pack_id(&self) -> String {
        self.uid("pack")
    }

    /// A UUID-shaped id for `role` in this cluster: two FNV-1a hashes.
    fn uid(&self, role: &str) -> String {
        let hash = |seed: u64| {
            let mut h = seed;
            for b in self.cluster.bytes().chain([0]).chain(role.bytes()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        };
        let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x6c62_272e_07bb_0142));
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

fn s(v: &str) -> Value {
    json!({"@type": "string", "@value": v})
}
fn b(v: bool) -> Value {
    json!({"@type": "boolean", "@value": v})
}
fn int(v: i64) -> Value {
    json!({"@type": "integer", "@value": v})
}
fn param(name: &str) -> Value {
    json!({"@type": "parameter", "@value": name})
}

fn entity(kind: &str, version: &str, id: String, data: Value) -> Value {
    json!({
        "v": "1",
        "type": {"name": kind, "version": version},
        "id": id,
        "data": data,
        "constraints": [{"type": "server-version", "version": SERVER_VERSION}],
    })
}

fn rule(kind: &str, field: &str, value: &str, doc: &str) -> Value {
    json!({
        "type": s(kind),
        "field": s(field),
        "value": s(value),
        "inverted": b(false),
        "description": s(doc),
    })
}

fn stream(title: &str, description: &str, rules: Vec<Value>) -> Value {
    json!({
        "title": s(title),
        "description": s(description),
        "disabled": b(false),
        "matching_type": s("AND"),
        "stream_rules": rules,
        "outputs": [],
        "alert_conditions": [],
        "alarm_callbacks": [],
        "default_stream": b(false),
        "remove_matches": b(false),
    })
}

/// An alert that fires when `series` over `query` (per node, every minute,
/// over `window_ms`) satisfies `condition`.
struct Alert<'a> {
    role: &'a str,
    title: String,
    description: String,
    priority: i64,
    query: String,
    streams: Vec<String>,
    group_by: Vec<&'a str>,
    series: Vec<Value>,
    condition: Value,
    window_ms: u64,
}

fn gt(series_id: &str, bound: f64) -> Value {
    json!({"expr": ">", "left": {"expr": "number-ref", "ref": series_id}, "right": {"expr": "number", "value": bound}})
}

fn event_definition(spec: &PackSpec, a: Alert<'_>) -> Value {
    let mut field_spec = serde_json::Map::new();
    for g in &a.group_by {
        field_spec.insert(
            (*g).to_owned(),
            json!({"data_type": "string", "providers": [
                {"type": "template-v1", "template": format!("${{source.{g}}}"), "require_values": false}
            ]}),
        );
    }
    entity(
        "event_definition",
        "1",
        spec.uid(a.role),
        json!({
            "_scope": s("DEFAULT"),
            "title": s(&a.title),
            "description": s(&a.description),
            "remediation_steps": s(""),
            "priority": int(a.priority),
            "alert": b(true),
            "is_scheduled": b(true),
            "config": {
                "type": "aggregation-v1",
                "query": s(&a.query),
                "filters": [],
                "streams": a.streams,
                "stream_categories": [],
                "group_by": a.group_by,
                "series": a.series,
                "conditions": {"expression": a.condition},
                "search_within_ms": a.window_ms,
                "execute_every_ms": 60_000,
                "event_limit": 100,
                "use_cron_scheduling": false,
                "cron_expression": null,
                "cron_timezone": null,
            },
            "field_spec": field_spec,
            "key_spec": a.group_by,
            "notification_settings": {"grace_period_ms": 300_000, "backlog_size": 5},
            "notifications": [{"notification_id": s(&spec.uid("notification"))}],
            "storage": [{"type": "persist-to-streams-v1", "streams": [EVENTS_STREAM]}],
        }),
    )
}

/// One aggregation widget of the dashboard, with its search type.
struct Widget<'a> {
    role: &'a str,
    title: &'a str,
    query: String,
    visualization: &'a str,
    /// Grouped by time (a chart over time) or not (a table).
    over_time: bool,
    /// Row groups besides time.
    rows: Vec<&'a str>,
    /// Column groups (a line per node).
    columns: Vec<&'a str>,
    /// Series functions: `avg(duration_ms)`, `percentile(duration_ms,95)`.
    series: Vec<String>,
    position: (u32, u32, u32, u32),
}

/// The pivot series a widget series function stands for (as Graylog's web
/// interface makes it: the id is the function, the arguments its fields).
pub fn pivot_series(function: &str) -> Option<Value> {
    let (kind, rest) = function.split_once('(')?;
    let args: Vec<&str> = rest
        .strip_suffix(')')?
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    Some(match (kind, args.as_slice()) {
        ("count", []) => json!({"type": "count", "id": function}),
        ("percentile", [field, p]) => {
            let p: f64 = p.parse().ok()?;
            json!({"type": "percentile", "id": function, "field": field, "percentile": p})
        }
        (k, [field]) => json!({"type": k, "id": function, "field": field}),
        _ => return None,
    })
}

fn widget(w: &Widget<'_>) -> (Value, Value, Value) {
    let wid = format!("w-{}", w.role);
    let sid = format!("st-{}", w.role);
    let time_row = json!({"type": "time", "fields": ["timestamp"], "config": {"interval": {"type": "auto", "scaling": 1.0}}});
    let values =
        |fields: &[&str]| json!({"type": "values", "fields": fields, "config": {"limit": 15}});
    let mut row_pivots = Vec::new();
    if w.over_time {
        row_pivots.push(time_row);
    }
    if !w.rows.is_empty() {
        row_pivots.push(values(&w.rows));
    }
    let column_pivots: Vec<Value> = if w.columns.is_empty() {
        vec![]
    } else {
        vec![values(&w.columns)]
    };
    let to_group = |p: &Value| {
        let mut g = json!({"type": p["type"], "fields": p["fields"]});
        if p["type"] == "time" {
            g["interval"] = p["config"]["interval"].clone();
        } else {
            g["limit"] = p["config"]["limit"].clone();
        }
        g
    };
    let sort = if w.over_time {
        json!([])
    } else {
        json!([{"type": "series", "field": w.series[0], "direction": "Descending"}])
    };
    let search_type = json!({
        "id": sid,
        "type": "pivot",
        "name": "chart",
        "timerange": {"type": "relative", "range": 3600},
        "query": {"type": "elasticsearch", "query_string": w.query},
        "streams": [],
        "filter": null,
        "filters": [],
        "row_groups": row_pivots.iter().map(to_group).collect::<Vec<_>>(),
        "column_groups": column_pivots.iter().map(to_group).collect::<Vec<_>>(),
        "series": w.series.iter().filter_map(|x| pivot_series(x)).collect::<Vec<_>>(),
        "sort": sort,
        "rollup": !w.over_time,
    });
    let (col, row, height, width) = w.position;
    let widget = json!({
        "id": wid,
        "type": "aggregation",
        "filter": null,
        "filters": [],
        "timerange": {"type": "relative", "range": 3600},
        "query": {"type": "elasticsearch", "query_string": w.query},
        "streams": [],
        "config": {
            "visualization": w.visualization,
            "visualization_config": null,
            "formatting_settings": null,
            "row_pivots": row_pivots,
            "column_pivots": column_pivots,
            "series": w.series.iter().map(|x| json!({"config": {"name": null}, "function": x})).collect::<Vec<_>>(),
            "sort": sort,
            "rollup": !w.over_time,
            "event_annotation": false,
        },
    });
    let position = json!({"col": col, "row": row, "height": height, "width": width});
    (widget, search_type, position)
}

fn dashboard(spec: &PackSpec) -> Value {
    let completed = format!("_exists_:{}", f::DURATION_MS);
    let p95 = |field: &str| format!("percentile({field},95)");
    let avg = |field: &str| format!("avg({field})");
    let widgets = [
        Widget {
            role: "latency",
            title: "Latency per node: p95 and mean duration_ms",
            query: completed.clone(),
            visualization: "line",
            over_time: true,
            rows: vec![],
            columns: vec![f::NODE_ID],
            series: vec![p95(f::DURATION_MS), avg(f::DURATION_MS)],
            position: (1, 1, 4, 12),
        },
        Widget {
            role: "errors",
            title: "Errors by error_code and node",
            query: format!("_exists_:{}", f::ERROR_CODE),
            visualization: "table",
            over_time: false,
            rows: vec![f::ERROR_CODE],
            columns: vec![f::NODE_ID],
            series: vec!["count()".into()],
            position: (1, 5, 4, 6),
        },
        Widget {
            role: "errors-over-time",
            title: "Errors over time per node",
            query: format!("_exists_:{}", f::ERROR_CODE),
            visualization: "bar",
            over_time: true,
            rows: vec![],
            columns: vec![f::NODE_ID],
            series: vec!["count()".into()],
            position: (7, 5, 4, 6),
        },
        Widget {
            role: "rtf",
            title: "Real-time factor per node (mean rtf)",
            query: completed.clone(),
            visualization: "line",
            over_time: true,
            rows: vec![],
            columns: vec![f::NODE_ID],
            series: vec![avg(f::RTF)],
            position: (1, 9, 4, 6),
        },
        Widget {
            role: "queue-wait",
            title: "Queue wait per node: p95 and mean queue_wait_ms",
            query: completed.clone(),
            visualization: "line",
            over_time: true,
            rows: vec![],
            columns: vec![f::NODE_ID],
            series: vec![p95(f::QUEUE_WAIT_MS), avg(f::QUEUE_WAIT_MS)],
            position: (7, 9, 4, 6),
        },
        Widget {
            role: "gpu-memory",
            title: "GPU memory used per node (GB, max)",
            query: format!("_exists_:{}", f::GPU_MEMORY_USED_GB),
            visualization: "line",
            over_time: true,
            rows: vec![],
            columns: vec![f::NODE_ID],
            series: vec![format!("max({})", f::GPU_MEMORY_USED_GB)],
            position: (1, 13, 4, 6),
        },
        Widget {
            role: "first-audio",
            title: "Time to first audio per node: p95 and mean first_audio_ms",
            query: completed,
            visualization: "line",
            over_time: true,
            rows: vec![],
            columns: vec![f::NODE_ID],
            series: vec![p95(f::FIRST_AUDIO_MS), avg(f::FIRST_AUDIO_MS)],
            position: (7, 13, 4, 6),
        },
        Widget {
            role: "keys",
            title: "Completed requests and audio seconds by API key",
            query: format!(
                "_exists_:{} AND _exists_:{}",
                f::DURATION_MS,
                f::API_KEY_NAME
            ),
            visualization: "table",
            over_time: false,
            rows: vec![f::API_KEY_NAME],
            columns: vec![],
            series: vec!["count()".into(), format!("sum({})", f::AUDIO_SECONDS)],
            position: (1, 17, 4, 6),
        },
        Widget {
            role: "refusals",
            title: "Access refusals by error_code and API key",
            query: format!(
                "{e}:{} OR {e}:{} OR {e}:{}",
                Code::Unauthorized.spec().code,
                Code::Forbidden.spec().code,
                Code::RateLimited.spec().code,
                e = f::ERROR_CODE
            ),
            visualization: "table",
            over_time: false,
            rows: vec![f::ERROR_CODE, f::API_KEY_NAME],
            columns: vec![f::NODE_ID],
            series: vec!["count()".into()],
            position: (7, 17, 4, 6),
        },
    ];
    let query_id = "q-cluster";
    let mut ws = Vec::new();
    let mut search_types = Vec::new();
    let mut mapping = serde_json::Map::new();
    let mut positions = serde_json::Map::new();
    let mut titles = serde_json::Map::new();
    for w in &widgets {
        let (widget, st, pos) = widget(w);
        let wid = widget["id"].as_str().unwrap_or_default().to_owned();
        mapping.insert(wid.clone(), json!([st["id"]]));
        positions.insert(wid.clone(), pos);
        titles.insert(wid, json!(w.title));
        ws.push(widget);
        search_types.push(st);
    }
    entity(
        "dashboard",
        "2",
        spec.uid("dashboard"),
        json!({
            "type": "DASHBOARD",
            "title": s(&format!("{} cluster", spec.cluster)),
            "summary": s("Latency, errors, real-time factor, queue wait, GPU memory and time to first audio, per node"),
            "description": s(&format!("Nodes: {}", spec.nodes.join(", "))),
            "properties": [],
            "requires": {},
            "search": {
                "queries": [{
                    "id": query_id,
                    "timerange": {"type": "relative", "range": 3600},
                    "filter": null,
                    "filters": [],
                    "query": {"type": "elasticsearch", "query_string": ""},
                    "search_types": search_types,
                }],
                "parameters": [],
                "requires": {},
            },
            "state": {
                query_id: {
                    "widgets": ws,
                    "widget_mapping": mapping,
                    "positions": positions,
                    "titles": {"widget": titles, "tab": {"title": "Nodes"}},
                    "formatting": {"highlighting": []},
                    "display_mode_settings": {"positions": {}},
                },
            },
        }),
    )
}

/// The content pack for `spec`.
pub fn content_pack(spec: &PackSpec) -> Value {
    let mut entities = vec![entity(
        "input",
        "1",
        spec.uid("input"),
        json!({
            "title": s(&format!("GELF TCP ({} cluster)", spec.cluster)),
            "type": s("org.graylog2.inputs.gelf.tcp.GELFTCPInput"),
            "global": b(true),
            "configuration": {
                "bind_address": s("0.0.0.0"),
                "port": param(GELF_PORT_PARAMETER),
                "recv_buffer_size": int(1_048_576),
                "number_worker_threads": int(2),
                "tls_enable": b(false),
                "tcp_keepalive": b(true),
                "max_message_size": int(2_097_152),
            },
            "static_fields": {},
            "extractors": [],
        }),
    )];
    for node in &spec.nodes {
        entities.push(entity(
            "stream",
            "1",
            spec.uid(&format!("stream:{node}")),
            stream(
                &format!("{} node {node}", spec.cluster),
                &format!("Every event of node {node}"),
                vec![rule("EXACT", f::NODE_ID, node, "this node")],
            ),
        ));
    }
    let errors_stream = spec.uid("stream:errors");
    entities.push(entity(
        "stream",
        "1",
        errors_stream.clone(),
        stream(
            &format!("{} errors", spec.cluster),
            "Every failed request of every node: one event each, with error_code, error_category and the request id",
            vec![
                rule("PRESENCE", f::NODE_ID, "", "from a node"),
                rule("PRESENCE", f::ERROR_CODE, "", "a failure event"),
            ],
        ),
    ));
    let count = |id: &str| json!({"type": "count", "id": id});
    let alerts = [
        Alert {
            role: "alert:cuda-oom",
            title: format!("{}: CUDA out of memory on a node", spec.cluster),
            description: format!(
                "More than {} {} errors in one minute on one node: its GPU is out of memory (see gpu_memory_used_gb on the dashboard)",
                spec.oom_per_minute,
                Code::CudaOom.spec().code
            ),
            priority: 3,
            query: format!("{}:{}", f::ERROR_CODE, Code::CudaOom.spec().code),
            streams: vec![errors_stream.clone()],
            group_by: vec![f::NODE_ID],
            series: vec![count("oom")],
            condition: gt("oom", f64::from(spec.oom_per_minute)),
            window_ms: 60_000,
        },
        Alert {
            role: "alert:queue-full",
            title: format!("{}: a node refuses requests (queue full)", spec.cluster),
            description: format!(
                "More than {} {} refusals in 5 minutes on one node: it is saturated (add nodes or workers)",
                spec.queue_full_per_5min,
                Code::QueueFull.spec().code
            ),
            priority: 2,
            query: format!("{}:{}", f::ERROR_CODE, Code::QueueFull.spec().code),
            streams: vec![errors_stream.clone()],
            group_by: vec![f::NODE_ID],
            series: vec![count("refused")],
            condition: gt("refused", f64::from(spec.queue_full_per_5min)),
            window_ms: 300_000,
        },
        Alert {
            role: "alert:unauthorized",
            title: format!("{}: requests without a valid API key", spec.cluster),
            description: format!(
                "More than {} {} refusals in 5 minutes from one client_addr on one node: a client with a wrong or revoked key, or someone guessing keys",
                spec.unauthorized_per_5min,
                Code::Unauthorized.spec().code
            ),
            priority: 2,
            query: format!("{}:{}", f::ERROR_CODE, Code::Unauthorized.spec().code),
            streams: vec![errors_stream.clone()],
            group_by: vec![f::NODE_ID, f::CLIENT_ADDR],
            series: vec![count("refused")],
            condition: gt("refused", f64::from(spec.unauthorized_per_5min)),
            window_ms: 300_000,
        },
        Alert {
            role: "alert:gelf-drops",
            title: format!("{}: a node lost log events", spec.cluster),
            description: format!(
                "A node's GELF layer sent a drop notice ({} > 0): events were lost, {} says why",
                lf::GELF_DROPPED,
                lf::GELF_DROP_CAUSES
            ),
            priority: 2,
            query: format!("_exists_:{}", lf::GELF_DROPPED),
            streams: vec![],
            group_by: vec![f::NODE_ID],
            series: vec![json!({"type": "sum", "id": "lost", "field": lf::GELF_DROPPED})],
            condition: gt("lost", 0.0),
            window_ms: 300_000,
        },
        Alert {
            role: "alert:unknown-errors",
            title: format!("{}: an error no rule explains", spec.cluster),
            description: format!(
                "An event with {}:{}: an error_code the attribution rules do not know (a new failure mode)",
                lf::ERROR_CATEGORY,
                lf::UNKNOWN_CATEGORY
            ),
            priority: 2,
            query: format!("{}:{}", lf::ERROR_CATEGORY, lf::UNKNOWN_CATEGORY),
            streams: vec![],
            group_by: vec![f::NODE_ID, f::ERROR_CODE],
            series: vec![count("unknown")],
            condition: gt("unknown", 0.0),
            window_ms: 300_000,
        },
        Alert {
            role: "alert:p95-latency",
            title: format!("{}: a node is slow (p95 duration_ms)", spec.cluster),
            description: format!(
                "p95 {} over 5 minutes above {} ms on one node (with at least 5 requests)",
                f::DURATION_MS,
                spec.p95_bound_ms
            ),
            priority: 2,
            query: format!("_exists_:{}", f::DURATION_MS),
            streams: vec![],
            group_by: vec![f::NODE_ID],
            series: vec![
                json!({"type": "percentile", "id": "p95", "field": f::DURATION_MS, "percentile": 95.0}),
                count("n"),
            ],
            condition: json!({"expr": "&&",
                "left": gt("p95", spec.p95_bound_ms as f64),
                "right": {"expr": ">=", "left": {"expr": "number-ref", "ref": "n"}, "right": {"expr": "number", "value": 5.0}}}),
            window_ms: 300_000,
        },
    ];
    for a in alerts {
        entities.push(event_definition(spec, a));
    }
    entities.push(entity(
        "notification",
        "1",
        spec.uid("notification"),
        json!({
            "title": s(&format!("{} alerts webhook", spec.cluster)),
            "description": s("POSTs each alert of the cluster's event definitions"),
            "config": {"type": "http-notification-v1", "url": s(&spec.webhook_url)},
        }),
    ));
    entities.push(entity(
        "url_allowlist_entry",
        "1",
        spec.uid("allowlist"),
        json!({
            "id": spec.uid("allowlist-entry"),
            "type": "literal",
            "title": format!("{} alerts webhook", spec.cluster),
            "value": spec.webhook_url,
        }),
    ));
    entities.push(dashboard(spec));
    json!({
        "v": "1",
        "id": spec.pack_id(),
        "rev": spec.rev,
        "name": format!("{} cluster (tts-node)", spec.cluster),
        "summary": "GELF input, a stream per node, an errors stream, alerts and a dashboard for a cluster of TTS nodes",
        "description": format!(
            "Made by `tts-node --print-graylog-pack` for the nodes {}. Install it with scripts/graylog-provision.sh (it also resumes the streams, which Graylog creates paused).",
            spec.nodes.join(", ")
        ),
        "vendor": "tts-node",
        "url": "",
        "parameters": [{
            "name": GELF_PORT_PARAMETER,
            "title": "GELF TCP port",
            "description": "The port the nodes' GELF_ENDPOINT points at",
            "type": "integer",
            "default_value": spec.gelf_port,
        }],
        "entities": entities,
    })
}
