//! Trace correlation (cargo feature `opentelemetry`): when the subscriber
//! also has `tracing-opentelemetry`'s layer, each event carries the
//! OpenTelemetry trace and span ids of the span it is in, as `_trace_id`
//! (32 hex digits) and `_span_id` (16), so a Graylog search joins with the
//! trace in Jaeger, Tempo or any OpenTelemetry backend.
//!
//! Without that layer, or outside a span, or when the span is not sampled
//! into a valid context, the fields are left out.

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::Id;
use tracing_core::Dispatch;

/// The subscriber the layer is part of, to ask for a span's OpenTelemetry
/// context (a weak reference: the layer does not keep its subscriber alive).
#[derive(Default)]
pub(crate) struct OtelLookup {
    dispatch: OnceLock<WeakDispatch>,
}

impl OtelLookup {
    /// Called once, from `Layer::on_register_dispatch`.
    pub(crate) fn register(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    /// The trace and span ids (lower-case hex) of `span`, when it has a
    /// valid OpenTelemetry context. The caller must not hold the span's
    /// extensions (tracing-opentelemetry locks them).
    pub(crate) fn ids(&self, span: &Id) -> Option<(String, String)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(span, &dispatch)?;
        let otel_span = cx.span();
        let sc = otel_span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }
}
