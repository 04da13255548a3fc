#!/usr/bin/env node
// Avatar rendering speed in Chromium: frames per second of the LAM WebRender (web/render-test.html, body clips
// running, a real Audio2Expression sequence playing, chat state "Responding") for each avatar, and of a plain
// three.js scene with the same number of splats (instanced Gaussian quads, and point sprites) in the same
// browser, same canvas size, same run. The ratio avatar / plain quads is the renderer's overhead (CPU sort
// every frame, morph/skin textures), comparable across machines; the absolute FPS is the machine's.
//
//   node hack/bench/render_fps.mjs [--seconds 10] [--warmup 3] [--rounds 1] [--size 512] [--avatar NAME=PATH]...
//        [--gpu [--headless]] [--chromium PATH] [--dist DIR] [--short] [--json OUT.json]
//
// --json: the hack/bench/run_all.py interface ({name, title, command, markdown, headline, targets}, the raw
//   measurements under "raw"); the one-line JSON on stdout stays the raw result.
// --short: CI mode (< 40 s): 2 s per scene after 1 s warm-up, plain instanced quads only, and web/dist as built
//   (by `make test`/install) instead of a fresh build when it exists.
//
// Default avatars: avatars/default.zip and ../shared/fixtures/lam/p2-1.zip (those that exist).
// Default browser: Debian's /usr/bin/chromium, headless, WebGL2 on SwiftShader (CPU) — what CI machines have.
// --gpu: a real GPU. Starts the browser HEADED with no SwiftShader flags (needs a desktop session, or a
//   display such as `xvfb-run -a` on a GPU host with its GL/Vulkan driver), plus --ignore-gpu-blocklist;
//   add --headless to try the GPU without a display (works with recent Chrome on Linux with a working
//   GPU driver; check the "webgl" line of the output names your GPU, not SwiftShader/llvmpipe).
//   With --gpu, frames are capped by the display's refresh (vsync) unless you add --no-vsync.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { launch } from "../../tests/web/lib/browser.mjs";
import { startServer } from "../../tests/web/render_server.mjs";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
// playwright-core lives in web/node_modules (ESM ignores NODE_PATH; tests/web reaches it through a symlink).
const playwright = await import(pathToFileURL(createRequire(join(REPO, "web/package.json")).resolve("playwright-core")));
const chromium = playwright.chromium ?? playwright.default.chromium;
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    rounds: { type: "string", default: "1" },
    size: { type: "string", default: "512" },
    avatar: { type: "string", multiple: true, default: [] },
    gpu: { type: "boolean", default: false },
    headless: { type: "boolean", default: false },
    "no-vsync": { type: "boolean", default: false },
    chromium: { type: "string", default: process.env.CHROMIUM_PATH || "/usr/bin/chromium" },
    dist: { type: "string" },
    json: { type: "string" },
    short: { type: "boolean", default: false },
    plain: { type: "string", default: "quads,points" }, // also: triangles (the same quads, not instanced)
    fixture: { type: "string", default: resolve(REPO, "../shared/fixtures/lam/test_expression_30fps.json") },
  },
});
if (args.short) Object.assign(args, { seconds: "2", warmup: "1", rounds: "1", plain: "quads" });
const SECONDS = Number(args.seconds);
const WARMUP = Number(args.warmup);
const SIZE = Number(args.size);
const log = (...a) => process.stderr.write(`${a.join(" ")}\n`);

let avatars = args.avatar.map((s) => [s.slice(0, s.indexOf("=")), resolve(s.slice(s.indexOf("=") + 1))]);
if (!avatars.length) {
  avatars = [["default", join(REPO, "avatars/default.zip")], ["p2-1", resolve(REPO, "../shared/fixtures/lam/p2-1.zip")]]
    .filter(([name, path]) => existsSync(path) || void log(`(skipping ${name}: ${path} not found)`));
}
if (!avatars.length) throw new Error("no avatar to measure: pass --avatar NAME=PATH");

