//! 16-bit PCM encodings of f32 audio, peak-normalised as Piper does; WAV
//! files are written with `hound`.

/// Scales to 16 bits like Piper: the loudest sample reaches full scale
/// (quiet output is amplified at most 100×); NaN and infinities become 0.
///
/// ```
/// let s = models::wav::to_i16(&[0.0, 0.5, -0.25]);
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
/// assert_eq!(models::wav::to_i16_gain(&[0.5, -2.0], 1.5), vec![24575, -32768]);
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
/// assert_eq!(models::wav::pcm_i16_le(&[1.0]), vec![0xff, 0x7f]);
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
/// let wav = models::wav::wav_i16(&[0.0, 0.5], 22050)?;
/// assert_eq!(&wav[..4], b"RIFF");
/// assert_eq!(wav.len(), 44 + 4);
/// # Ok::<(), models::Error>(())
/// ```
pub fn wav_i16(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>, crate::Error> {
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
        for s in to_i16(samples) {
            w16.write_sample(s);
        }
        w16.flush()?;
    }
    w.finalize()?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

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
