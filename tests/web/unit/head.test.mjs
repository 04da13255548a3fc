// Unit tests of web/src/avatar/head.js: the procedural head motion (idle life, breathing pitch, nods, listening
// tilt), on an explicit clock and a seeded random.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEG, HEAD_DEFAULTS, HeadMotion, nodShape, seededRandom } from "../../../web/src/avatar/head.js";

const AXES = ["pitch", "yaw", "roll"];
const FPS = 60;

/** Poses every frame from t0 to t1 (inclusive), at FPS. */
function sample(motion, t0, t1, fps = FPS) {
  const out = [];
  for (let i = 0; t0 + i / fps <= t1 + 1e-9; i++) out.push({ t: t0 + i / fps, ...motion.pose(t0 + i / fps) });
  return out;
}

const inDeg = (rad) => rad / DEG;
const maxAbs = (poses, axis) => Math.max(...poses.map((p) => Math.abs(p[axis])));
/** The largest change of any axis between consecutive samples, in degrees. */
function maxStep(poses) {
  let step = 0;
  for (let i = 1; i < poses.length; i++) {
    for (const axis of AXES) step = Math.max(step, Math.abs(poses[i][axis] - poses[i - 1][axis]));
  }
  return inDeg(step);
}

/** The same motion without the nods: a twin built from the same seed. */
const twin = (seed, options = {}) => new HeadMotion({ random: seededRandom(seed), now: () => 0, ...options });

test("idle micro-motion stays small, differs per axis and keeps moving over 10 s", () => {
  for (const seed of [1, 2, 3, 42]) {
    const poses = sample(twin(seed), 0, 60);
    // Bounds: idle amplitude per axis (+ the breathing pitch on pitch).
    assert.ok(inDeg(maxAbs(poses, "pitch")) <= HEAD_DEFAULTS.idleDeg.pitch + HEAD_DEFAULTS.breathDeg + 1e-9);
    assert.ok(inDeg(maxAbs(poses, "yaw")) <= HEAD_DEFAULTS.idleDeg.yaw + 1e-9);
    assert.ok(inDeg(maxAbs(poses, "roll")) <= HEAD_DEFAULTS.idleDeg.roll + 1e-9);
    // Alive: each axis moves by a visible fraction of a degree within any 10 s, and the axes do not move in step.
    for (let start = 0; start <= 50; start += 10) {
      const window = poses.filter((p) => p.t >= start && p.t <= start + 10);
      for (const axis of AXES) {
        const values = window.map((p) => inDeg(p[axis]));
        assert.ok(Math.max(...values) - Math.min(...values) > 0.2, `${axis} nearly still in ${start}-${start + 10} s`);
      }
    }
    const correlation = (a, b) => {
      const xs = poses.map((p) => p[a]), ys = poses.map((p) => p[b]);
      const mean = (v) => v.reduce((s, x) => s + x, 0) / v.length;
      const [mx, my] = [mean(xs), mean(ys)];
      let sxy = 0, sxx = 0, syy = 0;
      for (let i = 0; i < xs.length; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) ** 2; syy += (ys[i] - my) ** 2; }
      return sxy / Math.sqrt(sxx * syy);
    };
    assert.ok(Math.abs(correlation("yaw", "roll")) < 0.95 && Math.abs(correlation("pitch", "yaw")) < 0.95);
    assert.ok(maxStep(poses) < 0.05, `idle motion jerks: ${maxStep(poses)}° in one frame`);
  }
});

test("the pitch breathes: ~0.5° at the runtime's 4.2 s breathing period", () => {
  const still = { idleDeg: { pitch: 0, yaw: 0, roll: 0 } };
  const poses = sample(twin(5, still), 0, 20);
  const pitch = poses.map((p) => inDeg(p.pitch));
  assert.ok(Math.abs(Math.max(...pitch) - HEAD_DEFAULTS.breathDeg) < 0.01 && Math.abs(Math.min(...pitch) + HEAD_DEFAULTS.breathDeg) < 0.01);
  const period = HEAD_DEFAULTS.breathPeriodS;
  for (const { t, pitch: p } of poses.filter((q) => q.t + period <= 20)) {
    assert.ok(Math.abs(p - twin(5, still).pose(t + period).pitch) < 1e-12);
  }
});

