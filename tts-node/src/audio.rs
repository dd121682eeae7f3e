//! The audio formats the node serves, whole or streamed: WAV and raw PCM
//! (16-bit little-endian mono at the voice's rate), MP3 (LAME), Opus in Ogg
//! (libopus, at 24 kHz after resampling) and FLAC (flacenc). An encoder takes
//! 16-bit samples piece by piece and returns the bytes that can be sent now;
//! `finish` returns the rest.
//!
//! Streamed WAV has a header whose sizes are 0xFFFFFFFF ("unknown length",
//! what most players, Chromium and Python's `soundfile` accept); whole WAV
//! has exact sizes. Streamed FLAC has a STREAMINFO without total length and
//! MD5 (both allowed to be unknown); whole FLAC has them. AAC is not served:
//! no free encoder is at hand.

use std::io::Write as _;
use std::num::NonZeroU32;

use flacenc::component::{BitRepr, Stream as FlacStream};
use flacenc::error::Verify;
use flacenc::source::{Fill, FrameBuf};
use rubato::{FftFixedInOut, Resampler};

/// What went wrong while encoding.
#[derive(Debug, thiserror::Error)]
#[error("{format} encoder: {message}")]
pub struct EncodeError {
    format: &'static str,
    message: String,
}

fn err(format: &'static str, e: impl std::fmt::Display) -> EncodeError {
    EncodeError {
        format,
        message: e.to_string(),
    }
}

/// An audio format of the API (OpenAI's `response_format` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Wav,
    Pcm,
    Mp3,
    Opus,
    Flac,
}

impl Format {
    /// The formats served, as the error message names them.
    pub const SERVED: &'static str = "wav, pcm, mp3, opus, flac";

    /// `None` for a name the node does not serve (`aac` among them).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            "mp3" => Self::Mp3,
            "opus" => Self::Opus,
            "flac" => Self::Flac,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Pcm => "pcm",
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Flac => "flac",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
            Self::Mp3 => "audio/mpeg",
            Self::Opus => "audio/ogg; codecs=opus",
            Self::Flac => "audio/flac",
        }
    }

    /// An encoder for mono 16-bit audio at `sample_rate`; `streamed` picks
    /// the streaming form of the container where it differs.
    pub fn encoder(
        self,
        sample_rate: u32,
        streamed: bool,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(match self {
            Self::Wav if streamed => Box::new(WavStream {
                sample_rate,
                header_sent: false,
            }),
            Self::Wav => Box::new(WavWhole {
                sample_rate,
                samples: Vec::new(),
            }),
            Self::Pcm => Box::new(Pcm),
            Self::Mp3 => Box::new(Mp3::new(sample_rate, streamed)?),
            Self::Opus => Box::new(OggOpus::new(sample_rate)?),
            Self::Flac if streamed => Box::new(FlacStreamed::new(sample_rate)?),
            Self::Flac => Box::new(FlacWhole {
                sample_rate,
                samples: Vec::new(),
            }),
        })
    }
}

/// Turns 16-bit mono samples into a format's bytes, piece by piece.
pub trait Encoder: Send {
    /// Appends to `out` the bytes `pcm` makes available now.
    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError>;
    /// Appends the rest.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError>;
}

fn pcm_le(pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len() * 2);
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

struct Pcm;

impl Encoder for Pcm {
    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        pcm_le(pcm, out);
        Ok(())
    }
    fn finish(&mut self, _: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// A 44-byte WAV header; `data_len` 0xFFFFFFFF means unknown.
pub fn wav_header(sample_rate: u32, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let riff_len = if data_len == u32::MAX {
        u32::MAX
    } else {
        data_len.saturating_add(36)
    };
    h[..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

struct WavStream {
    sample_rate: u32,
    header_sent: bool,
}

impl WavStream {
    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            out.extend_from_slice(&wav_header(self.sample_rate, u32::MAX));
            self.header_sent = true;
        }
    }
}

impl Encoder for WavStream {
    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.header(out);
        pcm_le(pcm, out);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.header(out);
        Ok(())
    }
}

/// Whole WAV (exact sizes), written by `hound`.
struct WavWhole {
    sample_rate: u32,
    samples: Vec<i16>,
}

