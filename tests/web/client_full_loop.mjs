// Full loop in a real browser: the app page from the runtime, the fake microphone asks a question, the avatar
// answers (voice + transcript), and the rendered mouth moves while it speaks and settles after. Pixels are read
// from the avatar's canvas (what the user sees), never from a flag the app sets. The body is held in one pose
// (clips frozen, and the renderer always told 'Idle': each chat state starts other clips, which moves the head
// even when frozen) so that only the face's expression can change pixels; the real chat states are recorded. Prints ONE JSON line; test_browser_client.py applies thresholds.
//   node client_full_loop.mjs --url http://127.0.0.1:PORT --wav question.wav [--out DIR]
import { report } from "./lib/browser.mjs";
import { args, close, openClient, pageText, shot, stats } from "./lib/client.mjs";
import { diff, foreground, headBox, parseHex, sub } from "./render_images.mjs";

const { url, wav, out } = args();
const BG = parseHex("#1f2430");
const client = await openClient(url, { fakeAudio: wav, width: 800, height: 600, readableCanvas: true });
const { page, since } = client;
const result = { timeline: {} };
const mark = (name) => (result.timeline[name] = since());
const save = (name) => (out ? shot(page, { path: `${out}/web_${name}.png` }) : null);

/** Pixels of the avatar canvas inside `box` (whole canvas without one), as an Image for render_images.mjs. */
async function readCanvas(box) {
  const c = await page.evaluate((b) => {
    const canvas = window.gaussianAvatar.avatar.view.canvas;
    const r = b || { x0: 0, y0: 0, x1: canvas.width, y1: canvas.height };
    const ctx = new OffscreenCanvas(r.x1 - r.x0, r.y1 - r.y0).getContext("2d");
    ctx.drawImage(canvas, -r.x0, -r.y0);
    const px = ctx.getImageData(0, 0, r.x1 - r.x0, r.y1 - r.y0).data;
    return { width: r.x1 - r.x0, height: r.y1 - r.y0, px: window.toBase64(px) };
  }, box);
  return { width: c.width, height: c.height, px: new Uint8Array(Buffer.from(c.px, "base64")) };
}

