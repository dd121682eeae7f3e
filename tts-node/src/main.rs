//! The TTS node: loads the voices from the model cache (each behind the
//! engine seam, `models::Engine`), serves the web UI and
//! the HTTP API, and logs one GELF event per request.

mod access;
mod api;
mod audio;
mod config;
mod controls;
mod engine;
mod errors;
mod fields;
mod graylog;
mod language;
mod metrics;
mod request;
mod respond;
mod segment;
mod speakers;
mod state;
mod telemetry;
mod tls;
mod voices;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, DeviceChoice};
use crate::engine::{Engine, Segmenting};
use crate::state::{AppState, Ready};
use crate::telemetry::GpuMonitor;
use crate::voices::Voices;

/// See Cargo.toml: the voice's per-convolution buffers are reused rather than
/// returned to the kernel and faulted in again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// GPU memory under which the node warns at start.
const LOW_GPU_MEMORY_GB: f64 = 4.0;

/// The node could not listen on its address (port taken, address not
/// local): logged with its own `error_code`, `LISTEN_FAIL`, not as a model
/// failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (--host/--port, TTS_HOST/TTS_PORT)")]
struct ListenError {
    addr: String,
    #[source]
    source: std::io::Error,
}

fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    if cfg.print_attribution_rules {
        print!("{}", errors::attribution_toml());
        return Ok(());
    }
    if cfg.print_error_table {
        print!("{}", errors::markdown_table());
        return Ok(());
    }
    if cfg.print_graylog_fields {
        println!(
            "{}",
            serde_json::to_string_pretty(&fields::catalogue_json())?
        );
        return Ok(());
    }
    if cfg.print_graylog_pack {
        let pack = graylog::pack::content_pack(&cfg.graylog_pack_spec()?);
        println!("{}", serde_json::to_string_pretty(&pack)?);
        return Ok(());
    }
    if let Some(file) = &cfg.check_graylog_pack {
        return graylog::check_file(file);
    }
    if cfg.hash_api_key {
        return hash_api_key();
    }
    if cfg.new_api_key {
        let key = access::new_key().map_err(|_| anyhow::anyhow!("no system randomness"))?;
        println!("key:  {key}\nhash: {}", access::hash_key(&key));
        return Ok(());
    }
    cfg.validate()?;
    let telemetry = telemetry::init(&cfg)?;
    if let Some(request_id) = &cfg.send_gelf_test_event {
        return send_test_event(&cfg, &telemetry, request_id);
    }
    let access = access::Access::new(cfg.api_keys_file.as_deref(), &cfg.cors_origins)
        .context("--api-keys-file / TTS_API_KEYS_FILE")?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::Tls::load(
            cert,
            key,
            cfg.tls_client_ca.as_deref(),
        )?)),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let gelf = telemetry.gelf.as_ref().map(gelf_tracing::GelfGuard::handle);
    let result = runtime.block_on(serve(cfg, gelf, access, tls));
    if let Err(e) = &result {
        let code = if e.downcast_ref::<ListenError>().is_some() {
            errors::Code::ListenFail
        } else {
            errors::Code::ModelLoadFail
        };
        errors::NodeError::new(code, format!("node failed: {e:#}")).log();
    }
    // Flushes queued GELF events (bounded by the layer's flush timeout).
    drop(telemetry);
    result
}

