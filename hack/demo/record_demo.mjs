#!/usr/bin/env node
// The browser half of hack/demo/record_demo.py: opens the real web client (served by a running runtime) in headless
// Chromium with a fake microphone playing a scripted WAV, frames the avatar's head, and photographs the avatar at
// moments set by the data-channel events the page receives (hello gesture, user_speech, state, mood). Writes each
// frame as PNG, a contact sheet composed with a 2D canvas, and frames.json into --out.
//
//   node hack/demo/record_demo.mjs --url http://127.0.0.1:PORT --wav mic.wav --out DIR [--size 360] [--timeout 240]
//        [--levels 256] [--clock SECONDS_ALREADY_ELAPSED]
//
// Progress goes to stderr; the last stdout line is one JSON object: {ok: true, frames, ...} or {ok: false, error}.
//
// Software WebGL (SwiftShader) draws one frame in ~1 s, far longer than some moments last (the embedded stack
// thinks for ~0.1 s). So once connected the renderer works as a camera shutter: its animation loop keeps running
// but draws only when a shot is due, and then at once — the weights the page hands it at that instant (the lip
// sync's output for that audio time) are what the frame shows, and the body clips advance by the real time elapsed.
// Nothing else of the app changes. Several shots are taken for some moments, and the rule written into frames.json
// keeps the one that shows its moment best.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { report } from "../../tests/web/lib/browser.mjs";
import { close, openClient, pageText } from "../../tests/web/lib/client.mjs";
import { foreground, headBox, parseHex } from "../../tests/web/render_images.mjs";
import { encodePng } from "./png.mjs";

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" },
    wav: { type: "string" },
    out: { type: "string" },
    size: { type: "string", default: "360" },
    timeout: { type: "string", default: "240" },
    levels: { type: "string", default: "256" },
    clock: { type: "string", default: "0" },
  },
});
if (!opt.url || !opt.wav || !opt.out) {
  console.error("usage: record_demo.mjs --url URL --wav FILE --out DIR [--size PX] [--timeout S] [--levels N]");
  process.exit(2);
}
const SIZE = Number(opt.size); // the canvas is the viewport, and one frame is the whole canvas
const TIMEOUT_S = Number(opt.timeout);
const BACKGROUND = parseHex("#1f2430"); // web/src/main.js BACKGROUND
const started = Date.now() - 1000 * Number(opt.clock); // progress times continue the caller's clock
const log = (line) => console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);

/**
 * When to take shots, in ms after the event is heard (the page applies events and shows their frames after the
 * playout delay; user_speech is the user's own voice: at once). A frame takes ~0.4 s to draw here, so shots closer
 * than that are taken late (their lateness is recorded).
 */
const SHOTS = {
  greeting: [350], // the hello gesture: attack 0.2 s, hold 0.8 s (expression/catalogue.py)
  idle: [2200, 3000, 3800, 4600], // after the hello, before the user's first word (the script's 6 s lead-in)
  listening: [500], // the attention brows ease in with a 0.3 s time constant (81 % by then); drawn before thinking
  thinking: [40], // the gaze jumps up and aside (35 ms time constant); the embedded stack answers ~0.1 s later
  "answering-happy": [400, 800, 1200, 1600], // "Hello! How can I help you today?" lasts ~2 s
  "answering-sad": [500, 1000, 1500, 2000, 2500, 3000, 3500], // "I'm sorry to hear that. Do you want …" ~4 s
};

// The sheet's order and captions.
const MOMENTS = [
  { label: "greeting", caption: "greeting" },
  { label: "listening", caption: "listening" },
  { label: "thinking", caption: "thinking" },
  { label: "answering-happy", caption: "answering — happy" },
  { label: "answering-sad", caption: "answering — sad" },
  { label: "idle", caption: "idle" },
];
const WEIGHTS = ["mouthSmileLeft", "mouthSmileRight", "browInnerUp", "jawOpen", "eyeBlinkLeft", "mouthFrownLeft",
  "mouthFrownRight", "browOuterUpLeft", "eyeLookUpLeft", "eyeLookUpRight", "eyeLookInLeft", "eyeLookOutLeft",
  "eyeLookDownLeft", "cheekSquintLeft"];

