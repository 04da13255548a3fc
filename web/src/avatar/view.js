// The one module that wraps the LAM WebRender (npm gaussian-splat-renderer-for-lam 0.0.8). Its traps, which
// this module handles (see ../shared/notes/web-renderer.md): getInstance() swallows every error and returns
// undefined; every renderer draws on ONE static canvas; the scene fades in over ~380 frames; backgroundColor
// must be '0xrrggbb'; weights are scaled in place in the object we return; absent weights keep their old value.
import { GaussianSplatRenderer, SceneRevealMode } from "gaussian-splat-renderer-for-lam";
import { HelloClip } from "./clips.js";
import { HeadBone } from "./headbone.js";
import { checkAvatarZip } from "./zip.js";

/** ARKit-52 blendshape names, in the order of DESIGN.md §4. */
export const ARKIT_NAMES = ("browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff " +
  "cheekSquintLeft cheekSquintRight eyeBlinkLeft eyeBlinkRight eyeLookDownLeft eyeLookDownRight eyeLookInLeft " +
  "eyeLookInRight eyeLookOutLeft eyeLookOutRight eyeLookUpLeft eyeLookUpRight eyeSquintLeft eyeSquintRight " +
  "eyeWideLeft eyeWideRight jawForward jawLeft jawOpen jawRight mouthClose mouthDimpleLeft mouthDimpleRight " +
  "mouthFrownLeft mouthFrownRight mouthFunnel mouthLeft mouthLowerDownLeft mouthLowerDownRight mouthPressLeft " +
  "mouthPressRight mouthPucker mouthRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper " +
  "mouthSmileLeft mouthSmileRight mouthStretchLeft mouthStretchRight mouthUpperUpLeft mouthUpperUpRight " +
  "noseSneerLeft noseSneerRight tongueOut").split(" ");

/** Chat states the renderer understands (they pick the body clips). */
export const CHAT_STATES = ["Idle", "Listening", "Thinking", "Responding"];