// The web client, built fresh into a private folder unless --dist names one.
let dist = args.dist ?? (args.short && existsSync(join(REPO, "web/dist/render-test.html")) ? join(REPO, "web/dist") : undefined);
if (!dist) {
  dist = join(mkdtempSync(join(tmpdir(), "render-fps-")), "dist");
  log("building web/ into", dist);
  execFileSync("npx", ["vite", "build", "--outDir", dist, "--emptyOutDir", "--logLevel", "warn"], { cwd: join(REPO, "web"), stdio: "inherit" });
}

// The plain scene: N Gaussian splats of the avatar's size and opacity, head-sized, same camera as LAM's.
const PLAIN = `<!doctype html><meta charset="utf-8"><body style="margin:0;background:#1f2430">
<script type="module">
import * as THREE from "/three/three.module.js";
const q = new URLSearchParams(location.search), N = +q.get("n"), mode = q.get("mode"), S = +q.get("size");
const renderer = new THREE.WebGLRenderer({ antialias: false, powerPreference: "high-performance" });
renderer.setPixelRatio(1); renderer.setSize(S, S); renderer.setClearColor(0x1f2430, 1);
document.body.appendChild(renderer.domElement);
const camera = new THREE.PerspectiveCamera(50, 1, 0.1, 1000);          // LAM: fov 50, camPos (0,1.8,1), rotX -10°
camera.position.set(0, 1.8, 1); camera.rotateX(THREE.MathUtils.degToRad(-10));
let seed = 1; const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
const centers = new Float32Array(3 * N), colors = new Float32Array(4 * N);
for (let i = 0; i < N; i++) {                                           // ellipsoid ~ a head at y 1.65 m
  let x, y, z; do { x = 2 * rnd() - 1; y = 2 * rnd() - 1; z = 2 * rnd() - 1; } while (x * x + y * y + z * z > 1);
  centers.set([0.09 * x, 1.62 + 0.14 * y, 0.1 * z], 3 * i);
  const g = 0.3 + 0.6 * rnd(); colors.set([g, g * 0.95, g * 0.9, 0.14 + 0.5 * rnd()], 4 * i);  // LAM median opacity 0.14
}
const uniforms = { worldSize: { value: 0.0125 }, viewportH: { value: S } };  // 2·√8·σ, σ = 2.2 mm (p2-1 median)
const frag = \`precision highp float; in vec4 vColor; in vec2 vUv; out vec4 outColor;
  void main() { float a = vColor.a * exp(-4.0 * dot(vUv, vUv)); if (a < 1.0 / 255.0) discard; outColor = vec4(vColor.rgb, a); }\`;
const QUAD_VS = \`precision highp float; uniform mat4 modelViewMatrix, projectionMatrix; uniform float worldSize;
  in vec3 position, center; in vec4 color4; out vec4 vColor; out vec2 vUv;
  void main() { vec4 c = projectionMatrix * modelViewMatrix * vec4(center, 1.0);
    c.xy += position.xy * 0.5 * worldSize * vec2(projectionMatrix[0][0], projectionMatrix[1][1]);
    gl_Position = c; vColor = color4; vUv = position.xy; }\`;
let object;
if (mode === "points") {
  const g = new THREE.BufferGeometry();
  g.setAttribute("position", new THREE.BufferAttribute(centers, 3)); g.setAttribute("color4", new THREE.BufferAttribute(colors, 4));
  object = new THREE.Points(g, new THREE.RawShaderMaterial({ glslVersion: THREE.GLSL3, uniforms, transparent: true, depthWrite: false,
    vertexShader: \`precision highp float; uniform mat4 modelViewMatrix, projectionMatrix; uniform float worldSize, viewportH;
      in vec3 position; in vec4 color4; out vec4 vColor; out vec2 vUv;
      void main() { gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
        gl_PointSize = worldSize * projectionMatrix[1][1] * 0.5 * viewportH / gl_Position.w; vColor = color4; vUv = vec2(0.0); }\`,
    fragmentShader: frag.replace("dot(vUv, vUv)", "dot(2.0 * gl_PointCoord - 1.0, 2.0 * gl_PointCoord - 1.0)") }));
} else if (mode === "triangles") {                                     // the same quads, not instanced
  const g = new THREE.BufferGeometry(), corner = new Float32Array(12 * N), c4 = new Float32Array(16 * N), c3 = new Float32Array(12 * N), idx = new Uint32Array(6 * N);
  for (let i = 0; i < N; i++) {
    corner.set([-1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 1, 0], 12 * i);
    for (let k = 0; k < 4; k++) { c3.set(centers.subarray(3 * i, 3 * i + 3), 12 * i + 3 * k); c4.set(colors.subarray(4 * i, 4 * i + 4), 16 * i + 4 * k); }
    idx.set([4 * i, 4 * i + 1, 4 * i + 2, 4 * i, 4 * i + 2, 4 * i + 3], 6 * i);
  }
  g.setAttribute("position", new THREE.BufferAttribute(corner, 3)); g.setAttribute("center", new THREE.BufferAttribute(c3, 3));
  g.setAttribute("color4", new THREE.BufferAttribute(c4, 4)); g.setIndex(new THREE.BufferAttribute(idx, 1));
  object = new THREE.Mesh(g, new THREE.RawShaderMaterial({ glslVersion: THREE.GLSL3, uniforms, transparent: true, depthWrite: false,
    vertexShader: QUAD_VS, fragmentShader: frag }));
  object.frustumCulled = false;
} else {
  const g = new THREE.InstancedBufferGeometry();
  g.setAttribute("position", new THREE.BufferAttribute(new Float32Array([-1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 1, 0]), 3));
  g.setIndex([0, 1, 2, 0, 2, 3]);
  g.setAttribute("center", new THREE.InstancedBufferAttribute(centers, 3)); g.setAttribute("color4", new THREE.InstancedBufferAttribute(colors, 4));
  g.instanceCount = N;
  object = new THREE.Mesh(g, new THREE.RawShaderMaterial({ glslVersion: THREE.GLSL3, uniforms, transparent: true, depthWrite: false,
    vertexShader: QUAD_VS, fragmentShader: frag }));
  object.frustumCulled = false;
}
const scene = new THREE.Scene(); scene.add(object);
let frames = 0;
renderer.setAnimationLoop(() => { renderer.render(scene, camera); frames++; });
const gl = renderer.getContext(), dbg = gl.getExtension("WEBGL_debug_renderer_info");
window.bench = { frames: () => frames, webgl: dbg ? gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER) };
</script>`;