const client = await openClient(opt.url, { fakeAudio: opt.wav, width: SIZE, height: SIZE, readableCanvas: true });
const { page } = client;
// openClient's second page (its PNG decoder) came to the front: a background tab's animation frames run at 1 Hz.
await page.bringToFront();
let result;
try {
  result = await record();
} catch (e) {
  const text = await pageText(page).catch(() => null);
  result = { ok: false, error: String(e.message || e), page: text, logs: client.logs.slice(-20) };
}
await close(client);
report(result);
process.exit(result.ok ? 0 : 1);

async function record() {
  await page.waitForFunction(() => window.gaussianAvatar.stats().avatar !== "loading", null, { timeout: 180000 });
  const loaded = await page.evaluate(() => window.gaussianAvatar.stats());
  if (loaded.avatar !== "ready") throw new Error(`the avatar did not load: ${loaded.avatarError}`);
  const splats = await page.evaluate(() => window.gaussianAvatar.avatar.view.splats);
  log(`avatar loaded (${splats} splats); framing the head …`);
  const framing = await frameHead();
  log(`head framed: camera zoom ${framing.zoom}, head ${JSON.stringify(framing.head)} of ${SIZE}×${SIZE}`);

  await page.exposeFunction("demoLog", (line) => log(line));
  await page.evaluate(installShutter, { weightNames: WEIGHTS, shots: SHOTS });
  await page.click("#connect");
  await page.waitForFunction(() => window.demoRecorder.connectedAt !== null, null, { timeout: 30000 })
    .catch(() => { throw new Error("the page did not connect within 30 s"); });
  log("connected; the fake microphone plays the script");

  // The conversation is over once the reply said in the sad mood has been heard (the server listens again) and
  // every shot due by then is taken.
  const deadline = Date.now() + TIMEOUT_S * 1000;
  for (;;) {
    const s = await page.evaluate(() => {
      const r = window.demoRecorder;
      const sad = r.events.findIndex((e) => e.type === "mood" && e.mood === "sad");
      const end = sad >= 0 ? r.events.slice(sad).find((e) => e.type === "state" && e.state === "listening") : null;
      return { end: end ? end.heardAt : null, now: performance.now(), due: r.queue.length, shots: r.shots.length,
        error: r.events.find((e) => e.type === "error")?.message ?? null,
        alert: document.querySelector("#alert:not([hidden])")?.innerText ?? null };
    });
    if (s.error) throw new Error(`the server reported an error: ${s.error}`);
    if (s.alert) throw new Error(`the page shows an error: ${s.alert}`);
    if (s.end !== null && s.now > s.end + 500 && !s.due) break;
    if (Date.now() > deadline) {
      const seen = await page.evaluate(() => window.demoRecorder.events.map((e) => e.type + (e.state ? ` ${e.state}` : "")
        + (e.mood ? ` ${e.mood}` : "") + (e.text ? ` "${e.text}"` : "")));
      throw new Error(`the conversation did not reach the end of the sad answer within ${TIMEOUT_S} s ` +
        `(${s.shots} shots taken); events seen: ${seen.join(", ") || "none"}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }

  const rec = await page.evaluate(() => ({
    connectedAt: window.demoRecorder.connectedAt,
    events: window.demoRecorder.events,
    shots: window.demoRecorder.shots.map(({ snap, ...meta }) => meta),
  }));
  const late = rec.shots.map((s) => s.sampledAt - s.dueAt).sort((a, b) => a - b);
  const lateMs = { median: Math.round(late[late.length >> 1] ?? 0), max: Math.round(late[late.length - 1] ?? 0) };
  log(`conversation over: ${rec.shots.length} shots, taken ${lateMs.median} ms after their moment (median; ` +
    `max ${lateMs.max} ms: a shot waits while the previous frame draws)`);

  const chosen = pick(rec);
  for (const c of chosen) {
    log(`${c.label.padEnd(16)} ${c.tSinceConnectS.toFixed(2).padStart(6)} s${c.inWindow ? "" : " (OUTSIDE its moment)"}` +
      ` — smile ${c.weights.mouthSmile}, inner brows ${c.weights.browInnerUp}, frown ${c.weights.mouthFrown}, ` +
      `jaw ${c.weights.jawOpen}, gaze up ${c.weights.eyeLookUp}`);
  }

  mkdirSync(opt.out, { recursive: true });
  const title = "Gaussian Avatar — the default avatar in a conversation (headless Chromium, software WebGL; " +
    "embedded offline stack)";
  const pixels = await page.evaluate(drawFrames, { chosen: chosen.map((c) => ({ index: c.index, caption: c.caption,
    detail: c.detail, numbers: c.numbers })), size: SIZE, title });
  const png = (img) => encodePng({ ...img, px: Buffer.from(img.rgba, "base64") }, { levels: Number(opt.levels) });
  chosen.forEach((c, i) => {
    c.file = `${String(i + 1).padStart(2, "0")}-${c.label}.png`;
    const bytes = png(pixels.frames[i]);
    writeFileSync(join(opt.out, c.file), bytes);
    c.bytes = bytes.length;
  });
  const sheet = png(pixels.sheet);
  writeFileSync(join(opt.out, "expressive-avatar.png"), sheet);
  const meta = {
    about: "Frames of hack/demo/record_demo.py: the default avatar in headless Chromium (software WebGL) against " +
      "`avatar-runtime serve` with the embedded offline defaults; the user is a fake microphone playing espeak-ng " +
      "speech. Each frame was drawn at a moment set by a data-channel event (trigger; times in s since the page " +
      "connected, 'heard' = after the playout delay); where several were taken, `rule` says which was kept. " +
      "`weights` are the ARKit weights the page handed the renderer for that frame (mouthSmile and mouthFrown: " +
      "mean of left and right).",
    viewport: { width: SIZE, height: SIZE },
    camera: framing,
    shotsTaken: rec.shots.length,
    shotsLateMs: lateMs,
    conversation: conversation(rec),
    frames: chosen.map(({ index, numbers, detail, ...c }) => ({ ...c, context: detail })),
    sheet: { file: "expressive-avatar.png", width: pixels.sheet.width, height: pixels.sheet.height, bytes: sheet.length },
  };
  writeFileSync(join(opt.out, "frames.json"), JSON.stringify(meta, null, 1) + "\n");
  return { ok: true, outside: chosen.filter((c) => !c.inWindow).map((c) => c.label), shotsTaken: rec.shots.length,
    frames: meta.frames, sheet: meta.sheet, conversation: meta.conversation };
}

/**
 * Zoom the renderer's camera onto the head and centre it: the body is left out so the face is as large as the
 * canvas allows (brows and mouth visible at SIZE px). Measured from the rendered pixels (the head's box from the
 * top of the hair to the shoulder line), then applied as camera zoom + view offset (three.js), checked once more.
 */
async function frameHead() {
  const measure = async () => {
    const c = await page.evaluate(async () => {
      const view = window.gaussianAvatar.avatar.view;
      const from = view.frames;
      while (view.frames < from + 2) await new Promise((r) => setTimeout(r, 50)); // the new camera is on screen
      const ctx = new OffscreenCanvas(view.canvas.width, view.canvas.height).getContext("2d");
      ctx.drawImage(view.canvas, 0, 0);
      const px = ctx.getImageData(0, 0, view.canvas.width, view.canvas.height).data;
      let bin = "";
      for (let i = 0; i < px.length; i += 0x8000) bin += String.fromCharCode(...px.subarray(i, i + 0x8000));
      return { width: view.canvas.width, height: view.canvas.height, rgba: btoa(bin) };
    });
    const img = { width: c.width, height: c.height, px: new Uint8Array(Buffer.from(c.rgba, "base64")) };
    const box = headBox(img, foreground(img, BACKGROUND).mask);
    if (!box) throw new Error("the avatar canvas is blank: no head to frame");
    return { img, box };
  };
  const camera = (zoom, x, y) => page.evaluate(([z, ox, oy]) => {
    const view = window.gaussianAvatar.avatar.view;
    const cam = view.renderer.viewer.camera;
    const { width: w, height: h } = view.canvas;
    cam.zoom = z;
    if (ox || oy) cam.setViewOffset(w, h, ox, oy, w, h);
    else cam.clearViewOffset();
    cam.updateProjectionMatrix();
  }, [zoom, x, y]);
  await camera(1, 0, 0);
  const { img, box } = await measure();
  const W = img.width, H = img.height;
  // Hair to shoulder line (the neck included) fills 85 % of the height, its centre a little below the middle.
  const zoom = Math.min(8, (0.85 * H) / (box.y1 - box.y0));
  const at = (v, size) => size / 2 + (v - size / 2) * zoom; // where a pixel lands after zooming about the centre
  let x = at((box.x0 + box.x1) / 2, W) - W / 2;
  let y = at((box.y0 + box.y1) / 2, H) - H * 0.52;
  await camera(zoom, x, y);
  const check = (await measure()).box;
  x += (check.x0 + check.x1) / 2 - W / 2; // one correction: the first measurement had 1/zoom the resolution
  y += (check.y0 + check.y1) / 2 - H * 0.52;
  await camera(zoom, x, y);
  const head = (await measure()).box;
  return { zoom: +zoom.toFixed(3), offset: [Math.round(x), Math.round(y)],
    head: { x0: head.x0, y0: head.y0, x1: head.x1, y1: head.y1 } };
}

/**
 * In the page: keep the server events (with when the page applies them: after the playout delay), schedule shots
 * from them, and from the moment the page connects let the renderer draw only when a shot is due.
 */
function installShutter({ weightNames, shots }) {
  const app = window.gaussianAvatar;
  const view = app.avatar.view;
  const renderer = view.renderer;
  const rec = (window.demoRecorder = { connectedAt: null, events: [], queue: [], shots: [] });
  const since = (t) => ((t - rec.connectedAt) / 1000).toFixed(2);

  const setConnection = app.ui.setConnection.bind(app.ui);
  app.ui.setConnection = (state, ...rest) => {
    if (state === "connected" && rec.connectedAt === null) rec.connectedAt = performance.now();
    return setConnection(state, ...rest);
  };

  const schedule = (label, from, event) => {
    for (const ms of shots[label]) rec.queue.push({ label, dueAt: from + ms, trigger: rec.events.indexOf(event) });
    rec.queue.sort((a, b) => a.dueAt - b.dueAt);
  };
  const onServerEvent = app._onServerEvent.bind(app);
  app._onServerEvent = (event) => {
    const now = performance.now();
    const { type, state, mood, intensity, name, speaking, text, turn, reason, message } = event;
    const e = { t: now, heardAt: now + (app.player.playoutDelayMs || 0), type, state, mood, intensity, name, speaking,
      text, turn, reason, message };
    rec.events.push(e);
    const what = { gesture: name, mood: `${mood} ${intensity ?? ""}`, state, user_speech: `speaking:${speaking}`,
      transcript: `"${text}"`, turn_end: reason }[type];
    if (what !== undefined && rec.connectedAt !== null) window.demoLog(`  +${since(now)} s ${type} ${what}`);
    if (type === "gesture" && name === "hello" && !rec.greeted) {
      rec.greeted = true;
      schedule("greeting", e.heardAt, e);
      schedule("idle", e.heardAt, e);
    } else if (type === "user_speech" && speaking) {
      rec.queue = rec.queue.filter((s) => s.label !== "idle"); // idle is before the user's first word
      schedule("listening", now, e);
    } else if (type === "state" && state === "thinking") {
      schedule("thinking", e.heardAt, e);
    } else if (type === "mood" && (mood === "happy" || mood === "sad")) {
      schedule(`answering-${mood}`, e.heardAt, e);
    }
    return onServerEvent(event);
  };

  // The weights of the frame being drawn, and when the renderer asked for them (the moment the frame shows).
  let sampledAt = 0;
  const weights = app.weights.bind(app);
  app.weights = () => {
    sampledAt = performance.now();
    return weights();
  };
  let current = null; // the shot being drawn
  const viewer = renderer.viewer;
  const draw = viewer.render; // mountAvatar's wrapper (counts frames)
  viewer.render = function (...args) {
    draw.apply(this, args);
    if (!current) return;
    // Same task as the draw: these pixels and these weights are the same frame.
    const snap = new OffscreenCanvas(view.canvas.width, view.canvas.height);
    snap.getContext("2d").drawImage(view.canvas, 0, 0);
    const w = app._weights;
    rec.shots.push({ ...current, sampledAt, chatState: app.chatState,
      mood: app.ui.el.mood.dataset.mood || null, weights: Object.fromEntries(weightNames.map((n) => [n, w[n] ?? 0])),
      snap });
    current = null;
  };
  const frame = renderer.render.bind(renderer); // one animation frame: state, weights, body clips, draw
  renderer.render = () => {
    if (rec.connectedAt !== null && !current) {
      const due = rec.queue.length && rec.queue[0].dueAt <= performance.now();
      if (!due) {
        viewer.requestFrameId = requestAnimationFrame(() => renderer.render()); // the shutter stays closed
        return;
      }
      current = rec.queue.shift();
    }
    frame(); // requests the next animation frame itself
  };
}

/** The frame for each moment: the best by its rule among the shots taken for it. */
function pick({ connectedAt, events, shots }) {
  const secs = (t) => +((t - connectedAt) / 1000).toFixed(2);
  const avg = (w, a, b) => (w[a] + w[b]) / 2;
  const smile = (w) => avg(w, "mouthSmileLeft", "mouthSmileRight");
  const frown = (w) => avg(w, "mouthFrownLeft", "mouthFrownRight");
  const gazeUp = (w) => avg(w, "eyeLookUpLeft", "eyeLookUpRight");
  const eyesOpen = (w) => (w.eyeBlinkLeft < 0.15 ? 0 : -10); // a blink hides the eyes: never the pick if avoidable
  const next = (e, pred) => events.slice(events.indexOf(e) + 1).find(pred);
  const describe = (e) => [e.type, e.name, e.state, e.mood, e.speaking === undefined ? undefined : `speaking:${e.speaking}`]
    .filter((v) => v !== undefined).join(" ");
  const quote = (s, n = 46) => `“${s.length > n ? s.slice(0, n - 1).trimEnd() + "…" : s}”`;
  const userTurnAfter = (e) => next(e, (x) => x.type === "transcript");
  const lastTranscriptBefore = (t) => [...events].reverse().find((x) => x.type === "transcript" && x.t <= t);
  const said = (type, turn) => events.filter((x) => x.type === type && x.turn === turn).map((x) => x.text).join("").trim();
  const firstSpeech = events.find((e) => e.type === "user_speech" && e.speaking);

  const rules = {
    greeting: {
      score: (w) => smile(w) + w.browOuterUpLeft + eyesOpen(w),
      rule: "the hello gesture's smile and brow lift, 0.35 s after it is heard",
      inside: (s, e) => s.sampledAt <= e.heardAt + 1400,
      detail: () => "on connect: the hello gesture",
    },
    idle: {
      score: null, // below: eyes open, the gaze furthest from the greeting frame's
      rule: "of the shots between the greeting and the user's first word: eyes open, gaze furthest from the greeting's",
      inside: (s) => !firstSpeech || s.sampledAt < firstSpeech.t,
      detail: () => "nobody speaks: gaze shifts, blinks, breathing",
    },
    listening: {
      // The first utterance (no mood of an earlier answer on the face yet); the time term is < 0.1, below a blink's 10.
      score: (w, shot) => eyesOpen(w) - shot.dueAt / 1e7,
      rule: "0.5 s after user_speech speaking:true, while the user still speaks; the first utterance with such a frame",
      inside: (s, e) => s.sampledAt <= (next(e, (x) => x.type === "user_speech" && !x.speaking)?.t ?? Infinity),
      detail: (e) => `user: ${quote(said("transcript", userTurnAfter(e)?.turn))}`,
    },
    thinking: {
      score: (w, shot) => eyesOpen(w) - shot.dueAt / 1e7, // as listening: the first turn with a frame inside
      rule: "40 ms after state thinking is heard, before the answer's audio; the first turn with such a frame",
      inside: (s, e) => s.sampledAt <= (next(e, (x) => x.type === "state" && x.state === "speaking")?.heardAt ?? Infinity),
      detail: (e) => `about ${quote(said("transcript", lastTranscriptBefore(e.t)?.turn), 40)}`,
    },
    "answering-happy": {
      score: (w) => smile(w) + 0.5 * w.jawOpen + eyesOpen(w),
      rule: "while the answer after `mood happy` plays: highest mouthSmile + jawOpen/2",
      inside: (s) => s.chatState === "Responding",
      detail: (e) => `avatar: ${quote(said("reply", lastTranscriptBefore(e.t)?.turn))}`,
    },
    "answering-sad": {
      score: (w) => w.browInnerUp + frown(w) + 0.5 * w.jawOpen + eyesOpen(w),
      rule: "while the answer after `mood sad` plays: highest browInnerUp + mouthFrown + jawOpen/2",
      inside: (s) => s.chatState === "Responding",
      detail: (e) => `avatar: ${quote(said("reply", lastTranscriptBefore(e.t)?.turn))}`,
    },
  };

  const picked = {};
  const order = ["greeting", "idle", "listening", "thinking", "answering-happy", "answering-sad"]; // idle needs greeting
  for (const label of order) {
    const r = rules[label];
    if (label === "idle") {
      const g = picked.greeting?.shot.weights;
      const look = ["eyeLookUpLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookDownLeft"];
      r.score = (w) => (g ? look.reduce((sum, n) => sum + Math.abs(w[n] - g[n]), 0) : 0) + eyesOpen(w);
    }
    const candidates = shots.map((shot, index) => ({ shot, index, trigger: events[shot.trigger] }))
      .filter((c) => c.shot.label === label)
      .map((c) => ({ ...c, inside: r.inside(c.shot, c.trigger), score: r.score(c.shot.weights, c.shot) }));
    if (!candidates.length) {
      const needs = { greeting: "gesture hello", idle: "gesture hello", listening: "user_speech",
        thinking: "state thinking", "answering-happy": "mood happy", "answering-sad": "mood sad" }[label];
      throw new Error(`no frame for "${label}": no ${needs} event came, or no frame was drawn for it`);
    }
    // Shots inside their moment first, then the best score.
    candidates.sort((a, b) => (b.inside - a.inside) || (b.score - a.score));
    const others = candidates.map((c) => ({ tSinceConnectS: secs(c.shot.sampledAt), inWindow: c.inside,
      eyeBlinkLeft: +c.shot.weights.eyeBlinkLeft.toFixed(2) })).sort((a, b) => a.tSinceConnectS - b.tSinceConnectS);
    const detail = r.detail(candidates[0].trigger) + (candidates[0].inside ? "" : " (just after)");
    picked[label] = { ...candidates[0], others, rule: r.rule, detail };
  }

  return MOMENTS.map(({ label, caption }) => {
    const { shot, index, trigger, inside, others, rule, detail } = picked[label];
    const w = shot.weights;
    const r3 = (v) => +v.toFixed(3);
    const weights = { mouthSmile: r3(smile(w)), mouthSmileLeft: r3(w.mouthSmileLeft),
      mouthSmileRight: r3(w.mouthSmileRight), browInnerUp: r3(w.browInnerUp), mouthFrown: r3(frown(w)),
      jawOpen: r3(w.jawOpen), eyeBlinkLeft: r3(w.eyeBlinkLeft), eyeLookUp: r3(gazeUp(w)) };
    return {
      label, caption, index, inWindow: inside, tSinceConnectS: secs(shot.sampledAt),
      lateMs: Math.round(shot.sampledAt - shot.dueAt),
      trigger: { event: describe(trigger), tSinceConnectS: secs(trigger.t), heardSinceConnectS: secs(trigger.heardAt) },
      shots: others, rule, chatState: shot.chatState, moodShown: shot.mood, weights, detail,
      numbers: `smile ${weights.mouthSmile.toFixed(2)} · inner brows ${weights.browInnerUp.toFixed(2)} · frown ` +
        `${weights.mouthFrown.toFixed(2)} · jaw ${weights.jawOpen.toFixed(2)}`,
    };
  });
}

/** What was said, per turn, and the moods and gestures its answer was said with, for frames.json. */
function conversation({ connectedAt, events }) {
  const turns = [];
  let open = null; // from the transcript to the turn's end
  for (const e of events) {
    if (e.type === "transcript") {
      open = { turn: e.turn, user: e.text, avatar: "", cues: [], transcriptAtS: +((e.t - connectedAt) / 1000).toFixed(2) };
      turns.push(open);
    } else if (e.type === "reply" && open?.turn === e.turn) open.avatar += e.text;
    else if ((e.type === "mood" || e.type === "gesture") && open) open.cues.push(`${e.type} ${e.mood ?? e.name}`);
    else if (e.type === "turn_end" && open?.turn === e.turn) open = null;
  }
  return turns.map((t) => ({ ...t, avatar: t.avatar.trim() }));
}

/** In the page: the chosen frames' pixels, and the contact sheet drawn with a 2D canvas (RGBA, base64). */
function drawFrames({ chosen, size, title }) {
  const snaps = chosen.map((c) => window.demoRecorder.shots[c.index].snap);
  const pixels = (canvas) => {
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let bin = "";
    for (let i = 0; i < px.length; i += 0x8000) bin += String.fromCharCode(...px.subarray(i, i + 0x8000));
    return { width: canvas.width, height: canvas.height, rgba: btoa(bin) };
  };
  const cols = 3, gap = 12, header = 40, caption = 62;
  const width = cols * size + (cols + 1) * gap;
  const rows = Math.ceil(snaps.length / cols);
  const height = header + rows * (size + caption) + (rows - 1) * gap;
  const sheet = new OffscreenCanvas(width, height);
  const ctx = sheet.getContext("2d");
  ctx.fillStyle = "#161a22";
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = "#c9d1e0";
  ctx.font = "15px sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillText(title, gap, header / 2 + 2, width - 2 * gap);
  ctx.textBaseline = "alphabetic";
  chosen.forEach((c, i) => {
    const x = gap + (i % cols) * (size + gap);
    const y = header + Math.floor(i / cols) * (size + caption + gap);
    ctx.drawImage(snaps[i], x, y);
    ctx.fillStyle = "#f2f4f8";
    ctx.font = "bold 19px sans-serif";
    ctx.fillText(`${i + 1}. ${c.caption}`, x + 2, y + size + 22, size - 4);
    ctx.fillStyle = "#aab3c5";
    ctx.font = "13px sans-serif";
    ctx.fillText(c.detail, x + 2, y + size + 40, size - 4);
    ctx.fillStyle = "#7f8aa0";
    ctx.font = "12px monospace";
    ctx.fillText(c.numbers, x + 2, y + size + 56, size - 4);
  });
  return { frames: snaps.map(pixels), sheet: pixels(sheet) };
}
