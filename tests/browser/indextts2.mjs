// Drives the page's IndexTTS2 controls in headless Chromium: the voice
// reference (an uploaded WAV, checked as the page resamples it), the emotion
// sliders and a recording from Chromium's fake microphone, the sampling
// fields; and checks that a Piper voice shows none of them and that its
// request carries none of their fields.
//
//   node tests/browser/indextts2.mjs URL OUT_DIR [--mock]
//
// The node at URL serves a Piper voice and an IndexTTS2 voice. With --mock,
// a node serving only Piper will do: the page's /api/voices gets an extra
// IndexTTS2 voice (capabilities as the node lists them, with one stored
// speaker) and its /api/tts
// requests are answered here with 0.5 s of PCM, after their body is kept.
//
// Prints one JSON line with what it saw; exits non-zero on failure.
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const mock = args.includes("--mock");
const [url, outDir] = args.filter((a) => !a.startsWith("--"));
if (!url || !outDir) {
  console.error("usage: node indextts2.mjs URL OUT_DIR [--mock]");
  process.exit(2);
}

const INDEX_FIELDS = ["reference_audio", "speaker", "emotion", "emotion_audio", "emo_alpha",
  "top_k", "top_p", "temperature", "repetition_penalty", "num_beams", "max_mel_tokens",
  "diffusion_steps", "inference_cfg_rate"];
const MOCK_VOICE = "mock-indextts2";

// A 16-bit PCM WAV file: `seconds` of a 220 Hz tone at `rate`, `channels` channels.
function wav(seconds, rate, channels) {
  const n = Math.round(seconds * rate);
  const b = Buffer.alloc(44 + n * channels * 2);
  b.write("RIFF", 0); b.writeUInt32LE(36 + n * channels * 2, 4); b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * channels * 2, 28); b.writeUInt16LE(channels * 2, 32);
  b.writeUInt16LE(16, 34); b.write("data", 36); b.writeUInt32LE(n * channels * 2, 40);
  for (let i = 0; i < n; i++) {
    const v = Math.round(Math.sin((2 * Math.PI * 220 * i) / rate) * 12000);
    for (let c = 0; c < channels; c++) b.writeInt16LE(v, 44 + (i * channels + c) * 2);
  }
  return b;
}

// What a base64 WAV field holds.
function wavInfo(b64) {
  const b = Buffer.from(b64, "base64");
  if (b.toString("latin1", 0, 4) !== "RIFF" || b.toString("latin1", 8, 12) !== "WAVE") return { riff: false };
  const channels = b.readUInt16LE(22), rate = b.readUInt32LE(24), bits = b.readUInt16LE(34);
  const data = b.readUInt32LE(40);
  return { riff: true, format: b.readUInt16LE(20), channels, rate, bits, seconds: data / (rate * channels * bits / 8), bytes: b.length };
}

