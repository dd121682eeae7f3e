//! Streamed speech end to end: real node processes, real sockets, the real
//! voice. The first audio arrives well before the last; streamed and whole
//! responses hold the same samples; OpenAI's own client gets every format,
//! streamed and whole, and real decoders read them; a client that goes away
//! frees the worker and is logged once; an error after the first byte cuts
//! the stream and is logged with its code.

use std::time::{Duration, Instant};

use e2e::node::{self, events_where, gelf_env, post_json, post_streamed, Node, Wav, TEN_SENTENCES};
use e2e::{field_str, short_message, GelfReceiver};
use serde_json::json;

fn pcm_samples(b: &[u8]) -> Vec<i16> {
    b.chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn the_first_audio_comes_early_and_streams_hold_the_whole_samples() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let n = Node::start("streaming", &gelf_env(&rx, "node-stream"));
    let quiet = json!({"text": TEN_SENTENCES, "noise_scale": 0, "noise_w": 0});
    let mut streamed_req = quiet.clone();
    streamed_req["stream"] = json!(true);
    streamed_req["format"] = json!("pcm");
    let s = post_streamed(n.port, "/api/tts", &streamed_req, None);
    assert_eq!(s.status, 200);
    assert!(s.complete, "the stream ends with its final chunk");
    assert_eq!(s.header("transfer-encoding"), Some("chunked"));
    assert_eq!(s.header("content-type"), Some("audio/pcm"));
    let first = s.arrivals.first().expect("some audio").0;
    let last = s.arrivals.last().expect("some audio").0;
    eprintln!(
        "10 sentences streamed: first audio {first:?}, last {last:?}, {} reads",
        s.arrivals.len()
    );
    assert!(s.arrivals.len() >= 5, "the audio came in pieces");
    assert!(first * 4 <= last, "first audio {first:?} vs end {last:?}");

    let whole = post_json(n.port, "/api/tts", &quiet, &[]);
    assert_eq!(whole.status, 200);
    let wav = Wav::parse(&whole.body).expect("a WAV");
    assert_eq!(
        pcm_samples(&s.body),
        wav.samples,
        "streamed and whole responses hold the same samples"
    );
    // A streamed WAV: the "unknown length" header, then the same samples.
    let mut wav_req = streamed_req.clone();
    wav_req["format"] = json!("wav");
    let sw = post_streamed(n.port, "/api/tts", &wav_req, None);
    assert_eq!(&sw.body[..4], b"RIFF");
    assert_eq!(&sw.body[40..44], &[0xff; 4], "data size unknown");
    assert_eq!(pcm_samples(&sw.body[44..]), wav.samples);

    let done = events_where(&rx, 3, |m| short_message(m) == "Audio generation completed");
    assert_eq!(done.len(), 3);
    let streamed: Vec<_> = done
        .iter()
        .filter(|m| field_str(m, "streamed") == Some("true"))
        .collect();
    assert_eq!(streamed.len(), 2);
    for m in &done {
        let first_ms = m.fields["first_audio_ms"].as_u64().expect("an integer");
        let total_ms = m.fields["duration_ms"].as_u64().expect("an integer");
        assert!(first_ms <= total_ms);
        if field_str(m, "streamed") == Some("true") {
            assert!(first_ms * 4 <= total_ms, "{first_ms} ms of {total_ms} ms");
        }
    }
    let metrics = String::from_utf8(node::http(n.port, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(
        metrics.contains("tts_first_audio_seconds_count 3"),
        "{metrics}"
    );
}

#[test]
fn openais_client_gets_every_format_streamed_and_whole() {
    let _serial = node::serial();
    let n = Node::start("openai-formats", &[]);
    let out = node::python("openai_client.py")
        .arg(format!("{}/v1", n.url()))
        .output()
        .expect("run tests/openai_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the OpenAI client check failed");
    assert_eq!(stdout.lines().count(), 10, "5 formats, streamed and whole");
}

#[test]
fn a_client_that_goes_away_frees_the_worker_and_is_logged_once() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-client-gone");
    env.push(("TTS_WORKERS", "1".to_string()));
    let n = Node::start("client-gone", &env);
    let long = TEN_SENTENCES.repeat(4);
    let req = json!({"text": long, "stream": true, "format": "pcm"});
    // Read the first 20 KB, then hang up.
    let gone = post_streamed(n.port, "/api/tts", &req, Some(20_000));
    assert_eq!(gone.status, 200);
    let t = Instant::now();
    let next = post_json(n.port, "/api/tts", &json!({"text": "Are you free?"}), &[]);
    let waited = t.elapsed();
    assert_eq!(next.status, 200);
    eprintln!("the next request was served in {waited:?}");
    assert!(
        waited < Duration::from_secs(3),
        "the only worker was freed: {waited:?}"
    );
    let closed = events_where(&rx, 1, |m| {
        field_str(m, "error_code") == Some("CLIENT_CLOSED")
    });
    std::thread::sleep(Duration::from_millis(500));
    let closed_now = events_where(&rx, 1, |m| {
        field_str(m, "error_code") == Some("CLIENT_CLOSED")
    });
    assert_eq!((closed.len(), closed_now.len()), (1, 1), "logged once");
    let m = &closed[0];
    assert_eq!(m.standard["level"], 4, "WARN");
    assert_eq!(field_str(m, "node_id"), Some("node-client-gone"));
    assert!(field_str(m, "request_id").is_some());
    let sent = m.fields["audio_sent_seconds"].as_f64().expect("a number");
    assert!(sent > 0.0 && sent < 60.0, "audio sent {sent}");
    let completions = events_where(&rx, 1, |m| short_message(m) == "Audio generation completed");
    assert_eq!(completions.len(), 1, "only the second request completed");
}

#[test]
fn an_error_after_the_first_byte_cuts_the_stream_with_its_code() {
    let _serial = node::serial();
    let rx = GelfReceiver::start();
    let mut env = gelf_env(&rx, "node-cut");
    env.push(("TTS_REQUEST_TIMEOUT_S", "1".to_string()));
    let n = Node::start("stream-cut", &env);
    let req = json!({"text": TEN_SENTENCES.repeat(3), "stream": true, "format": "pcm"});
    let s = post_streamed(n.port, "/api/tts", &req, None);
    assert_eq!(s.status, 200, "the status was sent with the first piece");
    assert!(!s.body.is_empty(), "some audio arrived");
    assert!(
        !s.complete,
        "no final chunk: the client can tell the stream was cut"
    );
    let err = events_where(&rx, 1, |m| field_str(m, "error_code") == Some("TIMEOUT"));
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].standard["level"], 3);
    assert!(err[0].fields["audio_sent_seconds"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(err[0].fields["bytes_sent"].as_u64().unwrap_or(0) > 0);
}
