// Helpers for the browser-client scripts (tests/web/client_*.mjs): open the app page, wait with patience
// (software WebGL renders at ~1–2 FPS here), and turn screenshots into pixels for measurements.
import { writeFileSync } from "node:fs";
import { launch } from "./browser.mjs";

/** Command-line `--key value` pairs → object (scripts are run by tests/web/browser.py's run_script). */
export function args(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

/**
 * Launch Chromium and open the client at `url`; resolves once /api/config is applied (or failed).
 * @returns {Promise<{browser, context, page, logs: string[], decode: (png: Buffer) => Promise<Image>, since: () => number}>}
 */
export async function openClient(url, { fakeAudio = null, denyMicrophone = false, width = 800, height = 600,
  readableCanvas = false, noWebGL2 = false } = {}) {
  const { browser, context, page, logs } = await launch({ fakeAudio, denyMicrophone, width, height });
  page.setDefaultTimeout(120000);
  if (readableCanvas) await page.addInitScript(PRESERVE_DRAWING_BUFFER);
  if (noWebGL2) await page.addInitScript(NO_WEBGL2);
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(() => window.gaussianAvatar?.config || document.querySelector("#alert:not([hidden])"));
  const decoder = await context.newPage(); // decodes PNGs with the browser's own codec, away from the app page
  const decode = async (png) => {
    const data = await decoder.evaluate(async (b64) => {
      const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      let bin = "";
      for (let i = 0; i < rgba.length; i += 0x8000) bin += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
      return { width: bitmap.width, height: bitmap.height, rgba: btoa(bin) };
    }, png.toString("base64"));
    return { width: data.width, height: data.height, px: new Uint8Array(Buffer.from(data.rgba, "base64")) };
  };
  return { browser, context, page, logs, decode, since: () => (Date.now() - t0) / 1000 };
}

// Test-side only: WebGL contexts keep their last frame, so the test can read the pixels the user sees at any time
// (drawImage of the canvas) instead of racing the renderer's animation frame.
const PRESERVE_DRAWING_BUFFER = `(() => {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, options) {
    if (kind === "webgl2" || kind === "webgl") options = { ...(options || {}), preserveDrawingBuffer: true };
    return getContext.call(this, kind, options);
  };
})();`;

// A browser without WebGL2 (old GPU, blocklisted driver, hardware acceleration off), as the page sees it.
const NO_WEBGL2 = `(() => {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, options) {
    return kind === "webgl2" ? null : getContext.call(this, kind, options);
  };
})();`;

/** Screenshot (optionally of `clip`), saved to `path` when given; returns the PNG bytes. */
export async function shot(page, { clip, path } = {}) {
  const png = await page.screenshot({ clip, timeout: 60000 });
  if (path) writeFileSync(path, png);
  return png;
}

/** The app's diagnostics (see App.stats() in web/src/main.js). */
export function stats(page) {
  return page.evaluate(() => window.gaussianAvatar.stats());
}

/** Visible text of the banner, transcript lines and status, for results and failure messages. */
export function pageText(page) {
  return page.evaluate(() => ({
    alert: document.querySelector("#alert:not([hidden])")?.innerText ?? null,
    alertKind: document.querySelector("#alert")?.dataset.kind ?? null,
    user: [...document.querySelectorAll(".line.user .text")].map((e) => e.textContent),
    avatar: [...document.querySelectorAll(".line.avatar")].map((e) => e.innerText),
    connection: document.querySelector("#connection").dataset.state,
    chatState: document.querySelector("#chat-state").dataset.state,
    avatarStatus: document.querySelector("#avatar-status:not([hidden])")?.innerText ?? null,
    notice: document.querySelector("#notice:not([hidden])")?.innerText ?? null,
  }));
}

/** Close the conversation from the page (bye + DELETE) before closing the browser, so no server task lingers. */
export async function close({ page, browser }) {
  try {
    await page.evaluate(() => window.gaussianAvatar?.hangUp(), null);
  } catch {
    /* the page may be gone */
  }
  await browser.close();
}
