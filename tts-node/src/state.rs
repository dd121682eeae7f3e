//! What every handler shares: the node's configuration, its voices and
//! synthesis queue once loaded, its access rules, its speaker library, its
//! metrics and its GELF handle.

use std::sync::{Arc, OnceLock};

use crate::access::Access;
use crate::config::Config;
use crate::engine::Engine;
use crate::errors::{Code, NodeError};
use crate::metrics::Metrics;
use crate::speakers::Library;
use crate::telemetry::GpuMonitor;
use crate::voices::Voices;

/// What the node holds once its voices are loaded.
pub struct Ready {
    pub voices: Voices,
    pub engine: Engine,
    /// `cpu` or `cuda:0`.
    pub device: String,
    pub gpu: Option<GpuMonitor>,
}

/// State shared by every handler.
pub struct AppState {
    pub cfg: Config,
    pub ready: OnceLock<Ready>,
    pub access: Arc<Access>,
    pub speakers: Library,
    pub metrics: Metrics,
    pub gelf: Option<gelf_tracing::GelfHandle>,
}

impl AppState {
    /// The state of a node whose voices are still loading; the speaker
    /// library is `<cache-dir>/voices/`.
    pub fn new(cfg: Config, access: Access, gelf: Option<gelf_tracing::GelfHandle>) -> Self {
        Self {
            speakers: Library::open(&cfg.cache_dir.join("voices")),
            cfg,
            ready: OnceLock::new(),
            access: Arc::new(access),
            metrics: Metrics::default(),
            gelf,
        }
    }

    pub fn ready(&self) -> Result<&Ready, NodeError> {
        self.ready
            .get()
            .ok_or_else(|| NodeError::new(Code::NotReady, "the voice is still loading"))
    }
}