async fn serve(
    cfg: Config,
    gelf: Option<gelf_tracing::GelfHandle>,
    access: access::Access,
    tls: Option<Arc<tls::Tls>>,
) -> anyhow::Result<()> {
    let addr = (cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError {
            addr: format!("{}:{}", cfg.host, cfg.port),
            source,
        })?;
    let state = Arc::new(AppState::new(cfg.clone(), access, gelf));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        node_id = %cfg.node_id,
        version = env!("CARGO_PKG_VERSION"),
        listen = %format!("{}:{}", cfg.host, cfg.port),
        scheme,
        keys_required = state.access.requires_keys(),
        tls_client_auth = tls.as_ref().is_some_and(|t| t.client_auth()),
        "Node starting"
    );
    spawn_reloader(Arc::clone(&state), tls.clone());
    let app = api::router(Arc::clone(&state));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server_state = Arc::clone(&state);
    let server = tokio::spawn(async move {
        let shutdown = shutdown_signal(server_state, stop_rx);
        match tls {
            Some(tls) => tls::serve(listener, app, tls, shutdown).await,
            None => {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        }
    });

    let load_cfg = cfg.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&load_cfg))
        .await
        .context("the voice loader stopped")?;
    let ready = match loaded {
        Ok(r) => r,
        Err(e) => {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Err(e);
        }
    };
    let gpu_total = ready
        .gpu
        .as_ref()
        .and_then(GpuMonitor::memory)
        .map(|m| m.total_gb);
    tracing::info!(
        node_id = %cfg.node_id,
        version = env!("CARGO_PKG_VERSION"),
        device = %ready.device,
        gpu_name = ready.gpu.as_ref().map(|g| g.name.as_str()),
        gpu_memory_total_gb = gpu_total,
        voice = %ready.voices.default,
        voices = ready.voices.map.len() as u64,
        model_version = ready.voices.get(None).map(|v| v.info().model_version.clone()),
        voice_load_ms = ready.voices.load_time.as_millis() as u64,
        workers = ready.engine_workers as u64,
        queue_size = cfg.queue_size as u64,
        "Node ready on {scheme}://{}:{}/",
        cfg.host,
        cfg.port
    );
    if let Some(total) = gpu_total.filter(|t| *t < LOW_GPU_MEMORY_GB) {
        tracing::warn!(
            gpu_memory_total_gb = total,
            "GPU has under {LOW_GPU_MEMORY_GB} GB of memory"
        );
    }
    let _ = state.ready.set(ready.into_ready());

    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    if let Some(r) = state.ready.get() {
        let engine = &r.engine;
        tokio::task::block_in_place(|| engine.join());
    }
    tracing::info!(node_id = %cfg.node_id, "Node stopped");
    Ok(())
}

/// A loaded node, before it is published to the handlers.
struct Loaded {
    voices: Voices,
    engine: Engine,
    device: String,
    gpu: Option<GpuMonitor>,
    engine_workers: usize,
}

impl Loaded {
    fn into_ready(self) -> Ready {
        Ready {
            voices: self.voices,
            engine: self.engine,
            device: self.device,
            gpu: self.gpu,
        }
    }
}

/// The device to run on, its name for logs, and — when `auto` fell back to the
/// CPU — why CUDA was not used.
fn select_device(
    choice: DeviceChoice,
) -> anyhow::Result<(candle_core::Device, String, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((candle_core::Device::Cpu, "cpu".into(), None)),
        DeviceChoice::Cuda => candle_core::Device::new_cuda(0)
            .map(|d| (d, "cuda:0".into(), None))
            .context("--device cuda / TTS_DEVICE=cuda: no usable CUDA GPU (is the binary built with scripts/build-cuda.sh and is a driver present?)"),
        DeviceChoice::Auto => Ok(match candle_core::Device::new_cuda(0) {
            Ok(d) => (d, "cuda:0".into(), None),
            Err(e) => (candle_core::Device::Cpu, "cpu".into(), Some(e.to_string())),
        }),
    }
}

fn load(cfg: &Config) -> anyhow::Result<Loaded> {
    let (device, device_name, cuda_unavailable) = select_device(cfg.device)?;
    tracing::info!(
        device = %device_name,
        requested = ?cfg.device,
        cuda_unavailable = cuda_unavailable.as_deref(),
        "device selected"
    );
    let started = Instant::now();
    let hf_hub = cfg
        .hf_hub
        .clone()
        .unwrap_or_else(models::indextts2::checkpoint::AuxModels::default_hub_dir);
    let voices = Voices::load(&cfg.cache_dir, &cfg.voice, &hf_hub, &device)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "voices loaded"
    );
    let on_gpu = device_name != "cpu";
    let gpu = if on_gpu { GpuMonitor::open(0) } else { None };
    let workers = if on_gpu { 1 } else { cfg.workers };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match cfg.threads_per_worker {
        0 => (cores / workers).max(1),
        n => n,
    };
    let engine = Engine::start(
        workers,
        threads,
        cfg.queue_size,
        Segmenting {
            max_chars: cfg.max_segment_chars,
            silence_ms: cfg.segment_silence_ms,
        },
    )
    .context("starting the synthesis workers")?;
    Ok(Loaded {
        voices,
        engine,
        device: device_name,
        gpu,
        engine_workers: workers,
    })
}