const files = Object.fromEntries(avatars.map(([name, path]) => [`/avatars/${name}.zip`, path]));
const server = await startServer({ root: dist, files, dirs: { "/three/": join(REPO, "web/node_modules/three/build") },
  pages: { "/plain.html": { type: "text/html; charset=utf-8", body: PLAIN } } });

let browser;
if (args.gpu) {
  const flags = ["--no-sandbox", "--ignore-gpu-blocklist", "--enable-gpu-rasterization", "--no-first-run"];
  if (args["no-vsync"]) flags.push("--disable-gpu-vsync", "--disable-frame-rate-limit");
  browser = await chromium.launch({ executablePath: args.chromium, headless: args.headless, args: flags });
} else {
  ({ browser } = await launch({ width: SIZE, height: SIZE }));
}
const context = browser.contexts()[0] || await browser.newContext({ viewport: { width: SIZE, height: SIZE } });
const fixture = JSON.parse(readFileSync(args.fixture, "utf8"));

// FPS of one page after WARMUP s: frames between the first and the last frame seen in SECONDS, over the
// time between them (the page's clock; a frame counter polled every 5 ms, so slow frame rates stay exact).
async function measure(page, framesExpr) {
  await page.waitForTimeout(WARMUP * 1000);
  return page.evaluate(async ([expr, seconds]) => {
    const frames = new Function(`return ${expr}`);
    const end = performance.now() + seconds * 1000;
    let prev = frames(), first = null, last = null;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
      const f = frames();
      if (f !== prev) { last = { f, t: performance.now() }; first ??= last; prev = f; }
    }
    return first && last.f > first.f ? (last.f - first.f) / ((last.t - first.t) / 1000) : 0;
  }, [framesExpr, SECONDS]);
}

