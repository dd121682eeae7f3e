// Drives the node's web page in headless Chromium like a person would: types
// text, clicks Generate, waits for the audio player, checks that it holds a
// playable WAV, and saves a screenshot; then plays the page's Chinese
// example with the voice chosen by the text's script. Also checks that an error is shown
// as a readable message, and reports when playback of the stream started
// and when the response ended (the page records both in window.__tts).
//
//   node tests/browser/ui.mjs http://127.0.0.1:7860/ OUT_DIR
//
// Prints one JSON line with what it saw; exits non-zero on failure.
import { chromium } from "playwright-core";

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error("usage: node ui.mjs URL OUT_DIR");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  // The fields of each synthesis request the page sends.
  const sent = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/api/tts") sent.push(Object.keys(JSON.parse(r.postData() || "{}")).sort());
  });
  await page.goto(url);
  await page.waitForSelector("#voice option", { state: "attached", timeout: 30000 });

  // A readable error for input the page refuses.
  await page.fill("#text", "   ");
  await page.click("#go");
  await page.waitForSelector("#error", { state: "visible", timeout: 10000 });
  const clientError = await page.textContent("#error");

  await page.fill("#text", "Hello from the browser. This is the node speaking, sentence after sentence. " +
    "The page plays each piece as it arrives, long before the last one is ready. " +
    "It shows how long the first audio took, and offers the whole file at the end.");
  await page.click("#go");
  await page.waitForSelector("audio.player", { timeout: 180000 });
  const seen = await page.evaluate(async () => {
    const a = document.querySelector("audio.player");
    if (a.readyState < 1) {
      await new Promise((resolve, reject) => {
        a.addEventListener("loadedmetadata", resolve, { once: true });
        a.addEventListener("error", () => reject(new Error("audio error " + (a.error && a.error.code))), { once: true });
      });
    }
    const bytes = new Uint8Array(await (await fetch(a.src)).arrayBuffer());
    const dl = document.querySelector("a.dl");
    const t = window.__tts || {};
    return {
      firstAudioMs: t.firstAudioMs,
      playStartedMs: t.playStartedMs,
      doneMs: t.doneMs,
      firstAudioShown: (document.querySelector(".first-audio") || {}).textContent || null,
      duration: a.duration,
      mediaError: a.error ? a.error.code : null,
      riff: String.fromCharCode(...bytes.slice(0, 4)),
      wave: String.fromCharCode(...bytes.slice(8, 12)),
      bytes: bytes.length,
      meta: document.querySelector(".meta").textContent,
      download: dl ? dl.getAttribute("download") : null,
      errorVisible: getComputedStyle(document.getElementById("error")).display !== "none",
      speakerVisible: getComputedStyle(document.getElementById("speaker-box")).display !== "none",
      // IndexTTS2's blocks, hidden for a Piper voice.
      indexBlocksVisible: ["ref-box", "emo-box", "sampling-box"]
        .filter((id) => getComputedStyle(document.getElementById(id)).display !== "none"),
    };
  });
  // Chinese: the page's example, the voice chosen by the text's script,
  // played as it streams.
  await page.click("#example-zh");
  const autoHint = await page.textContent("#auto-voice");
  const licence = await page.textContent("#licence");
  const players = await page.$$eval("audio.player", (a) => a.length);
  await page.click("#go");
  await page.waitForFunction((n) => document.querySelectorAll("audio.player").length > n, players, { timeout: 180000 });
  const chinese = await page.evaluate(async () => {
    const a = document.querySelector("audio.player");
    if (a.readyState < 1) {
      await new Promise((resolve, reject) => {
        a.addEventListener("loadedmetadata", resolve, { once: true });
        a.addEventListener("error", () => reject(new Error("audio error " + (a.error && a.error.code))), { once: true });
      });
    }
    const t = window.__tts || {};
    return {
      said: document.querySelector(".said").textContent,
      voiceUsed: document.querySelector(".voice-used").textContent,
      duration: a.duration,
      mediaError: a.error ? a.error.code : null,
      playStartedMs: t.playStartedMs,
      doneMs: t.doneMs,
      pitchVisible: getComputedStyle(document.getElementById("pitch-box")).display !== "none",
      noiseVisible: getComputedStyle(document.getElementById("noise_scale-box")).display !== "none",
    };
  });
  Object.assign(chinese, { autoHint, licence, requestFields: sent[sent.length - 1] });
  await page.screenshot({ path: `${outDir}/ui-chinese.png`, fullPage: true });

  // A streamed WAV (header sizes "unknown") played by an <audio> element.
  const streamedWav = await page.evaluate(async () => {
    const r = await fetch("/api/tts", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: "A streamed wave file, played by the browser.", stream: true, format: "wav" }),
    });
    const blob = await r.blob();
    const a = new Audio(URL.createObjectURL(blob));
    await new Promise((resolve, reject) => {
      a.addEventListener("canplaythrough", resolve, { once: true });
      a.addEventListener("error", () => reject(new Error("audio error " + (a.error && a.error.code))), { once: true });
    });
    return { duration: a.duration, error: a.error ? a.error.code : null, bytes: blob.size, streamed: r.headers.get("x-streamed") };
  });
  await page.screenshot({ path: `${outDir}/ui.png`, fullPage: true });
  console.log(JSON.stringify({ clientError, streamedWav, requestFields: sent, chinese, ...seen }));
} finally {
  await browser.close();
}