test("nod shape: a smooth dip down and back over nodS, then a smaller bounce, then rest", () => {
  const { nodS, bounce, bounceS } = HEAD_DEFAULTS;
  assert.equal(nodShape(0), 0);
  assert.ok(Math.abs(nodShape(nodS / 2) - 1) < 1e-12);
  assert.ok(nodShape(nodS) < 1e-12);
  assert.ok(Math.abs(nodShape(nodS + bounceS / 2) - bounce) < 1e-12);
  assert.equal(nodShape(nodS + bounceS), 0);
  assert.equal(nodShape(nodS + bounceS + 1), 0);
  assert.equal(nodShape(0.1, { bounce: 0 }), nodShape(0.1));
  assert.equal(nodShape(nodS + 0.1, { bounce: 0 }), 0);
});

test("a nod goes down 4-6° and back within ~0.55 s, bounces once and returns exactly to the base", () => {
  for (const seed of [1, 7, 99]) {
    const motion = twin(seed);
    const base = twin(seed); // the same idle motion, never nodding
    const t0 = 3.2;
    assert.equal(motion.nod(t0), true);
    const rel = sample(motion, t0 - 0.2, t0 + 2).map((p) => ({ t: p.t - t0, nod: inDeg(p.pitch - base.pose(p.t).pitch),
      yaw: p.yaw - base.pose(p.t).yaw, roll: p.roll - base.pose(p.t).roll }));
    assert.ok(rel.every((r) => r.yaw === 0 && r.roll === 0), "a nod only pitches");
    assert.ok(rel.filter((r) => r.t < 0).every((r) => r.nod === 0), "nothing before the nod");
    const main = rel.filter((r) => r.t >= 0 && r.t <= HEAD_DEFAULTS.nodS);
    const peak = main.reduce((a, r) => (r.nod > a.nod ? r : a));
    assert.ok(peak.nod >= 4 && peak.nod <= 6, `nod depth ${peak.nod}°`);
    assert.ok(Math.abs(peak.t - HEAD_DEFAULTS.nodS / 2) < 0.02, `deepest at ${peak.t} s`);
    // Back up (to within 0.1°) by 0.6 s; the bounce is a third of the depth at most; then exactly the base.
    const down = rel.filter((r) => r.nod > 0.1 * peak.nod);
    const firstUp = rel.find((r) => r.t > peak.t && r.nod < 0.1);
    assert.ok(firstUp.t <= 0.6, `back up at ${firstUp.t} s`);
    const bouncePeak = Math.max(...rel.filter((r) => r.t > firstUp.t).map((r) => r.nod));
    assert.ok(bouncePeak > 0.1 * peak.nod && bouncePeak < 0.4 * peak.nod, `bounce ${bouncePeak}°`);
    assert.ok(rel.filter((r) => r.t >= HEAD_DEFAULTS.nodS + HEAD_DEFAULTS.bounceS).every((r) => r.nod === 0));
    assert.ok(down.every((r) => r.t > 0 && r.t < 0.9));
    assert.ok(maxStep(sample(motion, t0 - 0.2, t0 + 2)) < 0.6, "a nod moves under 0.6° per 60 fps frame");
  }
});

test("nods are rate-limited: at most one per 1.5 s", () => {
  const motion = twin(3);
  assert.equal(motion.nod(10), true);
  assert.equal(motion.nod(10.2), false);
  assert.equal(motion.nod(11.49), false);
  assert.equal(motion.nod(11.5), true);
  // A burst of cues (every 0.3 s for 6 s) nods four times, 1.5 s apart.
  const burst = twin(4);
  const started = [];
  for (let i = 0; i < 20; i++) if (burst.nod(i * 0.3 + 1e-9)) started.push(+(i * 0.3).toFixed(1));
  assert.deepEqual(started, [0, 1.5, 3, 4.5]);
  // The depth never stacks: the deepest point of the burst is one nod's.
  const base = twin(4);
  const depth = Math.max(...sample(burst, 0, 7).map((p) => inDeg(p.pitch - base.pose(p.t).pitch)));
  assert.ok(depth <= HEAD_DEFAULTS.nodDeg * (1 + HEAD_DEFAULTS.nodJitter) + 1e-9, `${depth}°`);
});