const LOAD_BEFORE = loadavg()[0]; // 1-min load average: these are CPU numbers on a shared machine
const samples = new Map(); // scene → {row, fps: [one per round]}
const sample = (key, row, fps) => {
  if (!samples.has(key)) samples.set(key, { row, fps: [] });
  samples.get(key).fps.push(fps);
  log(`${row.scene} (${row.splats}): ${fps.toFixed(2)} FPS${row.loadMs ? `, loaded in ${row.loadMs} ms` : ""}`);
};
const median = (v) => { const s = [...v].sort((x, y) => x - y); return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2; };
const LABEL = { points: "point sprites", quads: "instanced quads", triangles: "quads as triangles" };
let webgl;

for (let round = 0; round < Number(args.rounds); round++) {
  const measured = new Set();
  for (const [name] of avatars) {
    const page = await context.newPage();
    await page.goto(`${server.url}/render-test.html?zip=/avatars/${name}.zip&w=${SIZE}&h=${SIZE}&state=Responding`);
    const ready = await page.evaluate(() => window.renderTest.ready.catch((e) => ({ error: e.message })));
    if (ready.error) throw new Error(`${name}: ${ready.error}`);
    await page.evaluate((seq) => window.renderTest.play(seq, 30), { names: fixture.names, frames: fixture.frames });
    sample(`avatar:${name}`, { scene: `LAM avatar ${name}`, splats: ready.splats, loadMs: ready.loadMs, plainOf: ready.splats },
      await measure(page, "window.renderTest.frames()"));
    await page.close();
    for (const mode of args.plain.split(",")) {
      const key = `plain:${mode}:${ready.splats}`;
      if (measured.has(key)) continue;
      measured.add(key);
      const plainPage = await context.newPage();
      await plainPage.goto(`${server.url}/plain.html?n=${ready.splats}&mode=${mode}&size=${SIZE}`);
      await plainPage.waitForFunction(() => window.bench, null, { timeout: 60000 });
      webgl ??= await plainPage.evaluate(() => window.bench.webgl);
      sample(key, { scene: `plain three.js, ${LABEL[mode]}`, splats: ready.splats, mode }, await measure(plainPage, "window.bench.frames()"));
      await plainPage.close();
    }
  }
}
const rows = [...samples.entries()].map(([key, { row, fps }]) => ({ key, ...row, fps: median(fps), perRound: fps }));
for (const row of rows.filter((r) => r.key.startsWith("avatar:"))) {
  for (const base of rows.filter((r) => r.mode && r.splats === row.plainOf)) {
    row[`ratioToPlain${base.mode[0].toUpperCase()}${base.mode.slice(1)}`] = row.fps / base.fps;
  }
}
await browser.close();
await server.close();

const result = { load: { before: LOAD_BEFORE, after: loadavg()[0] },
  browser: args.gpu ? `gpu${args.headless ? " headless" : " headed"}` : "headless swiftshader", webgl, size: SIZE,
  seconds: SECONDS, rounds: Number(args.rounds), rows: rows.map(({ key: _k, plainOf: _p, mode: _m, ...r }) => r) };
const fmt = (v, d = 2) => (v === undefined ? "" : v.toFixed(d));
process.stderr.write(`\nwebgl: ${webgl}, canvas ${SIZE}x${SIZE}, ${SECONDS} s per scene, ` +
  `median of ${args.rounds} round(s), load average ${LOAD_BEFORE.toFixed(1)} → ${result.load.after.toFixed(1)}\n\n`);
