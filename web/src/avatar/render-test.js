// Test page driver (web/render-test.html): mounts the avatar named by ?zip= and exposes window.renderTest so
// browser tests and benchmarks can set exact weights and read back exactly what was rendered.
import { HeadMotion, seededRandom } from "./head.js";
import { mountAvatar } from "./view.js";

const q = new URLSearchParams(location.search);
const container = document.getElementById("avatar");
const status = document.getElementById("status");
container.style.width = `${Number(q.get("w")) || 512}px`;
container.style.height = `${Number(q.get("h")) || 512}px`;

let weights = {};
let player = null; // () => weights, while a recorded sequence plays
let state = q.get("state") || "Idle";
const captures = []; // pending {framesLeft, resolve}

// Copy the canvas right after a frame was drawn (same task), so preserveDrawingBuffer=false does not matter.
function onFrame(canvas) {
  for (const c of captures.slice()) {
    if (--c.framesLeft > 0) continue;
    captures.splice(captures.indexOf(c), 1);
    const copy = document.createElement("canvas");
    copy.width = canvas.width;
    copy.height = canvas.height;
    const ctx = copy.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(canvas, 0, 0);
    c.resolve({ width: copy.width, height: copy.height, data: ctx.getImageData(0, 0, copy.width, copy.height).data,
      png: c.png ? copy.toDataURL("image/png") : undefined });
  }
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

const api = {
  /** resolves {splats, loadMs} once the avatar is on screen; rejects with the AvatarLoadError */
  ready: null,
  canvas: null,
  view: null,
  /** mount(zipUrl): see below */
  mount: null,
  /** {name, reason, message} when loading failed */
  error: null,
  /** weights for every following frame: {arkitName: 0..1}; names left out are 0 */
  setWeights(w) { player = null; weights = { ...w }; },
  /**
   * Play a recorded sequence {names, frames: [{weights}]} at `fps`, looping, from now (benchmarks).
   */
  play({ names, frames }, fps = 30) {
    const start = performance.now();
    player = () => {
      const f = frames[Math.floor(((performance.now() - start) / 1000) * fps) % frames.length];
      return Object.fromEntries(names.map((n, i) => [n, f.weights[i]]));
    };
  },
  setState(s) { state = s; },
  setBodyFrozen(f) { api.view?.setBodyFrozen(f); },
  /**
   * Add a fixed head rotation {pitch, yaw, roll} (radians, see head.js) to every following frame; null: none.
   * @returns {boolean} whether the head can be moved
   */
  setHeadPose(pose) { return api.view ? api.view.setHeadMotion(pose ? { pose: () => ({ ...pose }) } : null) : false; },
  /** Live procedural head motion (head.js) from now, seeded (api.headMotion: to nod or listen). */
  startHeadMotion({ seed = 1 } = {}) {
    api.headMotion = new HeadMotion({ random: seededRandom(seed) });
    return api.view ? api.view.setHeadMotion(api.headMotion) : false;
  },
  headMotion: null,
  frames() { return api.view ? api.view.frames : 0; },
  /**
   * Pixels of the `afterFrames`-th frame rendered from now: {width, height, rgba (base64), png?}.
   * With afterFrames ≥ 2 the frame is fully drawn with the weights/state set before the call.
   */
  async capture({ afterFrames = 2, png = false } = {}) {
    const img = await new Promise((resolve) => captures.push({ framesLeft: afterFrames, resolve, png }));
    return { width: img.width, height: img.height, rgba: toBase64(img.data), png: img.png };
  },
};
window.renderTest = api;

/**
 * Mount (or re-mount: the previous view is disposed by mountAvatar) the avatar at `zipUrl`; sets api.ready.
 * @param {string} zipUrl
 */
api.mount = (zipUrl) => {
  const t0 = performance.now();
  api.error = null;
  api.view = null;
  api.canvas = null;
  document.getElementById("error").textContent = "";
  api.ready = mountAvatar(container, {
    zipUrl,
    background: q.get("bg") || "#1f2430",
    getWeights: () => (player ? player() : weights),
    getChatState: () => state,
    freezeBody: q.get("freeze") === "1",
    timeoutMs: Number(q.get("timeout")) || 60000,
    onProgress: (f, phase) => { status.textContent = `${phase} ${Math.round(f * 100)} %`; },
    onFrame,
  }).then((view) => {
    api.view = view;
    api.canvas = view.canvas;
    status.textContent = `${view.splats} splats`;
    return { splats: view.splats, loadMs: Math.round(performance.now() - t0) };
  }, (e) => {
    if (e.reason === "superseded") throw e; // a newer mount() owns the page now
    api.error = { name: e.name, reason: e.reason, message: e.message };
    document.getElementById("error").textContent = `${e.name}: ${e.message}`;
    status.textContent = "failed";
    throw e;
  });
  api.ready.catch(() => {}); // reported through api.error and the page; not an unhandled rejection
  return api.ready;
};
api.mount(q.get("zip") || "/avatars/default.zip");
