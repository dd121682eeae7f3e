//! The `tracing_subscriber::Layer`: encodes each event on the caller's thread
//! and hands the frame to the bounded queue without ever blocking.

use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::encode::{encode_event, EncodeConfig, FieldVisitor, OwnedField, Scratch};
use crate::redact::Redactor;
use crate::worker::{Shared, IN_WORKER};
use crate::{GelfLayerBuilder, OverflowPolicy};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
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
}

/// Encoding settings the layer needs on every event.
pub(crate) struct LayerConfig {
    pub(crate) encode: EncodeConfig,
    pub(crate) redactor: Redactor,
    pub(crate) statics: Vec<OwnedField>,
    pub(crate) levels: [u8; 5],
    pub(crate) queue_max_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
}

/// The fields of a span, sanitised and redacted when recorded.
struct SpanFields(Vec<OwnedField>);

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

    fn record_span_fields<F>(&self, fields: &mut Vec<OwnedField>, record: F)
    where
        F: FnOnce(&mut FieldVisitor<'_>),
    {
        let mut scratch = Scratch::default();
        let mut v = FieldVisitor {
            scratch: &mut scratch,
            redactor: &self.inner.redactor,
            is_event: false,
        };
        record(&mut v);
        scratch.drain_into_owned(fields);
    }

    fn encode<S>(&self, scratch: &mut Scratch, event: &Event<'_>, ctx: &Context<'_, S>) -> Vec<u8>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let cfg = &*self.inner;
        scratch.clear();
        event.record(&mut FieldVisitor {
            scratch,
            redactor: &cfg.redactor,
            is_event: true,
        });
        let meta = event.metadata();
        if let Some(scope) = ctx.event_scope(event) {
            // Leaf first: inner spans override outer ones.
            for span in scope {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    for field in &f.0 {
                        scratch.add_owned_if_absent(field);
                    }
                }
            }
        }
        for field in &cfg.statics {
            scratch.add_owned_if_absent(field);
        }
        scratch.add_meta_str("target", meta.target());
        if let Some(m) = meta.module_path() {
            scratch.add_meta_str("module_path", m);
        }
        if let Some(f) = meta.file() {
            scratch.add_meta_str("file", f);
        }
        if let Some(l) = meta.line() {
            scratch.add_meta_u64("line", u64::from(l));
        }
        if let Some(scope) = ctx.event_scope(event) {
            let start = scratch.begin_meta();
            for (i, span) in scope.from_root().enumerate() {
                let text = scratch.text_mut();
                if i > 0 {
                    text.push(':');
                }
                text.push_str(span.name());
            }
            scratch.finish_meta("span", start);
        }
        let mut out = Vec::with_capacity(384);
        let outcome = encode_event(
            &cfg.encode,
            scratch,
            self.level_of(meta.level()),
            SystemTime::now(),
            meta.name(),
            &mut out,
        );
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
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Vec::new();
        self.record_span_fields(&mut fields, |v| attrs.record(v));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(f) => self.record_span_fields(&mut f.0, |v| values.record(v)),
            None => {
                let mut fields = Vec::new();
                self.record_span_fields(&mut fields, |v| values.record(v));
                ext.insert(SpanFields(fields));
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
        let frame = SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.encode(&mut scratch, event, &ctx),
            // Re-entered (a Debug impl logged while being formatted): use a fresh scratch.
            Err(_) => self.encode(&mut Scratch::default(), event, &ctx),
        });
        self.enqueue(frame);
    }
}