/// Resolves on SIGTERM or Ctrl-C (or an internal stop): stops accepting, lets
/// queued requests finish within the grace period, then fails the rest.
async fn shutdown_signal(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        "SIGTERM"
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&str>();
    let internal = async {
        let _ = stop.wait_for(|v| *v).await;
        "startup failure"
    };
    let reason = tokio::select! {
        r = ctrl_c => r,
        r = term => r,
        r = internal => r,
    };
    let grace = state.cfg.shutdown_grace();
    if let Some(r) = state.ready.get() {
        tracing::info!(
            reason,
            queued = r.engine.depth() as u64,
            busy = r.engine.busy() as u64,
            grace_s = grace.as_secs_f64(),
            "Node shutting down: no new requests; finishing queued ones"
        );
        r.engine.close();
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(r) = st.ready.get() {
                let left = r.engine.depth();
                if left > 0 {
                    tracing::warn!(
                        queued = left as u64,
                        "shutdown grace over: failing queued requests with SHUTTING_DOWN"
                    );
                }
                r.engine.abort_queued();
            }
        });
    } else {
        tracing::info!(reason, "Node shutting down before the voice was loaded");
    }
}

/// On SIGHUP: reads the API keys file and the TLS certificate again. What
/// fails to load is logged and the old one stays in use; requests in flight
/// are not touched.
fn spawn_reloader(state: Arc<AppState>, tls: Option<Arc<tls::Tls>>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be caught: keys and certificates reload only on restart");
            return;
        };
        while hup.recv().await.is_some() {
            match state.access.reload() {
                Ok(Some(n)) => tracing::info!(keys = n as u64, "API keys reloaded (SIGHUP)"),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "API keys not reloaded (SIGHUP): the keys in use stay"
                ),
            }
            if let Some(t) = &tls {
                match t.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded (SIGHUP)"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS certificate not reloaded (SIGHUP): the one in use stays"
                    ),
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (state, tls);
}

/// `--hash-api-key`: the hash of the key on standard input (a key on the
/// command line would show in `ps` and shell history).
fn hash_api_key() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the key from standard input")?;
    let key = line.trim();
    if key.chars().count() < access::MIN_KEY_CHARS {
        anyhow::bail!(
            "--hash-api-key: give a key of at least {} characters on standard input (tts-node --new-api-key makes one)",
            access::MIN_KEY_CHARS
        );
    }
    println!("{}", access::hash_key(key));
    Ok(())
}

/// `--send-gelf-test-event`: one event through the layer, delivered or an error.
fn send_test_event(
    cfg: &Config,
    telemetry: &telemetry::Telemetry,
    request_id: &str,
) -> anyhow::Result<()> {
    let Some(gelf) = &telemetry.gelf else {
        anyhow::bail!("--send-gelf-test-event needs --gelf / GELF_ENDPOINT");
    };
    if !api::sane_request_id(request_id) {
        anyhow::bail!(
            "--send-gelf-test-event {request_id:?} is not a request id (1-128 of A-Za-z0-9._:-)"
        );
    }
    tracing::info!(
        { fields::NODE_ID } = %cfg.node_id,
        { fields::REQUEST_ID } = request_id,
        "Graylog provisioning test event"
    );
    gelf.flush(std::time::Duration::from_secs(30))
        .context("the test event was not delivered in 30 s")?;
    let stats = gelf.stats();
    if stats.sent == 0 || stats.dropped > 0 {
        anyhow::bail!(
            "the test event was not delivered to {:?} (sent {}, dropped {})",
            cfg.gelf,
            stats.sent,
            stats.dropped
        );
    }
    println!("sent a GELF test event with request_id {request_id}");
    Ok(())
}
