//! Logging and GPU telemetry: stdout always, GELF when an endpoint is set
//! (every event carries `node_id`), and GPU memory read through NVML.

use anyhow::Context;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

use crate::config::Config;

/// Keeps the GELF worker alive; dropping it flushes (bounded).
pub struct Telemetry {
    pub gelf: Option<gelf_tracing::GelfGuard>,
}

/// Installs the global subscriber. `RUST_LOG` filters stdout (default `info`);
/// GELF receives INFO and above.
pub fn init(cfg: &Config) -> anyhow::Result<Telemetry> {
    let stdout_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_filter(stdout_filter);
    let (gelf_layer, guard) = match &cfg.gelf {
        Some(endpoint) => {
            let mut builder = gelf_tracing::GelfLayer::builder()
                .endpoint(endpoint)
                .context("--gelf / GELF_ENDPOINT")?
                .static_field(crate::fields::NODE_ID, cfg.node_id.as_str())
                .static_field(crate::fields::SERVICE, "tts-node")
                // A count of IndexTTS2's mel codes, not a secret "token".
                .not_secret(crate::fields::MEL_TOKENS)
                // The name of the request's API key (the keys file's
                // `name`); the key itself is never in a field.
                .not_secret(crate::fields::API_KEY_NAME)
                .attribution(cfg.attribution()?);
            if let Some(dir) = &cfg.gelf_spool_dir {
                builder = builder.spool_dir(dir);
            }
            let (layer, guard) = builder
                .build()
                .context("starting GELF delivery (--gelf / GELF_ENDPOINT, --gelf-spool-dir / GELF_SPOOL_DIR)")?;
            (Some(layer.with_filter(LevelFilter::INFO)), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(gelf_layer)
        .try_init()
        .context("installing the tracing subscriber")?;
    Ok(Telemetry { gelf: guard })
}

/// GPU memory figures in GiB (2^30 bytes, the unit nvidia-smi's MiB scale to);
/// the `_gb` field names in the logs mean the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuMemory {
    pub used_gb: f64,
    pub total_gb: f64,
    /// This process's own use, where the driver reports it.
    pub process_gb: Option<f64>,
}

/// Reads GPU memory through NVML for the GPU the node runs on.
pub struct GpuMonitor {
    nvml: nvml_wrapper::Nvml,
    index: u32,
    pub name: String,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl GpuMonitor {
    /// Opens NVML for GPU `index`; `None` where there is no NVIDIA driver.
    pub fn open(index: u32) -> Option<Self> {
        let nvml = nvml_wrapper::Nvml::init().ok()?;
        let name = nvml.device_by_index(index).ok()?.name().unwrap_or_default();
        Some(Self { nvml, index, name })
    }

    /// Current memory figures, or `None` when NVML cannot read them.
    pub fn memory(&self) -> Option<GpuMemory> {
        let dev = self.nvml.device_by_index(self.index).ok()?;
        let info = dev.memory_info().ok()?;
        let pid = std::process::id();
        let process_gb = dev.running_compute_processes().ok().and_then(|procs| {
            procs
                .iter()
                .find(|p| p.pid == pid)
                .and_then(|p| match p.used_gpu_memory {
                    nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b as f64 / GIB),
                    nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                })
        });
        Some(GpuMemory {
            used_gb: info.used as f64 / GIB,
            total_gb: info.total as f64 / GIB,
            process_gb,
        })
    }
}
