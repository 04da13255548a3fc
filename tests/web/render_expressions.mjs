// Renderer test in a real browser (Debian Chromium, WebGL2 via SwiftShader): loads web/dist/render-test.html
// from a loopback static server, mounts each avatar, drives exact ARKit weights and measures what changed on
// screen. Prints ONE JSON line with the measurements; tests/web/test_renderer.py applies the thresholds.
//
//   node tests/web/render_expressions.mjs --avatar p2-1=/path/p2-1.zip [--avatar default=/path/default.zip]
//        [--broken NAME=PATH]... [--fixture test_expression_30fps.json] [--dist web/dist] [--out DIR]
//
// The first avatar is loaded with the page; the others by re-mounting in the same page (mountAvatar disposes
// the previous renderer), and the first avatar is re-mounted at the end to check nothing leaked between them.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { launch, report } from "./lib/browser.mjs";
import { startServer } from "./render_server.mjs";
import { changedBox, decodeCapture, diff, foreground, headBox, parseHex, sub, verticalShift } from "./render_images.mjs";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const { values: args } = parseArgs({
  options: {
    avatar: { type: "string", multiple: true, default: [] },
    broken: { type: "string", multiple: true, default: [] },
    fixture: { type: "string", default: resolve(REPO, "../shared/fixtures/lam/test_expression_30fps.json") },
    dist: { type: "string", default: join(REPO, "web/dist") },
    out: { type: "string" },
    size: { type: "string", default: "512" },
  },
});
const BG = "#1f2430";
const HEAD_PITCH = (8 * Math.PI) / 180; // the fixed head rotation of the head-motion check
const SIZE = Number(args.size);
const pairs = (list) => list.map((s) => { const i = s.indexOf("="); return [s.slice(0, i), s.slice(i + 1)]; });
const avatars = pairs(args.avatar);
const broken = pairs(args.broken);

// The fixture frame with the widest open jaw (a real Audio2Expression frame, all 52 weights).
const fixture = JSON.parse(readFileSync(args.fixture, "utf8"));
const jawIdx = fixture.names.indexOf("jawOpen");
const maxJawFrame = fixture.frames.reduce((a, f) => (f.weights[jawIdx] > a.weights[jawIdx] ? f : a));
const frameWeights = Object.fromEntries(fixture.names.map((n, i) => [n, maxJawFrame.weights[i]]));

// Regions, as fractions of the head box (top of hair → shoulder line); see render_images.mjs.
const REGIONS = {
  mouthJaw: [0.15, 0.62, 0.85, 1.0],
  upperFace: [0.0, 0.0, 1.0, 0.35],
  eyes: [0.1, 0.36, 0.9, 0.58],
};

const files = {};
for (const [name, path] of [...avatars, ...broken]) files[`/avatars/${name}.zip`] = path;
files["/avatars/not-a-zip.zip"] = join(REPO, "web/package.json");
const server = await startServer({ root: args.dist, files });
const { browser, page, logs } = await launch({ width: SIZE, height: SIZE });
page.setDefaultTimeout(120000);
const result = { fixtureFrame: { time: maxJawFrame.time, jawOpen: maxJawFrame.weights[jawIdx] }, avatars: {}, errors: {} };
const t0 = Date.now();

async function mount(zipUrl, first) {
  if (first) await page.goto(`${server.url}/render-test.html?zip=${encodeURIComponent(zipUrl)}&freeze=1&w=${SIZE}&h=${SIZE}&bg=${encodeURIComponent(BG)}`);
  else await page.evaluate((u) => { window.renderTest.mount(u); }, zipUrl);
  return page.evaluate(async () => {
    try { return await window.renderTest.ready; } catch { return { error: window.renderTest.error, shown: document.getElementById("error").textContent }; }
  });
}

