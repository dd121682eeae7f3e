//! Audio I/O shared by the engines: 16-bit PCM encodings of f32 audio
//! (peak-normalised as Piper does, or at a fixed gain), WAV files written and
//! read (bounded, mixed to mono) with `hound`.

/// Scales to 16 bits like Piper: the loudest sample reaches full scale
/// (quiet output is amplified at most 100×); NaN and infinities become 0.
///
/// ```
/// let s = models::audio::wav::to_i16(&[0.0, 0.5, -0.25]);
/// assert_eq!(s, vec![0, 32767, -16383]);
/// ```
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    let peak = samples
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f32, |m, x| m.max(x.abs()))
        .max(0.01);
    to_i16_gain(samples, 1.0 / peak)
}

/// Scales by a fixed `gain` (see `Voice::calibrated_gain`) and clamps to 16
/// bits; NaN and infinities become 0. Unlike [`to_i16`] it needs no look-ahead,
/// so a stream and a whole response get the same samples.
///
/// ```
/// assert_eq!(models::audio::wav::to_i16_gain(&[0.5, -2.0], 1.5), vec![24575, -32768]);
/// ```
pub fn to_i16_gain(samples: &[f32], gain: f32) -> Vec<i16> {
    let scale = 32767.0 * gain;
    samples
        .iter()
        .map(|&x| {
            let v = if x.is_finite() { x * scale } else { 0.0 };
            v.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Raw little-endian 16-bit mono PCM.
///
/// ```
/// assert_eq!(models::audio::wav::pcm_i16_le(&[1.0]), vec![0xff, 0x7f]);
/// ```
pub fn pcm_i16_le(samples: &[f32]) -> Vec<u8> {
    to_i16(samples)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// A 16-bit mono WAV file (written by `hound`).
///
/// ```
/// let wav = models::audio::wav::wav_i16(&[0.0, 0.5], 22050)?;
/// assert_eq!(&wav[..4], b"RIFF");
/// assert_eq!(wav.len(), 44 + 4);
/// # Ok::<(), models::Error>(())
/// ```
pub fn wav_i16(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, crate::Error> {
    wav_from_i16(&to_i16(samples), sample_rate)
}

/// A 16-bit mono WAV file of samples scaled by `gain` ([`to_i16_gain`]),
/// without normalisation (IndexTTS2 writes `x · 32767`, clamped).
///
/// ```
/// let wav = models::audio::wav::wav_i16_gain(&[0.5], 22050, 1.0)?;
/// assert_eq!(&wav[44..], &16383i16.to_le_bytes());
/// # Ok::<(), models::Error>(())
/// ```
pub fn wav_i16_gain(samples: &[f32], sample_rate: u32, gain: f32) -> Result<Vec<u8>, crate::Error> {
    wav_from_i16(&to_i16_gain(samples, gain), sample_rate)
}

fn wav_from_i16(pcm: &[i16], sample_rate: u32) -> Result<Vec<u8>, crate::Error> {
    let samples = pcm;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut w = hound::WavWriter::new(&mut out, spec)?;
    {
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w16.write_sample(s);
        }
        w16.flush()?;
    }
    w.finalize()?;
    Ok(out.into_inner())
}

/// Mono audio read from a file or an upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Samples in [−1, 1], channels averaged.
    pub samples: Vec<f32>,
    /// Sample rate (Hz).
    pub sample_rate: u32,
    /// Seconds of the original (before any cut).
    pub seconds: f64,
}

/// Reads a WAV file's bytes (8/16/24/32-bit integer or 32-bit float PCM,
/// any channel count, averaged to mono). A file longer than `max_seconds`
/// is refused before its samples are decoded, so an upload's size bounds
/// the work; so is a file with no samples, a sample rate outside
/// 4–384 kHz, or more than 64 channels.
///
/// ```
/// let wav = models::audio::wav::wav_i16(&[0.0, 0.5, -0.5], 16_000)?;
/// let d = models::audio::wav::read_wav_mono(&wav, 30.0)?;
/// assert_eq!(d.sample_rate, 16_000);
/// assert_eq!(d.samples.len(), 3);
/// assert!(models::audio::wav::read_wav_mono(b"not a wav", 30.0).is_err());
/// # Ok::<(), models::Error>(())
/// ```
pub fn read_wav_mono(bytes: &[u8], max_seconds: f64) -> Result<Decoded, crate::Error> {
    let bad = |why: String| crate::Error::Audio(why);
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 || channels > 64 {
        return Err(bad(format!("{channels} channels")));
    }
    if !(4_000..=384_000).contains(&spec.sample_rate) {
        return Err(bad(format!(
            "sample rate {} Hz is outside 4,000–384,000",
            spec.sample_rate
        )));
    }
    let frames = reader.duration() as usize;
    let seconds = frames as f64 / f64::from(spec.sample_rate);
    if frames == 0 {
        return Err(bad("the file holds no samples".into()));
    }
    if seconds > max_seconds {
        return Err(bad(format!(
            "{seconds:.1} s of audio; at most {max_seconds} s is accepted"
        )));
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("corrupt samples: {e}")))?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("corrupt samples: {e}")))?
        }
        (format, bits) => {
            return Err(bad(format!(
                "unsupported sample format {format:?} at {bits} bits"
            )))
        }
    };
    let samples: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| {
            let m = c.iter().sum::<f32>() / channels as f32;
            if m.is_finite() {
                m.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    Ok(Decoded {
        samples,
        sample_rate: spec.sample_rate,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_mixes_to_mono_and_bounds() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for _ in 0..441 {
            w.write_sample(1 << 22).unwrap(); // 0.5
            w.write_sample(0).unwrap();
        }
        w.finalize().unwrap();
        let bytes = out.into_inner();
        let d = read_wav_mono(&bytes, 1.0).unwrap();
        assert_eq!((d.sample_rate, d.samples.len()), (44_100, 441));
        assert!(d.samples.iter().all(|&x| (x - 0.25).abs() < 1e-6));
        assert!((d.seconds - 0.01).abs() < 1e-9);
        let err = read_wav_mono(&bytes, 0.005).unwrap_err().to_string();
        assert!(err.contains("at most 0.005 s"), "{err}");
        assert!(read_wav_mono(&bytes[..30], 1.0).is_err());
        let silent = wav_i16_gain(&[], 16_000, 1.0).unwrap();
        assert!(read_wav_mono(&silent, 1.0)
            .unwrap_err()
            .to_string()
            .contains("no samples"));
    }

    #[test]
    fn header_fields_and_normalisation() {
        let wav = wav_i16(&[0.0, 0.5, -0.25, f32::NAN], 22050).unwrap();
        let r = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
        assert_eq!(r.spec().channels, 1);
        let read: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(read, vec![0, 32767, -16383, 0]);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 22050);
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 8);
        assert_eq!(
            to_i16(&[0.0, 0.5, -0.25, f32::NAN]),
            vec![0, 32767, -16383, 0]
        );
        assert_eq!(
            to_i16(&[0.001]),
            vec![3276],
            "quiet audio is amplified at most 100x"
        );
    }
}
