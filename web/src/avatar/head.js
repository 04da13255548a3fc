// Procedural head motion: what ARKit-52 frames cannot carry. The server's frames move the face (gaze, brows, blinks,
// breathing); the LAM body clips move the head a little. This adds, on top of whatever the clip does, the small head
// movements of a person who is alive and attends: slow micro-motion, a pitch that breathes, nods (an "mm-hm" at the
// user's pauses, a "got it" when they finish) and, while the user talks, a calmer head tilted toward them.
//
// Pure and clock-driven: every method takes the time in seconds (default: `now()`), randomness comes from `random`,
// so Node tests replay it exactly. web/src/avatar/headbone.js puts the pose on the renderer's head bone.
//
// Angles are radians in the head's own frame (LAM exports: Y up, the face towards +Z, the viewer):
//   pitch > 0: chin down (a nod);  yaw > 0: face turns to the avatar's left;  roll > 0: crown to the avatar's right.

/** Degrees → radians. */
export const DEG = Math.PI / 180;

/**
 * @typedef {object} HeadPose
 * @property {number} pitch radians, > 0 looks down
 * @property {number} yaw radians, > 0 turns to the avatar's left
 * @property {number} roll radians, > 0 tilts the crown to the avatar's right
 */

/** Default tuning; every key can be overridden in the constructor. Angles in degrees, times in seconds. */
export const HEAD_DEFAULTS = Object.freeze({
  idleDeg: Object.freeze({ pitch: 1.2, yaw: 1.8, roll: 0.8 }), // micro-motion peak per axis (bounded, see _wander)
  breathDeg: 0.5, // pitch amplitude in step with breathing
  breathPeriodS: 4.2, // the runtime's ambient breathing cycle (docs/expression.md)
  nodDeg: 5, // depth of a nod (each nod varies it by ±nodJitter)
  nodJitter: 0.15,
  nodS: 0.55, // down and back
  bounce: 0.3, // the second, smaller dip: its depth as a fraction of the nod's
  bounceS: 0.3,
  nodIntervalS: 1.5, // at most one nod per this long
  listenCalm: 0.5, // micro-motion scale while listening
  listenDeg: Object.freeze({ pitch: 1.5, yaw: 0, roll: 2 }), // the attentive tilt toward the user
  easeS: 0.4, // listening tilt and calm ease in and out over this long
});

/** A small seeded PRNG (mulberry32): `random` for tests and for reproducible motion. @returns {() => number} */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 0 → 0, 1 → 1, flat at both ends; clamped outside. */
function smoothstep(u) {
  if (u <= 0) return 0;
  if (u >= 1) return 1;
  return u * u * (3 - 2 * u);
}

/** A bump over u ∈ [0, 1]: sin²(πu), zero with zero slope at both ends. */
function bump(u) {
  if (u <= 0 || u >= 1) return 0;
  const s = Math.sin(Math.PI * u);
  return s * s;
}

/**
 * The nod's pitch offset `t` seconds after it started, as a fraction of its depth: a dip down and back over `nodS`,
 * then a dip of `bounce` over `bounceS`. Smooth (C1) throughout: each part starts and ends at rest with zero slope.
 * @returns {number} 0..1
 */
export function nodShape(t, { nodS = HEAD_DEFAULTS.nodS, bounce = HEAD_DEFAULTS.bounce, bounceS = HEAD_DEFAULTS.bounceS } = {}) {
  if (t < nodS) return bump(t / nodS);
  return bounce > 0 && bounceS > 0 ? bounce * bump((t - nodS) / bounceS) : 0;
}

