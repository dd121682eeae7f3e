// Drives the page of a node that requires API keys, in headless Chromium:
// the page asks for a key (a wrong one is refused and asked for again), a
// user key loads the voices and speaks, the key stays for the tab only
// (sessionStorage: kept across a reload, absent in a new tab, never in
// localStorage or a cookie); an admin key shows the speaker library, where a
// clip is added (a WAV file chosen in the form) and deleted again.
//
//   node tests/browser/access.mjs URL OUT_DIR USER_KEY ADMIN_KEY
//
// Prints one JSON line with what it saw; exits non-zero on failure.
import { chromium } from "playwright-core";

const [url, outDir, userKey, adminKey] = process.argv.slice(2);
if (!url || !outDir || !userKey || !adminKey) {
  console.error("usage: node access.mjs URL OUT_DIR USER_KEY ADMIN_KEY");
  process.exit(2);
}

// A 16-bit mono WAV: `seconds` of a 200 Hz tone with harmonics at 22,050 Hz.
function wav(seconds) {
  const rate = 22050, n = Math.round(seconds * rate);
  const b = Buffer.alloc(44 + n * 2);
  b.write("RIFF", 0); b.writeUInt32LE(36 + n * 2, 4); b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34); b.write("data", 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const v = Math.sin(2 * Math.PI * 200 * t) + 0.5 * Math.sin(2 * Math.PI * 400 * t);
    b.writeInt16LE(Math.round(v * 8000), 44 + i * 2);
  }
  return b;
}

const visible = (page, id) => page.evaluate((i) => !document.getElementById(i).hidden, id);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required"],
});
const seen = {};
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1100 } });
  const page = await context.newPage();
  const auth = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/")) auth.push(r.headers()["authorization"] || null);
  });
  await page.goto(url);
  await page.waitForSelector("#key-box", { state: "visible", timeout: 30000 });
  seen.askedFirst = await page.textContent("#key-info");
  seen.voicesBeforeKey = await page.$$eval("#voice option", (o) => o.length);

  // A wrong key: asked again.
  await page.fill("#api-key", "not-a-key-0000000000000000000");
  await page.click("#key-use");
  await page.waitForFunction(() => /did not accept/.test(document.getElementById("key-info").textContent), null, { timeout: 15000 });
  seen.askedAgain = await page.textContent("#key-info");

  // The user key: voices, then speech.
  await page.fill("#api-key", userKey);
  await page.click("#key-use");
  await page.waitForFunction(() => document.querySelectorAll("#voice option").length > 1, null, { timeout: 15000 });
  seen.keyBoxAfter = await visible(page, "key-box");
  seen.keyState = await visible(page, "key-state");
  seen.libraryForUser = await visible(page, "library-card");
  await page.fill("#text", "The key opened the node.");
  await page.click("#go");
  await page.waitForSelector("audio.player", { timeout: 120000 });
  seen.spoke = await page.$$eval("audio.player", (a) => a.length);
  seen.storage = await page.evaluate(() => ({
    session: sessionStorage.getItem("tts-node-api-key"),
    local: Object.keys(localStorage).length,
    cookie: document.cookie,
  }));
  seen.storage.sessionIsKey = seen.storage.session === userKey;
  delete seen.storage.session;

  // Kept across a reload of the tab; not in a new tab.
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll("#voice option").length > 1, null, { timeout: 15000 });
  seen.keyBoxAfterReload = await visible(page, "key-box");
  const other = await context.newPage();
  await other.goto(url);
  await other.waitForSelector("#key-box", { state: "visible", timeout: 30000 });
  seen.newTabAsks = await visible(other, "key-box");
  await other.close();

  // "Forget it" asks again; the admin key shows the library.
  await page.click("#key-forget");
  await page.waitForSelector("#key-box", { state: "visible", timeout: 15000 });
  await page.fill("#api-key", adminKey);
  await page.click("#key-use");
  await page.waitForSelector("#library-card", { state: "visible", timeout: 15000 });
  seen.libraryBefore = await page.$$eval("#library-list li", (l) => l.map((x) => x.textContent));
  await page.fill("#library-name", "erin");
  await page.setInputFiles("#library-file", { name: "erin.wav", mimeType: "audio/wav", buffer: wav(1.2) });
  await page.click("#library-add");
  await page.waitForFunction(() => [...document.querySelectorAll("#library-list li")].some((l) => l.textContent.startsWith("erin")), null, { timeout: 15000 });
  seen.libraryAfterAdd = await page.$$eval("#library-list li", (l) => l.map((x) => x.textContent));
  // The cloning voice offers the stored speaker.
  const ixVoice = await page.$$eval("#voice option", (o) => (o.find((x) => /indextts2/.test(x.textContent)) || {}).value);
  await page.selectOption("#voice", ixVoice);
  seen.storedOptions = await page.$$eval("#ref-speaker option", (o) => o.map((x) => x.textContent));
  await page.screenshot({ path: `${outDir}/ui-access.png`, fullPage: true });
  await page.click('#library-list button[aria-label="Delete erin"]');
  await page.waitForFunction(() => ![...document.querySelectorAll("#library-list li")].some((l) => l.textContent.startsWith("erin")), null, { timeout: 15000 });
  seen.libraryAfterDelete = await page.$$eval("#library-list li", (l) => l.map((x) => x.textContent));
  seen.error = (await page.textContent("#error")) || null;
  // Every API call after the first carried the key as Bearer.
  seen.requestsWithoutKey = auth.filter((a) => !a).length;
  seen.requests = auth.length;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