process.stderr.write("| scene | splats | FPS | ratio to plain quads | ratio to plain points |\n|---|---|---|---|---|\n");
for (const r of result.rows) {
  process.stderr.write(`| ${r.scene} | ${r.splats} | ${fmt(r.fps)} | ${fmt(r.ratioToPlainQuads)} | ${fmt(r.ratioToPlainPoints)} |\n`);
}
if (args.gpu && /swiftshader|llvmpipe|software/i.test(webgl || "")) {
  process.stderr.write("\nWARNING: --gpu but WebGL ran on a software rasterizer (no usable GPU/driver/display)\n");
}
if (args.json) writeFileSync(args.json, JSON.stringify(benchReport(result), null, 2));
process.stdout.write(`${JSON.stringify(result)}\n`);

/** The run_all.py section: setup, the table, and how to read it (software WebGL here, so ratios, not FPS). */
function benchReport(result) {
  const avatarRows = result.rows.filter((r) => r.scene.startsWith("LAM avatar"));
  const byName = (name) => avatarRows.find((r) => r.scene === `LAM avatar ${name}`);
  const headline = {};
  for (const [id, name] of [["default", "default"], ["lam", "p2-1"]]) {
    const row = byName(name);
    if (!row) continue;
    headline[`render_fps_${id}`] = +row.fps.toFixed(2);
    if (row.ratioToPlainQuads !== undefined) headline[`render_ratio_${id}`] = +row.ratioToPlainQuads.toFixed(2);
  }
  const table = ["| scene | splats | FPS | LAM ÷ plain instanced quads |", "|---|---|---|---|",
    ...result.rows.map((r) => `| ${r.scene} | ${r.splats.toLocaleString("en-US")} | ${fmt(r.fps)} | ${fmt(r.ratioToPlainQuads)} |`)];
  const markdown = [
    "The LAM WebRender (`web/render-test.html`, body clips running, a real Audio2Expression sequence playing, chat " +
    "state Responding) for `avatars/default.zip` (generated) and `../shared/fixtures/lam/p2-1.zip` (a real LAM " +
    "export), and a plain three.js scene with the same splat count (instanced Gaussian quads" +
    (args.plain.includes("points") ? "; point sprites" : "") + ") in the same browser and run. " +
    `WebGL: \`${result.webgl}\` (${result.browser}), ${SIZE}×${SIZE} canvas, ${SECONDS} s per scene after ` +
    `${WARMUP} s warm-up, median of ${result.rounds} round(s), 1-min load average ` +
    `${result.load.before.toFixed(1)} → ${result.load.after.toFixed(1)} (the machine is shared: ±30 %).`,
    "", ...table, "",
    "On this machine WebGL is software (SwiftShader), whose instanced-draw path dominates (the same quads drawn " +
    "without instancing, `--plain triangles`, run 6–7× faster), so the absolute FPS measures the CPU, not the " +
    "renderer; the ratio to the plain scene is the renderer's own overhead (CPU sort every frame, morph/skin " +
    "textures) and carries across machines. The browser tests check correctness — pixels change with the " +
    "expression weights — never speed.",
    "",
    "On a real GPU: `node hack/bench/render_fps.mjs --gpu` starts Chromium headed without the SwiftShader flags " +
    "(`--ignore-gpu-blocklist`; needs a desktop session or `xvfb-run -a` with the GPU driver); `--headless` tries " +
    "without a display, `--no-vsync` uncaps 60 Hz, `--chromium PATH` picks Google Chrome. Check that the printed " +
    "`webgl:` line names your GPU.",
  ].join("\n");
  return { name: "render_fps", title: "Avatar rendering — `hack/bench/render_fps.mjs`",
    command: ["node", "hack/bench/render_fps.mjs", ...process.argv.slice(2)].join(" "),
    markdown, headline, targets: [], raw: result };
}