async function capture(weights, name, tag, keepPng = false) {
  await page.evaluate((w) => window.renderTest.setWeights(w), weights);
  const c = await page.evaluate((png) => window.renderTest.capture({ afterFrames: 2, png }), !!args.out || keepPng);
  if (args.out) writeFileSync(join(args.out, `${tag}-${name}.png`), Buffer.from(c.png.split(",")[1], "base64"));
  return Object.assign(decodeCapture(c), { png: c.png });
}

// When two stills that should match do not, keep both as PNGs for a look (path in the result).
function compareStills(a, b, label) {
  const d = diff(a, b);
  if (d.mean === 0) return d;
  const dir = args.out || mkdtempSync(join(tmpdir(), "render-mismatch-"));
  for (const [img, suffix] of [[a, "a"], [b, "b"]]) writeFileSync(join(dir, `${label}-${suffix}.png`), Buffer.from(img.png.split(",")[1], "base64"));
  return { ...d, box: changedBox(a, b, 8), pngs: dir };
}

if (args.out) mkdirSync(args.out, { recursive: true });
const bg = parseHex(BG);
let firstNeutral = null;
for (const [i, [name]] of avatars.entries()) {
  const ready = await mount(`/avatars/${name}.zip`, i === 0);
  const r = { ready, canvases: await page.evaluate(() => document.querySelectorAll("#avatar canvas").length) };
  result.avatars[name] = r;
  if (ready.error) continue;
  const tStart = Date.now();
  const f0 = await page.evaluate(() => window.renderTest.frames());
  const neutral = await capture({}, "neutral", name, i === 0);
  const jawFrame = await capture(frameWeights, "jaw-fixture", name);
  const jaw1 = await capture({ jawOpen: 1 }, "jaw1", name);
  const blink = await capture({ eyeBlinkLeft: 1, eyeBlinkRight: 1 }, "blink", name);
  const neutral2 = await capture({}, "neutral2", name);
  // Head motion (headbone.js): the head bone turned 8° chin-down on top of the frozen body clip, then no rotation
  // again (back to the neutral still: nothing accumulated).
  const headAttached = await page.evaluate((p) => window.renderTest.setHeadPose(p), { pitch: HEAD_PITCH, yaw: 0, roll: 0 });
  const pitched = await capture({}, "head-pitch8", name);
  await page.evaluate(() => window.renderTest.setHeadPose(null));
  const unpitched = await capture({}, "head-none", name);
  // Live procedural motion while the body is frozen (the first avatar only): the head holds still too.
  let live = null;
  if (i === 0) {
    await page.evaluate(() => window.renderTest.startHeadMotion({ seed: 3 }));
    live = [await capture({}, "head-live-a", name, true), await capture({}, "head-live-b", name, true)];
    await page.evaluate(() => window.renderTest.setHeadPose(null));
  }
  const f1 = await page.evaluate(() => window.renderTest.frames());
  r.fps = +((f1 - f0) / ((Date.now() - tStart) / 1000)).toFixed(2);
  if (i === 0) firstNeutral = neutral;

  r.cornerRGB = [...neutral.px.subarray(0, 3)]; // the background as drawn: '#rrggbb' must reach the renderer
  const fg = foreground(neutral, bg);
  const head = headBox(neutral, fg.mask);
  r.foregroundFraction = +fg.fraction.toFixed(4);
  r.head = head;
  if (!head) continue;
  const regions = Object.fromEntries(Object.entries(REGIONS).map(([k, f]) => [k, sub(head, ...f)]));
  r.regions = regions;
  // Below the shoulder line: the splats all follow the head bone, so a head turn moves them too, but less.
  const shoulders = { x0: head.fgBox.x0, y0: head.y1, x1: head.fgBox.x1, y1: head.fgBox.y1 };
  const measure = (img) => Object.fromEntries(Object.entries(regions).map(([k, box]) => [k, diff(neutral, img, box)]));
  r.diff = {
    neutralRepeat: { ...measure(neutral2), whole: diff(neutral, neutral2) },
    jawFixture: measure(jawFrame),
    jawOpen1: measure(jaw1),
    blink: measure(blink),
    headPitch: { ...measure(pitched), head: diff(neutral, pitched, head), shoulders: diff(neutral, pitched, shoulders),
      attached: headAttached },
    headBack: { head: diff(neutral, unpitched, head), whole: diff(neutral, unpitched) },
    ...(live && { headLiveFrozen: { whole: compareStills(live[0], live[1], "head-live-frozen"),
      moved: diff(neutral, live[0], head) } }),
  };
  // Which way the head went: the shift that best matches the eyes-to-mouth band (chin down: the face moves down).
  r.diff.headPitch.faceShift = verticalShift(neutral, pitched, sub(head, 0.15, 0.3, 0.85, 0.9));
  r.changedBox = { jawOpen1: changedBox(neutral, jaw1), blink: changedBox(neutral, blink), jawFixture: changedBox(neutral, jawFrame),
    headPitch: changedBox(neutral, pitched) };
}