test("listening: calmer micro-motion and a tilt toward the user, eased in and out over ~0.4 s", () => {
  const motion = twin(11);
  const base = twin(11);
  motion.setListening(true, 5);
  assert.equal(motion.listening, true);
  assert.equal(motion.listenWeight(5), 0);
  assert.ok(motion.listenWeight(5.2) > 0.3 && motion.listenWeight(5.2) < 0.7);
  assert.equal(motion.listenWeight(5 + HEAD_DEFAULTS.easeS), 1);
  // Settled: the tilt is the listening offset plus half the idle wander (calm 0.5).
  const idleOnly = twin(11, { breathDeg: 0 });
  const listenOnly = twin(11, { breathDeg: 0 });
  listenOnly.setListening(true, 0);
  for (const t of [1, 2.5, 7, 13]) {
    const a = listenOnly.pose(t), b = idleOnly.pose(t);
    assert.ok(Math.abs(inDeg(a.roll) - (HEAD_DEFAULTS.listenDeg.roll + HEAD_DEFAULTS.listenCalm * inDeg(b.roll))) < 1e-9);
    assert.ok(Math.abs(inDeg(a.pitch) - (HEAD_DEFAULTS.listenDeg.pitch + HEAD_DEFAULTS.listenCalm * inDeg(b.pitch))) < 1e-9);
    assert.ok(Math.abs(inDeg(a.yaw) - HEAD_DEFAULTS.listenCalm * inDeg(b.yaw)) < 1e-9);
  }
  // While listening the wander is calmer: its spread over 20 s is about half the idle one's.
  const spread = (m, axis) => { const v = sample(m, 20, 40, 30).map((p) => p[axis]); return Math.max(...v) - Math.min(...v); };
  assert.ok(spread(listenOnly, "yaw") < 0.6 * spread(idleOnly, "yaw"));
  // Eased out again: back to the very pose of the idle head.
  motion.setListening(false, 8);
  assert.equal(motion.listening, false);
  for (const t of [8 + HEAD_DEFAULTS.easeS, 9, 12]) assert.deepEqual(motion.pose(t), base.pose(t));
});

test("no jumps: mode changes, even mid-ease and mid-nod, keep every frame's step small", () => {
  const motion = twin(21);
  const poses = [];
  const script = new Map([[1, () => motion.setListening(true)], [1.15, () => motion.setListening(false)], // mid-ease back
    [1.3, () => motion.setListening(true)], [2, () => motion.nod()], [2.2, () => motion.setListening(false)], // mid-nod
    [2.25, () => motion.setListening(true)], [4, () => motion.nod()], [4.1, () => motion.setListening(false)]]);
  for (let i = 0; i <= 6 * FPS; i++) {
    const t = i / FPS;
    motion.now = () => t;
    for (const [at, act] of script) if (Math.abs(at - t) < 0.5 / FPS) act();
    poses.push(motion.pose(t));
  }
  const step = maxStep(poses);
  assert.ok(step < 0.6, `largest step ${step}° per frame`); // a nod alone peaks at ~0.5°/frame at 60 fps
  // Without the nods the posture changes are gentler still.
  const calm = twin(21);
  const eased = [];
  for (let i = 0; i <= 4 * FPS; i++) {
    const t = i / FPS;
    if (i === FPS) calm.setListening(true, t);
    if (i === FPS + 9) calm.setListening(false, t);
    if (i === FPS + 18) calm.setListening(true, t);
    eased.push(calm.pose(t));
  }
  assert.ok(maxStep(eased) < 0.15, `largest step ${maxStep(eased)}° per frame while easing`);
});

test("deterministic with an injected random; another seed moves differently", () => {
  const run = (seed) => {
    const m = twin(seed);
    m.setListening(true, 2);
    m.nod(3);
    m.setListening(false, 5);
    return sample(m, 0, 8, 15);
  };
  assert.deepEqual(run(8), run(8));
  assert.notDeepEqual(run(8), run(9));
  // The clock is injectable too: pose() / nod() / setListening() without a time use now().
  let t = 0;
  const clocked = new HeadMotion({ random: seededRandom(8), now: () => t });
  const explicit = twin(8);
  t = 3;
  assert.equal(clocked.nod(), true);
  explicit.nod(3);
  t = 3.2;
  assert.deepEqual(clocked.pose(), explicit.pose(3.2));
});
