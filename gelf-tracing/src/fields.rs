//! The names of the fields the layer itself adds to GELF messages (without
//! GELF's leading `_`, as Graylog stores them), one definition each: the
//! layer writes them from here, and a Graylog stream, alert or dashboard
//! built from these constants names exactly what arrives.
//!
//! ```
//! use gelf_tracing::fields;
//!
//! // A Graylog query for every drop notice of the layer.
//! let query = format!("_exists_:{}", fields::GELF_DROPPED);
//! assert_eq!(query, "_exists_:gelf_dropped");
//! assert!(fields::ALL.contains(&fields::ERROR_CATEGORY));
//! ```

/// The event's `tracing` target.
pub const TARGET: &str = "target";
/// The event's module path, when it has one.
pub const MODULE_PATH: &str = "module_path";
/// The source file of the event.
pub const FILE: &str = "file";
/// The source line of the event.
pub const LINE: &str = "line";
/// The names of the spans the event is in, outermost first, `:`-separated.
pub const SPAN: &str = "span";
/// `"true"` on a message cut to the size limit.
pub const TRUNCATED: &str = "truncated";
/// Feature `opentelemetry`: the OpenTelemetry trace id of the event's span
/// (32 lower-case hex digits).
pub const TRACE_ID: &str = "trace_id";
/// Feature `opentelemetry`: the OpenTelemetry span id of the event's span
/// (16 lower-case hex digits).
pub const SPAN_ID: &str = "span_id";

/// Attribution ([`crate::AttributionRules`]): the component an error is in.
pub const COMPONENT: &str = "component";
/// Attribution: the error's category (`resource`, `input`, …, or `unknown`
/// when no rule knows the `error_code`).
pub const ERROR_CATEGORY: &str = "error_category";
/// The value of [`ERROR_CATEGORY`] for an error no rule explains.
pub const UNKNOWN_CATEGORY: &str = "unknown";
/// Attribution: `low`, `medium`, `high` or `critical`.
pub const SEVERITY: &str = "severity";
/// Attribution: the rule's root cause, when it has one.
pub const ROOT_CAUSE: &str = "root_cause";
/// Attribution: the rule's advice, when it has one.
pub const SOLUTION: &str = "solution";

/// Drop notice: events lost since the previous notice.
pub const GELF_DROPPED: &str = "gelf_dropped";
/// Drop notice: events lost since the layer was built.
pub const GELF_DROPPED_TOTAL: &str = "gelf_dropped_total";
/// Drop notice: the causes of the loss, `,`-separated (`queue_full`, …).
pub const GELF_DROP_CAUSES: &str = "gelf_drop_causes";
/// Drop notice: events lost because the queue was full and no spool took them.
pub const GELF_DROPPED_QUEUE_FULL: &str = "gelf_dropped_queue_full";
/// Drop notice: events lost because the process shut down first.
pub const GELF_DROPPED_SHUTDOWN: &str = "gelf_dropped_shutdown";
/// Drop notice: events an HTTP endpoint refused for good.
pub const GELF_DROPPED_REJECTED: &str = "gelf_dropped_rejected";
/// Drop notice: events the full spool refused.
pub const GELF_DROPPED_SPOOL_FULL: &str = "gelf_dropped_spool_full";
/// Drop notice: spooled events found corrupt.
pub const GELF_DROPPED_SPOOL_CORRUPT: &str = "gelf_dropped_spool_corrupt";
/// Drop notice: events the spool could not write or read.
pub const GELF_DROPPED_SPOOL_IO: &str = "gelf_dropped_spool_io";

/// Every field name above, for a check that a query names only what the
/// layer can write.
pub const ALL: &[&str] = &[
    TARGET,
    MODULE_PATH,
    FILE,
    LINE,
    SPAN,
    TRUNCATED,
    TRACE_ID,
    SPAN_ID,
    COMPONENT,
    ERROR_CATEGORY,
    SEVERITY,
    ROOT_CAUSE,
    SOLUTION,
    GELF_DROPPED,
    GELF_DROPPED_TOTAL,
    GELF_DROP_CAUSES,
    GELF_DROPPED_QUEUE_FULL,
    GELF_DROPPED_SHUTDOWN,
    GELF_DROPPED_REJECTED,
    GELF_DROPPED_SPOOL_FULL,
    GELF_DROPPED_SPOOL_CORRUPT,
    GELF_DROPPED_SPOOL_IO,
];

/// The fields of GELF 1.1 itself as Graylog stores them (`host` becomes
/// `source`, `short_message` becomes `message`), with `timestamp`.
pub const GELF_STANDARD: &[&str] = &["source", "message", "full_message", "level", "timestamp"];
