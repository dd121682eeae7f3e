//! The `tracing_subscriber::Layer`: encodes each event on the caller's thread
//! and hands the frame to the bounded queue without ever blocking.

use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::attribution::AttributionRules;
use crate::encode::{encode_event, EncodeConfig, FieldVisitor, OwnedField, Scratch};
use crate::fields;
use crate::redact::Redactor;
use crate::worker::{Shared, IN_WORKER};
use crate::{GelfLayerBuilder, OverflowPolicy};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch space, or a fresh one when it is in use
/// (re-entry: a `Debug` impl that logs while it is being formatted).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// A [`Layer`] that sends every event, with the fields of the spans it is in,
/// to Graylog as GELF 1.1.
///
/// Made by [`GelfLayer::builder`]; see the [crate documentation](crate) for
/// the full picture. Combine it with a filter to choose what is shipped:
///
/// ```
/// use tracing_subscriber::{filter::LevelFilter, prelude::*};
///
/// let (gelf, _guard) = gelf_tracing::GelfLayer::builder()
///     .endpoint("tcp://127.0.0.1:12201")?
///     .static_field("node_id", "tts-node-01")
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(gelf.with_filter(LevelFilter::INFO));
/// tracing::subscriber::with_default(subscriber, || tracing::info!(answer = 42, "hello"));
/// # Ok::<(), gelf_tracing::BuildError>(())
/// ```
pub struct GelfLayer {
    pub(crate) tx: Sender<Vec<u8>>,
    /// Used only to evict the oldest frame under [`OverflowPolicy::DropOldest`].
    pub(crate) evict: Receiver<Vec<u8>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) inner: Arc<LayerConfig>,
    #[cfg(feature = "opentelemetry")]
    pub(crate) otel: crate::otel::OtelLookup,
}

/// Encoding settings the layer needs on every event.
pub(crate) struct LayerConfig {
    /// Tells this layer's entries apart in the per-thread callsite caches.
    pub(crate) id: usize,
    pub(crate) encode: EncodeConfig,
    pub(crate) redactor: Redactor,
    pub(crate) statics: Vec<OwnedField>,
    pub(crate) levels: [u8; 5],
    pub(crate) queue_max_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) attribution: Option<Arc<AttributionRules>>,
}

/// What the layer keeps per span: its fields, sanitised and redacted when
/// recorded, and its path from the root (`request:synthesize`), for `_span`.
struct SpanFields {
    fields: Vec<OwnedField>,
    path: Box<str>,
}

impl GelfLayer {
    /// Starts building a layer. See [`GelfLayerBuilder`].
    ///
    /// ```
    /// let builder = gelf_tracing::GelfLayer::builder();
    /// # drop(builder);
    /// ```
    pub fn builder() -> GelfLayerBuilder {
        GelfLayerBuilder::default()
    }

    fn level_of(&self, level: &Level) -> u8 {
        let i = match *level {
            Level::ERROR => 0,
            Level::WARN => 1,
            Level::INFO => 2,
            Level::DEBUG => 3,
            Level::TRACE => 4,
        };
        self.inner.levels[i]
    }