impl Encoder for WavWhole {
    fn push(&mut self, pcm: &[i16], _: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.samples.extend_from_slice(pcm);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: self.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cur = std::io::Cursor::new(Vec::with_capacity(44 + self.samples.len() * 2));
        let mut w = hound::WavWriter::new(&mut cur, spec).map_err(|e| err("wav", e))?;
        {
            let mut w16 = w.get_i16_writer(self.samples.len() as u32);
            for s in &self.samples {
                w16.write_sample(*s);
            }
            w16.flush().map_err(|e| err("wav", e))?;
        }
        w.finalize().map_err(|e| err("wav", e))?;
        out.extend_from_slice(&cur.into_inner());
        Ok(())
    }
}

/// MP3 through LAME: 64 kbit/s constant bit rate, mono, at the voice's rate
/// (22,050 Hz is an MPEG-2 rate). A whole file starts with LAME's Info tag
/// (encoder delay and padding, so decoders play exactly the samples); a
/// stream cannot have it (it is written last, at the start), so a streamed
/// MP3 decodes up to about 70 ms longer, silence at its ends.
struct Mp3 {
    lame: mp3lame_encoder::Encoder,
    /// Whole mode: everything, to put the tag in front at the end.
    whole: Option<Vec<u8>>,
}

impl Mp3 {
    fn new(sample_rate: u32, streamed: bool) -> Result<Self, EncodeError> {
        let e = |e: mp3lame_encoder::BuildError| err("mp3", format!("{e:?}"));
        let mut b =
            mp3lame_encoder::Builder::new().ok_or_else(|| err("mp3", "LAME could not start"))?;
        b.set_num_channels(1).map_err(e)?;
        b.set_sample_rate(sample_rate).map_err(e)?;
        b.set_output_sample_rate(NonZeroU32::new(sample_rate))
            .map_err(e)?;
        b.set_brate(mp3lame_encoder::Bitrate::Kbps64).map_err(e)?;
        b.set_quality(mp3lame_encoder::Quality::Good).map_err(e)?;
        b.set_to_write_vbr_tag(!streamed).map_err(e)?;
        Ok(Self {
            lame: b.build().map_err(e)?,
            whole: (!streamed).then(Vec::new),
        })
    }
}

impl Encoder for Mp3 {
    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let out = self.whole.as_mut().unwrap_or(out);
        out.reserve(mp3lame_encoder::max_required_buffer_size(pcm.len()));
        self.lame
            .encode_to_vec(mp3lame_encoder::MonoPcm(pcm), out)
            .map_err(|e| err("mp3", format!("{e:?}")))?;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let buf = self.whole.as_mut().unwrap_or(out);
        buf.reserve(7200);
        self.lame
            .flush_to_vec::<mp3lame_encoder::FlushGap>(buf)
            .map_err(|e| err("mp3", format!("{e:?}")))?;
        if let Some(mut whole) = self.whole.take() {
            // LAME left room for the Info tag in front: fill it in.
            let mut tag = Vec::with_capacity(self.lame.lame_tag_size().max(1));
            if self.lame.lame_tag_encode_to_vec(&mut tag).is_some() && tag.len() <= whole.len() {
                whole[..tag.len()].copy_from_slice(&tag);
            }
            out.append(&mut whole);
        }
        Ok(())
    }
}

/// Opus in Ogg (RFC 7845): the voice resampled to 24 kHz, 20 ms frames,
/// one Ogg page per piece so that it streams.
struct OggOpus {
    opus: opus::Encoder,
    resampler: FftFixedInOut<f32>,
    /// Input samples waiting for a whole resampler chunk.
    pending_in: Vec<f32>,
    /// Resampled samples waiting for a whole Opus frame.
    pending_out: Vec<i16>,
    /// Resampler output still to drop (its delay).
    skip: usize,
    ogg: ogg::PacketWriter<'static, Vec<u8>>,
    /// Input samples seen, for the final granule position.
    input_samples: u64,
    input_rate: u32,
    /// 48 kHz samples in the packets written so far.
    granule: u64,
    pre_skip: u16,
    headers_sent: bool,
}