/** Idle life, nods and listening posture for the avatar's head. */
export class HeadMotion {
  /**
   * @param {object} [options] any key of HEAD_DEFAULTS, plus:
   * @param {() => number} [options.now] clock in seconds (default performance.now() / 1000)
   * @param {() => number} [options.random] uniform 0..1 (default Math.random): picks the wander's rhythms and each
   *   nod's depth
   */
  constructor({ now = () => performance.now() / 1000, random = Math.random, ...tuning } = {}) {
    this.now = now;
    this.random = random;
    this.tuning = { ...HEAD_DEFAULTS, ...tuning };
    // Three sines per axis at unrelated slow rates (0.05-0.4 Hz): never repeats visibly, never jerks. Weights sum
    // to 1, so an axis never exceeds its idle amplitude.
    this._waves = {};
    for (const axis of ["pitch", "yaw", "roll"]) {
      const raw = [1, 0.6, 0.35].map((w) => w * (0.8 + 0.4 * random()));
      const sum = raw.reduce((a, b) => a + b, 0);
      this._waves[axis] = raw.map((w, k) => ({
        weight: w / sum,
        omega: 2 * Math.PI * [0.06, 0.15, 0.33][k] * (0.75 + 0.5 * random()),
        phase: 2 * Math.PI * random(),
      }));
    }
    this._breathPhase = 2 * Math.PI * random();
    this._nods = []; // {start, depth} radians
    this._lastNod = -Infinity;
    // Listening weight: eased from `from` (its value when the mode last changed) toward `to` since `since`.
    this._listen = { from: 0, to: 0, since: -Infinity };
  }

  /** Whether listening mode is on (the target; the posture eases toward it). */
  get listening() {
    return this._listen.to === 1;
  }

  /**
   * Start or end listening: calmer micro-motion and a slight tilt toward the user, eased over `easeS` from wherever
   * the head is (a change mid-ease continues from the current posture: no jump).
   * @param {boolean} on
   * @param {number} [t] seconds
   */
  setListening(on, t = this.now()) {
    const to = on ? 1 : 0;
    if (to === this._listen.to) return;
    this._listen = { from: this.listenWeight(t), to, since: t };
  }

  /** 0 (idle) … 1 (listening) at `t`. */
  listenWeight(t = this.now()) {
    const { from, to, since } = this._listen;
    return from + (to - from) * smoothstep((t - since) / this.tuning.easeS);
  }

  /**
   * Nod now: down about `nodDeg` and back, then a smaller bounce. Ignored (false) within `nodIntervalS` of the last
   * nod, so a burst of cues makes one nod, not a bobbing head.
   * @param {number} [t] seconds
   * @returns {boolean} whether a nod started
   */
  nod(t = this.now()) {
    const { nodDeg, nodJitter, nodIntervalS } = this.tuning;
    if (t - this._lastNod < nodIntervalS) return false;
    this._lastNod = t;
    this._nods.push({ start: t, depth: nodDeg * DEG * (1 + nodJitter * (2 * this.random() - 1)) });
    return true;
  }

  /**
   * The head's rotation at `t`, to add to the body clip's pose.
   * @param {number} [t] seconds
   * @returns {HeadPose}
   */
  pose(t = this.now()) {
    const k = this.tuning;
    const listen = this.listenWeight(t);
    const calm = 1 - (1 - k.listenCalm) * listen;
    const pitch = calm * this._wander("pitch", t) * k.idleDeg.pitch * DEG
      + k.breathDeg * DEG * Math.sin((2 * Math.PI * t) / k.breathPeriodS + this._breathPhase)
      + listen * k.listenDeg.pitch * DEG
      + this._nodPitch(t);
    const yaw = calm * this._wander("yaw", t) * k.idleDeg.yaw * DEG + listen * k.listenDeg.yaw * DEG;
    const roll = calm * this._wander("roll", t) * k.idleDeg.roll * DEG + listen * k.listenDeg.roll * DEG;
    return { pitch, yaw, roll };
  }

  /** -1..1: the slow sum of sines of one axis. */
  _wander(axis, t) {
    let v = 0;
    for (const { weight, omega, phase } of this._waves[axis]) v += weight * Math.sin(omega * t + phase);
    return v;
  }

  _nodPitch(t) {
    const k = this.tuning;
    const length = k.nodS + k.bounceS;
    // Forget nods long over (keeps the list short); a nod can only be over for a t after its end.
    while (this._nods.length && t - this._nods[0].start > length + 1) this._nods.shift();
    let pitch = 0;
    for (const { start, depth } of this._nods) if (t >= start) pitch += depth * nodShape(t - start, k);
    return pitch;
  }
}
