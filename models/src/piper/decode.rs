//! Which path the network's flow and decoder take: on the CPU the direct
//! kernels (`cpu_flow`, `cpu_decoder`, over channels-last rows), elsewhere
//! candle's modules ([`Vits::decode`]). The network itself ([`super::vits`])
//! knows nothing of its fast paths; this module picks one per voice.

use candle_core::Device;
use candle_nn::VarBuilder;

use super::cpu_decoder::CpuGenerator;
use super::cpu_flow::CpuFlow;
use super::vits::{Latent, Scales, Vits};
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// The flow and the decoder on the CPU.
#[derive(Debug, Clone)]
struct CpuPaths {
    flow: CpuFlow,
    dec: CpuGenerator,
}

/// A VITS network with the path its flow and decoder run on.
#[derive(Debug, Clone)]
pub struct Network {
    vits: Vits,
    cpu: Option<CpuPaths>,
}

impl Network {
    /// Loads the network (see [`Vits::load`]). On the CPU the flow and the
    /// decoder run as direct convolutions over channels-last rows;
    /// `PIPER_CANDLE_DECODER=1` keeps candle's modules instead, to compare
    /// the two.
    pub fn load(vb: &VarBuilder) -> Result<Self> {
        let candle = std::env::var("PIPER_CANDLE_DECODER").is_ok_and(|v| v == "1");
        Self::load_with(vb, !candle)
    }

    /// [`Self::load`], with the CPU's own flow and decoder when `native_cpu`
    /// (and the device is the CPU and the shapes allow it).
    pub(crate) fn load_with(vb: &VarBuilder, native_cpu: bool) -> Result<Self> {
        let mut vits = Vits::load(vb)?;
        let cpu = if native_cpu && vits.device().is_cpu() {
            match (
                CpuFlow::new(vits.flows()),
                CpuGenerator::new(vits.generator()),
            ) {
                (Ok(flow), Ok(dec)) => Some(CpuPaths { flow, dec }),
                _ => None,
            }
        } else {
            None
        };
        if cpu.is_some() {
            // Only the CPU flow runs: its packed copy is all that is kept.
            vits.release_flows();
        }
        Ok(Self { vits, cpu })
    }

    /// Everything before the decoder (see [`Vits::latent`]).
    pub fn latent(
        &self,
        ids: &[i64],
        scales: Scales,
        speaker: Option<u32>,
    ) -> Result<Option<Latent>> {
        self.vits.latent(ids, scales, speaker)
    }

    /// Audio samples (f32, about ±1) for one sentence's phoneme ids.
    pub fn infer(&self, ids: &[i64], scales: Scales, speaker: Option<u32>) -> Result<Vec<f32>> {
        match self.latent(ids, scales, speaker)? {
            Some(l) => self.decode(&l, 0, l.frames()),
            None => Ok(Vec::new()),
        }
    }

    /// The audio of latent frames `from..to`, with the same samples as the
    /// whole sentence has there (see [`Vits::decode`]), on this network's
    /// path.
    pub fn decode(&self, latent: &Latent, from: usize, to: usize) -> Result<Vec<f32>> {
        let Some(cpu) = &self.cpu else {
            return self.vits.decode(latent, from, to);
        };
        let Some(w) = self.vits.window(latent, from, to) else {
            return Ok(Vec::new());
        };
        let ((fa, fb), (a, b)) = (w.flow, w.dec);
        let (mut z, g) = Vits::rows(latent, (fa, fb))?;
        cpu.flow.reverse(&mut z, fb - fa, g.as_deref())?;
        let c = z.len() / (fb - fa).max(1);
        let audio = cpu
            .dec
            .forward_rows(&z[(a - fa) * c..(b - fa) * c], b - a, g.as_deref())?;
        Ok(w.trim(audio, self.samples_per_frame()))
    }

    /// Audio samples per latent frame.
    pub fn samples_per_frame(&self) -> usize {
        self.vits.samples_per_frame()
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        self.vits.device()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The CPU flow and decoder against candle's modules on the real voice,
    /// noise off, whole and in streamed pieces.
    #[test]
    fn the_cpu_flow_and_decoder_match_candles() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache_hub/piper/en_US-joe-medium");
        let onnx = dir.join("en_US-joe-medium.onnx");
        if !onnx.exists() {
            assert!(
                std::env::var_os("MODELS_REQUIRE_VOICE").is_none(),
                "MODELS_REQUIRE_VOICE is set but the voice is missing"
            );
            eprintln!("SKIPPED: needs the voice (run scripts/fetch-models.sh)");
            return;
        }
        let w = super::super::onnx::Weights::load(&onnx, &Device::Cpu).unwrap();
        let native = Network::load_with(&w.var_builder(&Device::Cpu), true).unwrap();
        let candle = Network::load_with(&w.var_builder(&Device::Cpu), false).unwrap();
        assert!(native.cpu.is_some() && native.vits.flows().is_empty());
        assert!(candle.cpu.is_none() && !candle.vits.flows().is_empty());
        let scales = Scales {
            noise_scale: 0.0,
            length_scale: 1.0,
            noise_w: 0.0,
        };
        // A sentence of phoneme ids in the voice's range, as ^ _ p _ … $.
        let ids: Vec<i64> = vec![
            1, 0, 20, 0, 121, 0, 24, 0, 122, 0, 3, 0, 32, 0, 120, 0, 121, 0, 88, 0, 3, 0, 16, 0,
            33, 0, 3, 0, 120, 0, 74, 0, 31, 0, 3, 0, 74, 0, 31, 0, 3, 0, 59, 0, 3, 0, 32, 0, 120,
            0, 61, 0, 31, 0, 32, 0, 10, 0, 2,
        ];
        let latent = native.latent(&ids, scales, None).unwrap().unwrap();
        let want = candle.decode(&latent, 0, latent.frames()).unwrap();
        let got = native.decode(&latent, 0, latent.frames()).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got.len() > 10_000, "{} samples", got.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "largest difference {worst}");
        // A piece from the middle equals the same samples of the whole.
        let spf = native.samples_per_frame();
        let piece = native.decode(&latent, 20, 40).unwrap();
        assert_eq!(piece.len(), 20 * spf);
        let worst = piece
            .iter()
            .zip(&got[20 * spf..40 * spf])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "piece differs from the whole by {worst}");
    }
}