    fn record_span_fields<F>(
        &self,
        meta: &'static Metadata<'static>,
        fields: &mut Vec<OwnedField>,
        record: F,
    ) where
        F: FnOnce(&mut FieldVisitor<'_>),
    {
        let cfg = &*self.inner;
        with_scratch(|scratch| {
            scratch.clear();
            let infos = scratch.callsites.get(cfg.id, meta, &cfg.redactor);
            let mut v = FieldVisitor {
                scratch,
                infos: &infos,
                redactor: &cfg.redactor,
                is_event: false,
            };
            record(&mut v);
            scratch.drain_into_owned(fields);
        });
    }

    fn encode<S>(&self, scratch: &mut Scratch, event: &Event<'_>, ctx: &Context<'_, S>) -> Vec<u8>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let cfg = &*self.inner;
        let meta = event.metadata();
        scratch.clear();
        let infos = scratch.callsites.get(cfg.id, meta, &cfg.redactor);
        event.record(&mut FieldVisitor {
            scratch,
            infos: &infos,
            redactor: &cfg.redactor,
            is_event: true,
        });
        let mut leaf_path = None;
        if let Some(scope) = ctx.event_scope(event) {
            // Leaf first: inner spans override outer ones.
            for span in scope {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    if leaf_path.is_none() {
                        leaf_path = Some(span.id());
                    }
                    for field in &f.fields {
                        scratch.add_owned_if_absent(field);
                    }
                }
            }
        }
        for field in &cfg.statics {
            scratch.add_owned_if_absent(field);
        }
        // Only ERROR and WARN events are classified: the rest pay nothing.
        if let Some(rules) = cfg
            .attribution
            .as_deref()
            .filter(|_| *meta.level() <= Level::WARN)
        {
            if let Some(fields) =
                rules.attribute(scratch.text_value("error_code"), scratch.message_text())
            {
                for f in fields {
                    scratch.add_owned_if_absent(f);
                }
            }
        }
        scratch.add_meta_str(fields::TARGET, meta.target());
        if let Some(m) = meta.module_path() {
            scratch.add_meta_str(fields::MODULE_PATH, m);
        }
        if let Some(f) = meta.file() {
            scratch.add_meta_str(fields::FILE, f);
        }
        if let Some(l) = meta.line() {
            scratch.add_meta_u64(fields::LINE, u64::from(l));
        }
        if let Some(span) = leaf_path.and_then(|id| ctx.span(&id)) {
            if let Some(f) = span.extensions().get::<SpanFields>() {
                scratch.add_meta_str(fields::SPAN, &f.path);
            }
        }
        #[cfg(feature = "opentelemetry")]
        if let Some((trace_id, span_id)) = ctx
            .event_span(event)
            .and_then(|span| self.otel.ids(&span.id()))
        {
            scratch.add_meta_str(fields::TRACE_ID, &trace_id);
            scratch.add_meta_str(fields::SPAN_ID, &span_id);
        }
        let mut out = Vec::with_capacity(scratch.size_hint());
        let outcome = encode_event(
            &cfg.encode,
            scratch,
            self.level_of(meta.level()),
            SystemTime::now(),
            meta.name(),
            &mut out,
        );
        scratch.note_size(out.len());
        if outcome.truncated {
            self.shared.counters.truncated.fetch_add(1, Relaxed);
        }
        out
    }

    /// Queues a frame; never blocks. Counts a drop when the queue is full.
    fn enqueue(&self, frame: Vec<u8>) {
        let c = &self.shared.counters;
        let len = frame.len();
        let max = self.inner.queue_max_bytes;
        let mut frame = frame;
        for _ in 0..64 {
            let over_bytes = c.queued_bytes.fetch_add(len, Relaxed) + len > max;
            let result = if over_bytes {
                c.queued_bytes.fetch_sub(len, Relaxed);
                Err(TrySendError::Full(frame))
            } else {
                self.tx.try_send(frame).inspect_err(|_| {
                    c.queued_bytes.fetch_sub(len, Relaxed);
                })
            };
            match result {
                Ok(()) => return,
                Err(TrySendError::Full(f)) if self.shared.spool.is_some() => {
                    // With a spool, a full queue costs this thread one file
                    // append instead of the event (nothing while the spool
                    // pauses after a failed write).
                    if let Some(a) = self.shared.spool_frames(&[f.as_slice()]) {
                        c.dropped_spool_io
                            .fetch_add(a.count(crate::spool::Fate::Failed), Relaxed);
                    }
                    return;
                }
                Err(TrySendError::Full(f)) if self.inner.overflow == OverflowPolicy::DropOldest => {
                    match self.evict.try_recv() {
                        Ok(old) => {
                            c.queued_bytes.fetch_sub(old.len(), Relaxed);
                            c.dropped_queue_full.fetch_add(1, Relaxed);
                            frame = f;
                        }
                        // The worker took everything meanwhile: try again.
                        Err(_) => frame = f,
                    }
                }
                Err(TrySendError::Full(_)) => {
                    c.dropped_queue_full.fetch_add(1, Relaxed);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    c.dropped_shutdown.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
        // Only reachable when other threads keep refilling the queue as fast as
        // this one evicts: give up on the new event rather than spin.
        c.dropped_queue_full.fetch_add(1, Relaxed);
    }
}

impl<S> Layer<S> for GelfLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    #[cfg(feature = "opentelemetry")]
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        self.otel.register(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Vec::new();
        self.record_span_fields(attrs.metadata(), &mut fields, |v| attrs.record(v));
        let path = match span.parent() {
            Some(parent) => match parent.extensions().get::<SpanFields>() {
                Some(p) => format!("{}:{}", p.path, span.name()),
                None => span
                    .scope()
                    .from_root()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(":"),
            },
            None => span.name().to_owned(),
        };
        span.extensions_mut().insert(SpanFields {
            fields,
            path: path.into(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let meta = span.metadata();
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(f) => self.record_span_fields(meta, &mut f.fields, |v| values.record(v)),
            None => {
                // Spans created before this layer existed have no entry yet.
                let mut fields = Vec::new();
                self.record_span_fields(meta, &mut fields, |v| values.record(v));
                ext.insert(SpanFields {
                    fields,
                    path: span.name().into(),
                });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if IN_WORKER.with(|w| w.get()) {
            return;
        }
        let c = &self.shared.counters;
        c.emitted.fetch_add(1, Relaxed);
        if self.shared.shutdown.load(Relaxed) {
            c.dropped_shutdown.fetch_add(1, Relaxed);
            return;
        }
        if self.inner.overflow == OverflowPolicy::DropNewest
            && self.shared.spool.is_none()
            && self.tx.is_full()
        {
            // Overloaded: do not spend the caller's time encoding an event that
            // cannot be queued.
            c.dropped_queue_full.fetch_add(1, Relaxed);
            return;
        }
        let frame = with_scratch(|scratch| self.encode(scratch, event, &ctx));
        self.enqueue(frame);
    }
}

impl std::fmt::Debug for GelfLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GelfLayer")
            .field("host", &self.inner.encode.host)
            .field("queue_max_bytes", &self.inner.queue_max_bytes)
            .field("overflow", &self.inner.overflow)
            .finish_non_exhaustive()
    }
}