/** Why an avatar could not be shown; `message` is a sentence for the user, `reason` a short code. */
export class AvatarLoadError extends Error {
  /**
   * @param {string} message human sentence
   * @param {{reason?: string, cause?: unknown}} [opts] reason: webgl2 | url | not-found | http | network |
   *   bad-avatar | renderer | timeout | superseded
   */
  constructor(message, { reason = "renderer", cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "AvatarLoadError";
    this.reason = reason;
  }
}

/**
 * Convert '#rrggbb', '#rgb', '0xrrggbb' or a number to the '0xrrggbb' string the renderer parses.
 * @param {string|number} color
 * @returns {string}
 */
export function toRendererColor(color) {
  if (typeof color === "number" && color >= 0 && color <= 0xffffff) return `0x${color.toString(16).padStart(6, "0")}`;
  const m = /^(?:#|0x)([0-9a-f]{6}|[0-9a-f]{3})$/i.exec(String(color).trim());
  if (!m) throw new TypeError(`background must be '#rrggbb' or '0xrrggbb', got ${JSON.stringify(color)}`);
  const hex = m[1].length === 3 ? [...m[1]].map((c) => c + c).join("") : m[1];
  return `0x${hex.toLowerCase()}`;
}

/** @returns {boolean} whether this browser can create a WebGL2 context. */
export function hasWebGL2() {
  try {
    const gl = document.createElement("canvas").getContext("webgl2");
    gl?.getExtension("WEBGL_lose_context")?.loseContext();
    return !!gl;
  } catch {
    return false;
  }
}

let current = null; // the mounted view: the renderer supports one at a time
let abortPrevious = () => {}; // aborts the mount in progress when a newer one starts
let constructing = Promise.resolve(); // a getInstance() in flight: it will grab the static canvas when it builds

/**
 * @typedef {object} AvatarView
 * @property {HTMLCanvasElement} canvas the canvas the avatar is drawn on (inside `container`)
 * @property {() => Promise<void>} dispose stop rendering, free the GPU context, remove the canvas
 * @property {(frozen: boolean) => void} setBodyFrozen stop/restart the body clips (deterministic stills); while
 *   frozen the head motion holds its last pose too
 * @property {(motion: {pose: () => {pitch: number, yaw: number, roll: number}}|null) => boolean} setHeadMotion
 *   add `motion.pose()` (radians, see head.js) to the head every frame, on top of the body clip; null: clip alone.
 *   False when the head cannot be moved (logged once) or the view was replaced
 * @property {() => boolean} playHello play the avatar's hello (wave) clip once; false when it cannot now
 * @property {number} frames frames rendered so far
 * @property {number} splats splat count of the avatar
 * @property {object} renderer the underlying GaussianSplatRenderer (diagnostics only)
 */

/**
 * Load an avatar .zip and render it into `container`, animated every frame from the two callbacks.
 * A newer call disposes the mounted view and makes a call still loading fail with reason 'superseded'.
 * Resolves once the splats are on screen.
 * @param {HTMLElement} container sized element; the canvas takes its size
 * @param {object} opts
 * @param {string} opts.zipUrl URL of the LAM avatar .zip (its path must end in NAME.zip)
 * @param {() => string} [opts.getChatState] 'Idle' | 'Listening' | 'Thinking' | 'Responding'
 * @param {() => Record<string, number>} [opts.getWeights] ARKit weights (0..1) for NOW; missing names are 0
 * @param {string|number} [opts.background] '#rrggbb' or '0xrrggbb'
 * @param {(fraction: number, phase: string) => void} [opts.onProgress] 0..1 over download + load
 * @param {(canvas: HTMLCanvasElement) => void} [opts.onFrame] called right after each rendered frame
 * @param {boolean} [opts.freezeBody] start with the body clips stopped
 * @param {number} [opts.timeoutMs] whole download + load budget
 * @returns {Promise<AvatarView>}
 * @throws {AvatarLoadError}
 */
export async function mountAvatar(container, { zipUrl, getChatState, getWeights, background = "0x1f2430",
  onProgress, onFrame, freezeBody = false, timeoutMs = 60000 } = {}) {
  abortPrevious();
  const abort = new AbortController();
  abortPrevious = () => abort.abort();
  const deadline = performance.now() + timeoutMs;
  const wait = (promise) => within(promise, deadline, zipUrl, abort.signal);
  const progress = (f, phase) => { try { onProgress?.(f, phase); } catch { /* the UI's problem */ } };
  if (current) await current.dispose();
  if (!hasWebGL2()) {
    throw new AvatarLoadError("This browser has no WebGL2, which the 3D avatar needs: enable hardware " +
      "acceleration or use a current Chrome, Edge, Firefox or Safari.", { reason: "webgl2" });
  }
  const bg = toRendererColor(background);
  const url = new URL(zipUrl, document.baseURI);
  const name = /\/([^/]+?)\.zip/.exec(url.pathname)?.[1];
  if (!name) throw new AvatarLoadError(`avatar URL ${zipUrl} must name a .zip file (…/NAME.zip)`, { reason: "url" });

  const bytes = await wait(download(url, name, abort.signal, (f) => progress(0.5 * f, "download")));
  try {
    await checkAvatarZip(bytes);
  } catch (e) {
    throw new AvatarLoadError(`the avatar file ${name}.zip ${e.message}`, { reason: "bad-avatar", cause: e });
  }

  const neutral = Object.fromEntries(ARKIT_NAMES.map((n) => [n, 0]));
  let warned = false;
  let loaded;
  const done = new Promise((resolve) => (loaded = resolve));
  const options = {
    backgroundColor: bg,
    getChatState: () => {
      try { const s = getChatState?.(); return CHAT_STATES.includes(s) ? s : "Idle"; } catch { return "Idle"; }
    },
    // A fresh, complete, clamped object every frame: the renderer multiplies it in place by its scale table,
    // and a name left out would keep its previous value in the GPU texture.
    getExpressionData: () => {
      const out = { ...neutral };
      try {
        const w = getWeights?.();
        for (const k in w) if (k in out) { const v = +w[k]; out[k] = v > 0 ? (v < 1 ? v : 1) : 0; }
      } catch (e) {
        if (!warned) console.warn("avatar: getWeights() threw, showing a neutral face:", e);
        warned = true;
      }
      return out;
    },
    downloadProgress: (f) => progress(0.5 + 0.2 * f, "load"),
    loadProgress: (f) => { progress(0.7 + 0.3 * f, "load"); if (f >= 1) loaded(); },
  };

  await wait(constructing); // one getInstance at a time: each builds on the static canvas of its moment
  // A fresh canvas for this renderer: the static one would otherwise be shared with a disposed renderer.
  const canvas = (GaussianSplatRenderer._canvas = document.createElement("canvas"));
  const errors = []; // getInstance swallows its errors: it only logs them
  const consoleError = console.error;
  console.error = (...args) => { errors.push(args[0]); consoleError.apply(console, args); };
  const onRejection = (ev) => errors.push(ev.reason);
  window.addEventListener("unhandledrejection", onRejection);
  const pending = GaussianSplatRenderer.getInstance(container, url.href, options);
  constructing = pending.then(() => {}, () => {}).finally(() => { console.error = consoleError; });
  let renderer;
  const fail = (e) => {
    window.removeEventListener("unhandledrejection", onRejection);
    if (renderer) disposeRenderer(renderer, canvas);
    else pending.then((r) => (r ? disposeRenderer(r, canvas) : dropCanvas(canvas))); // a late one must not run
    return e instanceof AvatarLoadError ? e : new AvatarLoadError(String(e?.message || e));
  };
  const failure = (why) => new AvatarLoadError(`the avatar renderer could not load ${name}.zip: ${why}`);
  let hello = null; // the hello clip player, made on the first wave
  let headBone = null; // the head motion hook, made on the first setHeadMotion
  let bodyFrozen = freezeBody;
  const view = {
    canvas,
    renderer: null,
    frames: 0,
    splats: 0,
    setBodyFrozen(frozen) {
      bodyFrozen = frozen;
      if (view.renderer.mixer) view.renderer.mixer.timeScale = frozen ? 0 : 1;
      if (headBone) headBone.frozen = frozen;
    },
    setHeadMotion(motion) {
      if (current !== view || !view.renderer) return false;
      if (!headBone) {
        if (!motion) return true;
        headBone = new HeadBone(view.renderer); // logs once when the head cannot be found; then does nothing
        headBone.frozen = bodyFrozen;
      }
      headBone.setSource(motion ?? null);
      return headBone.attached;
    },
    playHello() {
      if (current !== view || !view.renderer?.animManager) return false; // replaced, or its clips not loaded yet
      hello ??= new HelloClip(view.renderer.animManager);
      return hello.play();
    },
    async dispose() {
      if (current === view) current = null;
      await disposeRenderer(view.renderer, canvas);
    },
  };
  try {
    renderer = await wait(pending);
    if (!renderer) throw failure(errors[0]?.message || String(errors[0] ?? "unknown error (see the console)"));
    // Its frame loop starts when the splats have loaded: set everything up before that first frame.
    view.renderer = renderer;
    view.setBodyFrozen(freezeBody);
    const viewer = renderer.viewer;
    viewer.sceneRevealMode = SceneRevealMode.Instant; // else ~380 frames of blank canvas
    const draw = viewer.render;
    viewer.render = function (...args) {
      draw.apply(this, args);
      view.frames++;
      if (onFrame) try { onFrame(canvas); } catch (e) { console.warn("avatar: onFrame threw:", e); }
    };
    let poll;
    const broke = new Promise((_, reject) => {
      poll = setInterval(() => errors.length && reject(failure(errors[0]?.message || String(errors[0]))), 100);
    });
    await wait(Promise.race([done, broke])).finally(() => clearInterval(poll));
  } catch (e) {
    throw fail(e);
  }
  window.removeEventListener("unhandledrejection", onRejection);
  view.splats = renderer.viewer.gaussianSplatCount;
  current = view;
  return view;
}

/** `promise`, or an AvatarLoadError at the deadline or when a newer mountAvatar call aborts this one. */
function within(promise, deadline, zipUrl, signal) {
  let timer;
  let onAbort;
  const stop = new Promise((_, reject) => {
    const ms = Math.max(0, deadline - performance.now());
    timer = setTimeout(() => reject(new AvatarLoadError(`avatar ${zipUrl} did not load in time`, { reason: "timeout" })), ms);
    onAbort = () => reject(new AvatarLoadError("superseded by a newer avatar", { reason: "superseded" }));
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort);
  });
  return Promise.race([promise, stop]).finally(() => { clearTimeout(timer); signal.removeEventListener("abort", onAbort); });
}

async function download(url, name, signal, onFraction) {
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throw new AvatarLoadError(`avatar ${name}.zip could not be downloaded (${e.message})`, { reason: "network", cause: e });
  }
  if (!res.ok) {
    throw new AvatarLoadError(res.status === 404 ? `avatar ${name}.zip not found (404)`
      : `avatar ${name}.zip could not be downloaded (HTTP ${res.status} ${res.statusText})`,
    { reason: res.status === 404 ? "not-found" : "http" });
  }
  const total = Number(res.headers.get("content-length")) || 0;
  let got = 0;
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, out) { got += chunk.length; if (total) onFraction(Math.min(1, got / total)); out.enqueue(chunk); },
  }));
  return new Uint8Array(await new Response(counted).arrayBuffer());
}

async function disposeRenderer(renderer, canvas) {
  renderer.render = () => {}; // end its requestAnimationFrame loop now, not when the viewer has disposed
  if (renderer.viewer) cancelAnimationFrame(renderer.viewer.requestFrameId);
  const manager = renderer.animManager?.constructor; // AnimationManager keeps static state across renderers
  if (manager) Object.assign(manager, { actions: [], LastAction: undefined, CurPlaying: undefined, IsBlending: false });
  const viewerDone = renderer.viewer?.dispose?.();
  const shared = GaussianSplatRenderer._canvas; // renderer.dispose() hides whatever canvas is static now
  GaussianSplatRenderer._canvas = canvas;
  try { renderer.dispose(); } catch { /* already half gone */ } finally { GaussianSplatRenderer._canvas = shared; }
  await Promise.race([Promise.resolve(viewerDone).catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
  dropCanvas(canvas);
}

function dropCanvas(canvas) {
  canvas.getContext("webgl2")?.getExtension("WEBGL_lose_context")?.loseContext();
  canvas.remove();
}