const OPUS_RATE: u32 = 24_000;
const OPUS_FRAME: usize = 480; // 20 ms at 24 kHz
const OGG_SERIAL: u32 = 0x7474_5331;

impl OggOpus {
    fn new(sample_rate: u32) -> Result<Self, EncodeError> {
        let mut opus = opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)
            .map_err(|e| err("opus", e))?;
        opus.set_bitrate(opus::Bitrate::Bits(32_000))
            .map_err(|e| err("opus", e))?;
        let lookahead = opus.get_lookahead().map_err(|e| err("opus", e))?;
        // Lookahead is in 24 kHz samples; pre-skip counts 48 kHz samples.
        let pre_skip = u16::try_from(lookahead.max(0) * 2).unwrap_or(u16::MAX);
        let resampler =
            FftFixedInOut::<f32>::new(sample_rate as usize, OPUS_RATE as usize, 1024, 1)
                .map_err(|e| err("opus", e))?;
        let skip = resampler.output_delay();
        Ok(Self {
            opus,
            resampler,
            pending_in: Vec::new(),
            pending_out: Vec::new(),
            skip,
            ogg: ogg::PacketWriter::new(Vec::new()),
            input_samples: 0,
            input_rate: sample_rate,
            granule: 0,
            pre_skip,
            headers_sent: false,
        })
    }

    fn headers(&mut self) -> Result<(), EncodeError> {
        if self.headers_sent {
            return Ok(());
        }
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&self.pre_skip.to_le_bytes());
        head.extend_from_slice(&self.input_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family
        let vendor = b"tts-node";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        let end = ogg::PacketWriteEndInfo::EndPage;
        self.ogg
            .write_packet(head, OGG_SERIAL, end, 0)
            .map_err(|e| err("opus", e))?;
        self.ogg
            .write_packet(tags, OGG_SERIAL, end, 0)
            .map_err(|e| err("opus", e))?;
        self.headers_sent = true;
        Ok(())
    }

    /// Resamples what `pending_in` holds in whole chunks (all of it, padded,
    /// when `last`).
    fn resample(&mut self, last: bool) -> Result<(), EncodeError> {
        loop {
            let need = self.resampler.input_frames_next();
            let chunk: Vec<f32> = if self.pending_in.len() >= need {
                self.pending_in.drain(..need).collect()
            } else if last && !self.pending_in.is_empty() {
                std::mem::take(&mut self.pending_in)
            } else {
                return Ok(());
            };
            let out = if chunk.len() == need {
                self.resampler.process(&[chunk], None)
            } else {
                self.resampler.process_partial(Some(&[chunk]), None)
            }
            .map_err(|e| err("opus", e))?;
            for &x in out.first().map(Vec::as_slice).unwrap_or_default() {
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                self.pending_out
                    .push((x * 32767.0).clamp(-32768.0, 32767.0) as i16);
            }
        }
    }

    /// Encodes whole frames of `pending_out` into packets on one page.
    fn encode_frames(
        &mut self,
        end: ogg::PacketWriteEndInfo,
        final_granule: Option<u64>,
    ) -> Result<(), EncodeError> {
        let mut packet = vec![0u8; 4000];
        let frames = self.pending_out.len() / OPUS_FRAME;
        for i in 0..frames {
            let frame: Vec<i16> = self.pending_out.drain(..OPUS_FRAME).collect();
            let n = self
                .opus
                .encode(&frame, &mut packet)
                .map_err(|e| err("opus", e))?;
            self.granule += (OPUS_FRAME * 2) as u64;
            let last = i + 1 == frames;
            let info = if last {
                end
            } else {
                ogg::PacketWriteEndInfo::NormalPacket
            };
            let granule = match (last, final_granule) {
                (true, Some(g)) => g,
                _ => self.granule + u64::from(self.pre_skip),
            };
            self.ogg
                .write_packet(packet[..n].to_vec(), OGG_SERIAL, info, granule)
                .map_err(|e| err("opus", e))?;
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        out.append(self.ogg.inner_mut());
    }
}