// A request body with its clips summarised.
function summary(body) {
  const out = { keys: Object.keys(body).sort() };
  for (const k of ["reference_audio", "emotion_audio"]) if (body[k]) out[k] = wavInfo(body[k]);
  for (const k of ["speaker", "emotion", "emo_alpha", "top_k", "max_mel_tokens", "diffusion_steps", "voice"]) if (k in body) out[k] = body[k];
  return out;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    // A microphone that plays a beep, allowed without asking.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } });
  const ttsBodies = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/api/tts") ttsBodies.push(JSON.parse(r.postData() || "{}"));
  });
  if (mock) {
    await page.route("**/api/voices", async (route) => {
      const r = await route.fetch();
      const body = await r.json();
      const fields = INDEX_FIELDS;
      const range = (min, max) => ({ min, max });
      body.voices.push({
        name: MOCK_VOICE, engine: "indextts2", language: "zh/en", quality: "mock", sample_rate: 22050,
        num_speakers: 1, speakers: ["stored one"], model_version: "mock", default: false,
        capabilities: {
          engine: "indextts2", sample_rate: 22050, num_speakers: 1, speakers: ["stored one"],
          reference_audio: true, emotion: { vector: true, audio: true },
          sampling: fields.slice(5), controls: fields, streaming: { kind: "per_segment" }, fields,
        },
        controls: {
          emo_alpha: range(0, 1), top_k: range(0, 1000), top_p: range(0, 1), temperature: range(0.01, 5),
          repetition_penalty: range(0.1, 20), num_beams: range(1, 10), max_mel_tokens: range(1, 1815),
          diffusion_steps: { min: 1, max: 100, default: 25 }, inference_cfg_rate: { min: 0, max: 2, default: 0.7 }, speaker: false,
        },
      });
      await route.fulfill({ response: r, json: body });
    });
    await page.route("**/api/tts", async (route) => {
      const body = JSON.parse(route.request().postData() || "{}");
      if (body.voice !== MOCK_VOICE) return route.continue();
      const pcm = Buffer.alloc(11025 * 2);
      for (let i = 0; i < 11025; i++) pcm.writeInt16LE(Math.round((Math.random() - 0.5) * 2000), i * 2);
      await route.fulfill({
        status: 200, body: pcm,
        headers: { "content-type": "audio/pcm", "x-sample-rate": "22050", "x-request-id": "mock-" + ttsBodies.length },
      });
    });
  }
  await page.goto(url);
  await page.waitForSelector("#voice option", { state: "attached", timeout: 30000 });
  const list = await page.evaluate(async () => (await (await fetch("/api/voices")).json()).voices);
  const piper = list.find((v) => v.engine === "piper");
  const index = list.find((v) => v.engine === "indextts2");
  if (!piper || !index) throw new Error("the node lists no Piper or no IndexTTS2 voice: " + list.map((v) => `${v.name} (${v.engine})`).join(", "));
  const visible = (id) => page.evaluate((id) => {
    const e = document.getElementById(id);
    return !!e && getComputedStyle(e).display !== "none" && !e.closest("[hidden]");
  }, id);
  const blocks = async () => ({
    reference: await visible("ref-box"), emotion: await visible("emo-box"), sampling: await visible("sampling-box"),
    speed: await visible("speed-box"),
  });
  const results = () => page.$$eval("audio.player", (a) => a.length);
  // Waits for the result of the latest Generate (or an error) and describes it.
  async function generated(before) {
    await page.waitForFunction((n) => document.querySelectorAll("audio.player").length > n ||
      getComputedStyle(document.getElementById("error")).display !== "none", before, { timeout: 300000 });
    return page.evaluate(async () => {
      const error = getComputedStyle(document.getElementById("error")).display !== "none" ? document.getElementById("error").textContent : null;
      const a = document.querySelector("audio.player");
      if (error || !a) return { error };
      if (a.readyState < 1) await new Promise((resolve) => { a.onloadedmetadata = resolve; a.onerror = resolve; });
      return { error, duration: a.duration, mediaError: a.error ? a.error.code : null, meta: document.querySelector(".meta").textContent };
    });
  }
  const setRange = (id, value) => page.$eval("#" + id, (e, v) => { e.value = v; e.dispatchEvent(new Event("input", { bubbles: true })); }, String(value));
  const previewSeconds = (id) => page.evaluate(async (id) => {
    const a = document.getElementById(id);
    if (a.readyState < 1) await new Promise((resolve) => { a.onloadedmetadata = resolve; a.onerror = resolve; });
    return a.duration;
  }, id);

  // Piper: today's controls, none of IndexTTS2's, and a request without them.
  await page.selectOption("#voice", piper.name);
  const piperBlocks = await blocks();
  await page.fill("#text", "A Piper voice, as before.");
  let n = await results();
  await page.click("#go");
  const piperResult = await generated(n);
  const piperRequest = summary(ttsBodies[ttsBodies.length - 1]);

  // IndexTTS2: the blocks appear; nothing is sent without a reference.
  await page.selectOption("#voice", index.name);
  const indexBlocks = await blocks();
  await page.fill("#text", "Hello from a cloned voice.");
  await page.click("#go");
  await page.waitForSelector("#error", { state: "visible" });
  const noClipError = await page.textContent("#error");

  // Too short a clip is refused with a message; a 2 s stereo 44.1 kHz clip
  // becomes 2 s of mono 22,050 Hz.
  await page.setInputFiles("#ref-file", { name: "short.wav", mimeType: "audio/wav", buffer: wav(0.3, 16000, 1) });
  await page.waitForFunction(() => /at least 0.5 s/.test(document.getElementById("error").textContent));
  const shortClipError = await page.textContent("#error");
  await page.setInputFiles("#ref-file", { name: "reference.wav", mimeType: "audio/wav", buffer: wav(2, 44100, 2) });
  await page.waitForSelector("#ref-preview", { state: "visible" });
  const referencePreview = await previewSeconds("ref-preview");
  const referenceInfo = await page.textContent("#ref-info");

  // Emotion sliders (happy 0.8, calm 0.3), strength 0.5, and a short output.
  await page.selectOption("#emo-mode", "vector");
  const alphaShownForVector = await visible("emo_alpha-box");
  await setRange("emo-0", 0.8);
  await setRange("emo-7", 0.3);
  await setRange("emo_alpha", 0.5);
  await page.click("#sampling-box summary");
  const samplingFields = await page.$$eval("#sampling-fields input", (l) => l.map((i) => i.dataset.field));
  if (samplingFields.includes("max_mel_tokens")) await page.fill("#sampling-max_mel_tokens", "40");
  if (samplingFields.includes("top_k")) await page.fill("#sampling-top_k", "20");
  if (samplingFields.includes("diffusion_steps")) await page.fill("#sampling-diffusion_steps", "12");
  n = await results();
  await page.click("#go");
  const uploadResult = await generated(n);
  const uploadRequest = summary(ttsBodies[ttsBodies.length - 1]);

  // The emotion from a 2 s recording of the fake microphone.
  await page.selectOption("#emo-mode", "clip");
  await page.click("#emo-record");
  await page.waitForSelector("#emo-stop", { state: "visible" });
  await page.waitForTimeout(2000);
  const recordingShown = await page.textContent("#emo-time");
  await page.click("#emo-stop");
  await page.waitForSelector("#emo-preview", { state: "visible", timeout: 10000 });
  const recordedPreview = await previewSeconds("emo-preview");
  n = await results();
  await page.click("#go");
  const recordResult = await generated(n);
  const recordRequest = summary(ttsBodies[ttsBodies.length - 1]);
  await page.screenshot({ path: `${outDir}/ui-indextts2.png`, fullPage: true });

  // "Same as the speaker" sends no emotion; back to Piper hides it all.
  await page.selectOption("#emo-mode", "none");
  const alphaShownForNone = await visible("emo_alpha-box");
  // A stored speaker instead of a clip, where the voice lists some.
  let storedRequest = null, storedResult = null;
  if ((index.capabilities.speakers || []).length && index.capabilities.fields.includes("speaker")) {
    await page.selectOption("#ref-mode", "stored");
    n = await results();
    await page.click("#go");
    storedResult = await generated(n);
    storedRequest = summary(ttsBodies[ttsBodies.length - 1]);
  }
  await page.selectOption("#voice", piper.name);
  const piperBlocksAgain = await blocks();

  console.log(JSON.stringify({
    mock, piperVoice: piper.name, indexVoice: index.name,
    piperBlocks, piperResult, piperRequest, indexBlocks, noClipError, shortClipError,
    referencePreview, referenceInfo, alphaShownForVector, samplingFields, uploadResult, uploadRequest,
    recordingShown, recordedPreview, recordResult, recordRequest, alphaShownForNone, storedResult, storedRequest, piperBlocksAgain,
  }));
} finally {
  await browser.close();
}