await page.evaluate(() => {
  // Bytes → base64: pixels cross the DevTools protocol as one string, not as a JSON array of numbers.
  window.toBase64 = (bytes) => {
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  };
});
try {
  await page.waitForFunction(() => window.gaussianAvatar.stats().avatar !== "loading");
  mark("avatarLoaded");
  result.avatar = await stats(page);
  if (result.avatar.avatar !== "ready") throw new Error(`avatar did not load: ${result.avatar.avatarError}`);
  await page.evaluate(() => {
    const app = window.gaussianAvatar;
    app.avatar.view.setBodyFrozen(true);
    window.chatStates = [];
    let real = app.chatState;
    Object.defineProperty(app, "chatState", {
      get: () => "Idle",
      set: (state) => { real = state; window.chatStates.push(state); },
    });
    window.realChatState = () => real;
    // Diagnostics: each time the renderer asks for weights while the avatar speaks, note the instant, the frame
    // timeline position wanted and the newest frame held; with the frames' arrival times this tells a frame handled
    // too late (main-thread stall beyond the playout delay) from plain silence in the reply (no frame to show).
    window.weightCalls = [];
    window.frameArrivals = [];
    const weights = app.weights.bind(app);
    app.weights = () => {
      const now = performance.now();
      const frames = app.player._frames;
      if (real === "Responding") {
        window.weightCalls.push([now, app.player.mediaTimeAt(now), frames.length ? frames[frames.length - 1].ptsMs : -1]);
      }
      return weights();
    };
  });
  await page.waitForFunction((f) => window.gaussianAvatar.avatar.view.frames >= f + 2,
    await page.evaluate(() => window.gaussianAvatar.avatar.view.frames));
  const idle = await readCanvas(null);
  await save("idle");
  const fg = foreground(idle, BG);
  result.foregroundFraction = +fg.fraction.toFixed(4);
  const head = headBox(idle, fg.mask);
  if (!head) throw new Error("no head found on the avatar canvas: it is blank");
  result.head = head;
  // Regions as fractions of the head box (top of hair → shoulder line), as in render_expressions.mjs.
  const regions = { mouth: sub(head, 0.15, 0.62, 0.85, 1.0), upperFace: sub(head, 0.0, 0.0, 1.0, 0.35) };
  result.regions = regions;

  // Record every newly rendered frame of the head while the conversation runs (software WebGL: ~1 FPS).
  const box = { x0: head.x0, y0: head.y0, x1: head.x1, y1: head.y1 };
  await page.evaluate((b) => {
    const app = window.gaussianAvatar;
    window.recorded = [];
    window.gaps = [];
    let tick = performance.now();
    window.stallWatch = setInterval(() => { const now = performance.now(); window.gaps.push(now - tick); tick = now; }, 10);
    let last = app.avatar.view.frames;
    window.recorder = setInterval(() => {
      const view = app.avatar.view;
      if (view.frames === last || window.recorded.length >= 80) return;
      last = view.frames;
      const ctx = new OffscreenCanvas(b.x1 - b.x0, b.y1 - b.y0).getContext("2d");
      ctx.drawImage(view.canvas, -b.x0, -b.y0);
      const px = ctx.getImageData(0, 0, b.x1 - b.x0, b.y1 - b.y0).data;
      window.recorded.push({ t: performance.now(), frame: last, chatState: window.realChatState(),
        jaw: app._weights.jawOpen ?? 0, px: window.toBase64(px) }); // jaw: what the renderer was last given
    }, 50);
  }, box);

  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#connection").dataset.state === "connected", null, { timeout: 30000 });
  mark("connected");
  await page.evaluate(() => { // server events with their times, for the report (diagnostics only)
    window.gaussianAvatar.session.addEventListener("frame", (e) =>
      window.frameArrivals.push([e.detail.arrivalMs, e.detail.frame.ptsMs]));
    window.events = [];
    window.gaussianAvatar.session.addEventListener("server", (e) =>
      window.events.push({ t: Math.round(performance.now()), ...e.detail, blendshapes: undefined }));
  });
  // The fake microphone plays the question after 1 s of silence; then the transcript, then the spoken reply.
  await page.waitForFunction(() => document.querySelector(".line.user"), null, { timeout: 90000 });
  mark("transcript");
  await page.waitForFunction(() => window.realChatState() === "Responding", null, { timeout: 90000 });
  mark("speaking");
  await save("speaking");
  const tSpeaking = await page.evaluate(() => performance.now());
  // Back to the idle body once the reply has been heard (the server listens again, nobody talks).
  await page.waitForFunction(() => window.realChatState() === "Idle" &&
    document.querySelector("#chat-state").dataset.state === "listening", null, { timeout: 90000 });
  mark("listening");
  // The ease to neutral takes 150 ms; then a few more rendered frames (~1 s each here) to show it stays put.
  await page.waitForFunction((t) => window.recorded.filter((r) => r.chatState === "Idle" && r.t > t).length >= 1,
    tSpeaking, { timeout: 30000 });
  const tListening = await page.evaluate(() => performance.now());
  await page.waitForFunction((t) => window.recorded.filter((r) => r.t > t + 500).length >= 3, tListening, { timeout: 60000 });
  mark("settled");
  await page.click("#latency-toggle");
  await save("after");

  const recorded = await page.evaluate(() => { clearInterval(window.recorder); return window.recorded; });
  const gaps = (await page.evaluate(() => { clearInterval(window.stallWatch); return window.gaps; })).sort((a, b) => a - b);
  result.mainThreadGapsMs = { p50: Math.round(gaps[gaps.length >> 1]), p95: Math.round(gaps[Math.floor(gaps.length * 0.95)]), max: Math.round(gaps[gaps.length - 1]) };
  const frames = recorded.map((r) => ({ ...r, img: { width: box.x1 - box.x0, height: box.y1 - box.y0, px: new Uint8Array(Buffer.from(r.px, "base64")) } }));
  const local = (r) => ({ x0: r.x0 - box.x0, y0: r.y0 - box.y0, x1: r.x1 - box.x0, y1: r.y1 - box.y0 });
  const measure = (a, b) => Object.fromEntries(Object.entries(regions).map(([k, r]) => [k, diff(a.img, b.img, local(r))]));
  const speaking = frames.filter((f) => f.chatState === "Responding");
  const settled = frames.filter((f) => f.t > tListening + 500);
  const rest = settled[settled.length - 1];
  result.frames = frames.map((f) => ({ t: Math.round(f.t), frame: f.frame, chatState: f.chatState, jaw: +f.jaw.toFixed(3) }));
  result.speakingFrames = speaking.length;
  result.speakingVsRest = speaking.map((f) => ({ jaw: +f.jaw.toFixed(3), ...measure(f, rest) }));
  result.speakingConsecutive = speaking.slice(1).map((f, i) => measure(speaking[i], f));
  result.settledConsecutive = settled.slice(1).map((f, i) => measure(settled[i], f));
  // Back to the neutral face it had before the conversation (same frozen body pose): the decay really ended.
  const idleCrop = { width: box.x1 - box.x0, height: box.y1 - box.y0, px: new Uint8Array((box.x1 - box.x0) * (box.y1 - box.y0) * 4) };
  for (let y = box.y0; y < box.y1; y++) {
    idleCrop.px.set(idle.px.subarray(4 * (y * idle.width + box.x0), 4 * (y * idle.width + box.x1)), 4 * (y - box.y0) * idleCrop.width);
  }
  result.restVsIdle = measure({ img: idleCrop }, rest);
  result.text = await pageText(page);
  result.stats = await stats(page);
  result.events = await page.evaluate(() => window.events);
  result.chatStates = await page.evaluate(() => window.chatStates); // what the app would have told the renderer
  const { calls, arrivals } = await page.evaluate(() => ({ calls: window.weightCalls, arrivals: window.frameArrivals }));
  const starved = calls.filter(([, media, newest]) => media > newest + 34);
  const late = starved.filter(([now, media, newest]) => arrivals.some(([t, p]) => p > newest && p <= media && t > now));
  result.weightCallsWhileSpeaking = { total: calls.length, noFrameDue: starved.length, frameHandledLate: late.length };
} catch (e) {
  result.events = await page.evaluate(() => window.events).catch(() => null);
  result.error = String(e.stack || e);
  result.text = await pageText(page).catch(() => null);
}
result.logs = client.logs.filter((l) => !l.startsWith("verbose")).slice(-30);
await close(client);
report(result);