// Re-mount the first avatar after the others: the same still as on the fresh page means nothing leaked.
if (avatars.length > 1 && firstNeutral) {
  const [name] = avatars[0];
  const ready = await mount(`/avatars/${name}.zip`, false);
  if (!ready.error) {
    const again = await capture({}, "remounted-neutral", name, true);
    result.remount = { avatar: name, diff: compareStills(firstNeutral, again, "remount"),
      canvases: await page.evaluate(() => document.querySelectorAll("canvas").length) };
  } else result.remount = { avatar: name, ready };
}

// Two mounts in a row, the second before the first finished: the first gives way, one renderer remains.
if (avatars.length > 1 && firstNeutral) {
  const [[first], [second]] = avatars;
  const outcome = await page.evaluate(async ([a, b]) => {
    const older = window.renderTest.mount(a);
    const newer = window.renderTest.mount(b);
    const olderOutcome = await older.then(() => "loaded", (e) => e.reason);
    return { older: olderOutcome, newer: await newer.then(() => "loaded", (e) => e.message) };
  }, [`/avatars/${second}.zip`, `/avatars/${first}.zip`]);
  const still = outcome.newer === "loaded" ? await capture({}, "after-double-mount", first, true) : null;
  result.doubleMount = { ...outcome, diff: still && compareStills(firstNeutral, still, "double-mount"),
    canvases: await page.evaluate(() => document.querySelectorAll("canvas").length) };
}

// Broken avatars: the page must show an AvatarLoadError naming the problem.
const goodPhaseLogs = logs.length;
for (const [name, url] of [["missing", "/avatars/does-not-exist.zip"], ["notZip", "/avatars/not-a-zip.zip"],
  ...broken.map(([n]) => [n, `/avatars/${n}.zip`])]) {
  const ready = await mount(url, false);
  result.errors[name] = { ...(ready.error || { unexpected: ready }), shown: ready.shown,
    canvases: await page.evaluate(() => document.querySelectorAll("#avatar canvas").length) };
}

// A browser without WebGL2 (getContext('webgl2') → null): the page must say so, before any download.
{
  const noGl = await page.context().newPage();
  await noGl.addInitScript(() => {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (type, ...rest) {
      return type === "webgl2" ? null : getContext.call(this, type, ...rest);
    };
  });
  await noGl.goto(`${server.url}/render-test.html?zip=/avatars/${avatars[0]?.[0] ?? "x"}.zip`);
  result.errors.noWebGL2 = await noGl.evaluate(async () => {
    await window.renderTest.ready.catch(() => {});
    return { ...window.renderTest.error, shown: document.getElementById("error").textContent };
  });
  await noGl.close();
}

const quiet = (l) => !l.startsWith("log:") && !l.startsWith("debug:");
result.logs = logs.slice(0, goodPhaseLogs).filter(quiet); // while loading and animating the real avatars
result.brokenLogs = logs.slice(goodPhaseLogs).filter(quiet); // while refusing the broken ones (expected errors)
result.pageErrors = logs.filter((l) => l.startsWith("pageerror:"));
result.requests = server.requests;
result.seconds = Math.round((Date.now() - t0) / 1000);
await browser.close();
await server.close();
report(result);