impl Encoder for OggOpus {
    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.headers()?;
        self.input_samples += pcm.len() as u64;
        self.pending_in
            .extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        self.resample(false)?;
        self.encode_frames(ogg::PacketWriteEndInfo::EndPage, None)?;
        self.drain(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.headers()?;
        self.resample(true)?;
        // Flush the resampler's delay, then pad to a whole frame: the final
        // granule position tells the decoder where the audio ends.
        let flush = vec![0.0f32; self.resampler.input_frames_next()];
        self.pending_in.extend(flush);
        self.resample(true)?;
        let pad = (OPUS_FRAME - self.pending_out.len() % OPUS_FRAME) % OPUS_FRAME;
        self.pending_out.extend(std::iter::repeat_n(0, pad));
        if self.pending_out.is_empty() {
            self.pending_out.extend(std::iter::repeat_n(0, OPUS_FRAME));
        }
        let total_48k = self.input_samples * 48_000 / u64::from(self.input_rate.max(1));
        let final_granule = u64::from(self.pre_skip) + total_48k;
        self.encode_frames(ogg::PacketWriteEndInfo::EndStream, Some(final_granule))?;
        self.drain(out);
        Ok(())
    }
}

const FLAC_BLOCK: usize = 4096;

fn flac_config() -> Result<flacenc::error::Verified<flacenc::config::Encoder>, EncodeError> {
    flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| err("flac", format!("{e:?}")))
}

/// The bytes of a FLAC component (the stream's header, a frame).
fn flac_bytes(c: &impl BitRepr) -> Result<Vec<u8>, EncodeError> {
    let mut sink = flacenc::bitsink::ByteSink::new();
    c.write(&mut sink)
        .map_err(|e| err("flac", format!("{e:?}")))?;
    Ok(sink.as_slice().to_vec())
}

/// `fLaC` and a STREAMINFO for a stream of unknown length: blocks of
/// [`FLAC_BLOCK`] samples, mono, 16 bits; frame sizes, total samples and MD5
/// zero, which the format defines as "unknown".
fn flac_stream_header(sample_rate: u32) -> [u8; 42] {
    let mut h = [0u8; 42];
    h[..4].copy_from_slice(b"fLaC");
    h[4] = 0x80; // last metadata block, type 0 (STREAMINFO)
    h[5..8].copy_from_slice(&[0, 0, 34]);
    let block = (FLAC_BLOCK as u16).to_be_bytes();
    h[8..10].copy_from_slice(&block);
    h[10..12].copy_from_slice(&block);
    // 13..18: min and max frame size, unknown (0).
    // Sample rate (20 bits), channels − 1 (3 bits), bits per sample − 1
    // (5 bits), total samples (36 bits, 0: unknown).
    let sr = sample_rate & 0xF_FFFF;
    h[18] = (sr >> 12) as u8;
    h[19] = (sr >> 4) as u8;
    let bps_minus_1: u32 = 15;
    h[20] = (((sr & 0xF) << 4) | (bps_minus_1 >> 4)) as u8; // channels − 1 = 0
    h[21] = ((bps_minus_1 & 0xF) << 4) as u8;
    // 22..26: rest of total samples (0); 26..42: MD5 (0: unknown).
    h
}

/// FLAC frames of 4096 samples as they fill; STREAMINFO with unknown length.
struct FlacStreamed {
    sample_rate: u32,
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    stream: FlacStream,
    pending: Vec<i32>,
    frame_number: usize,
    header_sent: bool,
}

impl FlacStreamed {
    fn new(sample_rate: u32) -> Result<Self, EncodeError> {
        let mut stream = FlacStream::new(sample_rate as usize, 1, 16)
            .map_err(|e| err("flac", format!("{e:?}")))?;
        stream
            .stream_info_mut()
            .set_block_sizes(FLAC_BLOCK, FLAC_BLOCK)
            .map_err(|e| err("flac", format!("{e:?}")))?;
        Ok(Self {
            sample_rate,
            config: flac_config()?,
            stream,
            pending: Vec::new(),
            frame_number: 0,
            header_sent: false,
        })
    }

    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if !self.header_sent {
            out.extend_from_slice(&flac_stream_header(self.sample_rate));
            self.header_sent = true;
        }
        Ok(())
    }

    fn frames(&mut self, out: &mut Vec<u8>, last: bool) -> Result<(), EncodeError> {
        while self.pending.len() >= FLAC_BLOCK || (last && !self.pending.is_empty()) {
            let n = self.pending.len().min(FLAC_BLOCK);
            let block: Vec<i32> = self.pending.drain(..n).collect();
            let mut fb = FrameBuf::with_size(1, n).map_err(|e| err("flac", format!("{e:?}")))?;
            fb.fill_interleaved(&block)
                .map_err(|e| err("flac", format!("{e:?}")))?;
            let frame = flacenc::encode_fixed_size_frame(
                &self.config,
                &fb,
                self.frame_number,
                self.stream.stream_info(),
            )
            .map_err(|e| err("flac", format!("{e:?}")))?;
            self.frame_number += 1;
            out.extend_from_slice(&flac_bytes(&frame)?);
        }
        Ok(())
    }
}

impl Encoder for FlacStreamed {
    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.header(out)?;
        self.pending.extend(pcm.iter().map(|&s| i32::from(s)));
        self.frames(out, false)
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.header(out)?;
        self.frames(out, true)
    }
}

/// Whole FLAC: STREAMINFO with the length and MD5.
struct FlacWhole {
    sample_rate: u32,
    samples: Vec<i32>,
}

impl Encoder for FlacWhole {
    fn push(&mut self, pcm: &[i16], _: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.samples.extend(pcm.iter().map(|&s| i32::from(s)));
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let source = flacenc::source::MemSource::from_samples(
            &self.samples,
            1,
            16,
            self.sample_rate as usize,
        );
        let stream = flacenc::encode_with_fixed_block_size(&flac_config()?, source, FLAC_BLOCK)
            .map_err(|e| err("flac", format!("{e:?}")))?;
        out.write_all(&flac_bytes(&stream)?)
            .map_err(|e| err("flac", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * 0.07).sin() * 12_000.0) as i16)
            .collect()
    }

    fn encode(f: Format, streamed: bool, pieces: &[&[i16]]) -> Vec<u8> {
        let mut e = f.encoder(22_050, streamed).unwrap();
        let mut out = Vec::new();
        for p in pieces {
            e.push(p, &mut out).unwrap();
        }
        e.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn every_format_writes_its_container() {
        let pcm = tone(30_000);
        let pieces: [&[i16]; 3] = [&pcm[..7_000], &pcm[7_000..20_000], &pcm[20_000..]];
        for streamed in [false, true] {
            let wav = encode(Format::Wav, streamed, &pieces);
            assert_eq!(&wav[..4], b"RIFF");
            assert_eq!(wav.len(), 44 + 60_000);
            let size = u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]);
            assert_eq!(size, if streamed { u32::MAX } else { 60_000 });
            assert_eq!(encode(Format::Pcm, streamed, &pieces).len(), 60_000);
            let mp3 = encode(Format::Mp3, streamed, &pieces);
            assert!(
                mp3.len() > 1000 && mp3[0] == 0xff && mp3[1] & 0xe0 == 0xe0,
                "MPEG sync"
            );
            let ogg = encode(Format::Opus, streamed, &pieces);
            assert_eq!(&ogg[..4], b"OggS");
            assert!(ogg.windows(8).any(|w| w == b"OpusHead"));
            let flac = encode(Format::Flac, streamed, &pieces);
            assert_eq!(&flac[..4], b"fLaC");
        }
    }

    #[test]
    fn streamed_formats_give_bytes_before_the_end() {
        let pcm = tone(22_050);
        for f in [
            Format::Wav,
            Format::Pcm,
            Format::Mp3,
            Format::Opus,
            Format::Flac,
        ] {
            let mut e = f.encoder(22_050, true).unwrap();
            let mut out = Vec::new();
            e.push(&pcm, &mut out).unwrap();
            assert!(!out.is_empty(), "{f:?} streams");
        }
    }

    #[test]
    fn unknown_and_aac_are_not_served() {
        assert_eq!(Format::parse("aac"), None);
        assert_eq!(Format::parse("ogg"), None);
        assert_eq!(Format::parse("mp3"), Some(Format::Mp3));
    }
}
