// Lip sync: which ARKit weights to show right now, so the mouth moves with the sound the user hears.
//
// The server sends each expression frame in the same 20 ms tick as the audio packet that carries the frame's first
// sample (DESIGN §4), so a frame *arrives* together with its audio. The audio does not play on arrival, though: it
// waits in the receiver's jitter buffer (plus the output device's buffer). So a frame is due at
//     arrival time + current playout delay,
// where the arrival time is taken from a steady pts → local-clock mapping (not each frame's own, jittery, arrival)
// and the playout delay is measured from the audio receiver's WebRTC stats. Between 30 fps frames we interpolate at
// display rate; after a turn's last frame (or an interrupt) the face eases back to neutral.
// While the avatar is silent the server may send *ambient* frames (blinks, gaze, breathing, listening) on the same
// timeline: computed at 15 fps but sent only when the face moved, at least every 0.5 s (the server sends the still
// frame before each movement, so linear interpolation retraces it). They join the reply frames seamlessly
// (interpolated across), and no interrupt drops them.
// Pure logic with injected clocks and stats, so Node unit tests drive it without a browser.

/** Nominal expression frame period (30 fps). */
export const FRAME_MS = 1000 / 30;
/** Period of ambient frames as computed (15 fps): idle life needs no more. */
export const AMBIENT_FRAME_MS = 1000 / 15;
/** Longest gap between two ambient frames sent (the server's keep-alive is 0.5 s, on the 15 fps grid: ≤ 533 ms). */
export const AMBIENT_MAX_GAP_MS = 600;

/**
 * Maps a frame's pts (ms on the reply audio track) to the local time its audio packet arrived.
 *
 * arrival − pts is constant except for network/scheduling jitter, which only ever adds delay, so its minimum over a
 * window is the jitter-free mapping. A frame rides in the packet holding its first sample and may start up to one
 * 20 ms packet after that packet does, so the minimum is early by up to a packet: add half a packet back.
 */
export class ArrivalClock {
  /** @param {{windowMs?: number, packetSlackMs?: number}} [options] */
  constructor({ windowMs = 20000, packetSlackMs = 10 } = {}) {
    this.windowMs = windowMs;
    this.packetSlackMs = packetSlackMs;
    /** @type {{at: number, value: number}[]} ascending values: a monotonic deque gives the window min in O(1). */
    this._deque = [];
  }

  /** Record that the frame stamped `ptsMs` arrived at local time `arrivalMs`. */
  observe(ptsMs, arrivalMs) {
    const value = arrivalMs - ptsMs;
    const deque = this._deque;
    while (deque.length && deque[deque.length - 1].value >= value) deque.pop();
    deque.push({ at: arrivalMs, value });
    // Age out old minima so slow clock drift between server and browser is followed, never the newest entry.
    while (deque.length > 1 && deque[0].at < arrivalMs - this.windowMs) deque.shift();
  }

  /** Local time (ms) at which pts 0 arrived, or null before the first frame. */
  get offsetMs() {
    return this._deque.length ? this._deque[0].value + this.packetSlackMs : null;
  }

  reset() {
    this._deque = [];
  }
}

/** Ease-out used for decays: 1 → 0 over p in 0..1 with zero slope at both ends (no visible snap). */
export function decayFactor(p) {
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  return 1 - p * p * (3 - 2 * p);
}

/**
 * Buffers expression frames and answers "which weights now?" once per animation frame.
 */
export class ExpressionPlayer {
  /**
   * @param {{size?: number, frameMs?: number, ambientMaxGapMs?: number, decayMs?: number, holdMs?: number,
   *          maxGapMs?: number, centreMs?: number, clock?: ArrivalClock}} [options]
   *   size: weights per frame · frameMs: how long a reply frame lasts · ambientMaxGapMs: how far apart two ambient
   *   frames may be and still be interpolated (and how long one lasts when none follows) · decayMs: ease to
   *   neutral after a turn · holdMs: how long the last frame is held when frames stop without a `last` flag (an
   *   underrun: more may come) · maxGapMs: larger pts gaps are not interpolated · centreMs: where in its period a
   *   frame is shown. Audio2Expression derives frame k from the audio of [pts, pts + period), so its pose belongs to
   *   the middle of that window, half a period after its pts.
   */
  constructor({ size = 52, frameMs = FRAME_MS, ambientMaxGapMs = AMBIENT_MAX_GAP_MS, decayMs = 150, holdMs = 120,
    maxGapMs = 100, centreMs = frameMs / 2, clock } = {}) {
    this.size = size;
    this.frameMs = frameMs;
    this.ambientMaxGapMs = ambientMaxGapMs;
    this.decayMs = decayMs;
    this.holdMs = holdMs;
    this.maxGapMs = maxGapMs;
    this.centreMs = centreMs;
    this.clock = clock || new ArrivalClock();
    /** Measured audio playout delay (jitter buffer + output), ms; set by PlayoutDelayMeter. */
    this.playoutDelayMs = 0;
    /** @type {import('./protocol.js').ExpressionFrame[]} sorted by ptsMs */
    this._frames = [];
    this._ended = new Set();
    this._droppedThroughTurn = -1;
    /** Whether this session sends ambient frames: then a reply's end is followed by them, not by neutral. */
    this._ambientSeen = false;
    /** @type {{from: Float32Array, startMs: number} | null} ease from the pose an interrupt left */
    this._tail = null;
    this._out = new Float32Array(size);
  }

  /**
   * Add a frame as it arrives from the data channel.
   * @param {import('./protocol.js').ExpressionFrame} frame
   * @param {number} arrivalMs local time (performance.now()) of its arrival
   */
  push(frame, arrivalMs) {
    this.clock.observe(frame.ptsMs, arrivalMs);
    if (frame.ambient) this._ambientSeen = true;
    // The user interrupted this turn: its stragglers are moot. Ambient frames carry the latest turn's number but
    // belong to no reply, so they always play.
    else if (frame.turn <= this._droppedThroughTurn) return;
    const frames = this._frames;
    let i = frames.length;
    while (i > 0 && frames[i - 1].ptsMs > frame.ptsMs) i--; // the channel is ordered: this loop almost never runs
    frames.splice(i, 0, frame);
  }

  /** The server ended `turn` (done, interrupted or error): ease to neutral right after its last frame received. */
  endTurn(turn) {
    this._ended.add(turn);
  }

  /**
   * The user interrupted: leave the current pose at once (not after the buffered audio), easing to neutral, or
   * to the ambient frames when they play. Reply frames buffered so far are dropped; ambient frames are kept.
   * @param {number} nowMs
   */
  interrupt(nowMs) {
    const pose = Float32Array.from(this.sample(nowMs));
    const current = this._frames.length ? this._frames[this._frames.length - 1].turn : -1;
    this._droppedThroughTurn = Math.max(this._droppedThroughTurn, current);
    const kept = this._frames.filter((frame) => frame.ambient);
    // Only a pose that loses its frames eases out; idle life that plays on needs no ease (it would only lag).
    if (kept.length < this._frames.length) this._tail = { from: pose, startMs: nowMs };
    this._frames = kept;
  }

  /** Forget everything (a new session: its pts timeline starts again at 0). */
  reset() {
    this._frames = [];
    this._ended.clear();
    this._droppedThroughTurn = -1;
    this._ambientSeen = false;
    this._tail = null;
    this.clock.reset();
  }

  /** Local time at which the frame stamped `ptsMs` is shown (its audio heard), or null before any frame arrived. */
  displayTimeOf(ptsMs) {
    const offset = this.clock.offsetMs;
    return offset === null ? null : offset + ptsMs + this.playoutDelayMs + this.centreMs;
  }

  /** The frame timeline (pts ms) to show at local time `nowMs`, or null before any frame. */
  mediaTimeAt(nowMs) {
    const offset = this.clock.offsetMs;
    return offset === null ? null : nowMs - offset - this.playoutDelayMs - this.centreMs;
  }

  /**
   * The weights to show at local time `nowMs` (reused array: copy it to keep it).
   * @param {number} nowMs
   * @returns {Float32Array}
   */
  sample(nowMs) {
    const out = this._out;
    out.fill(0);
    const media = this.mediaTimeAt(nowMs);
    const frames = this._frames;
    if (media !== null && frames.length && media >= frames[0].ptsMs) {
      this._prune(media);
      this._framePose(media, out);
    }
    return this._applyTail(nowMs);
  }

  /** The pose the frames give for timeline position `media` (≥ the first frame's pts), written into `out`. */
  _framePose(media, out) {
    const frames = this._frames;
    let i = 0;
    while (i + 1 < frames.length && frames[i + 1].ptsMs <= media) i++;
    const a = frames[i];
    const b = frames[i + 1];
    // Frames of one reply flow into each other; so do ambient frames (sent sparsely: further apart), into and out of
    // replies (the server cross-fades at the seams). Two different replies do not: a gap means silence, hence neutral.
    const maxGap = a.ambient && b?.ambient ? this.ambientMaxGapMs : this.maxGapMs;
    if (b && b.ptsMs - a.ptsMs <= maxGap && (b.turn === a.turn || a.ambient || b.ambient)) {
      const t = (media - a.ptsMs) / (b.ptsMs - a.ptsMs);
      for (let k = 0; k < this.size; k++) out[k] = a.weights[k] + (b.weights[k] - a.weights[k]) * t;
      return;
    }
    // `a` is the newest frame that is due. It covers one frame period; then, if nothing follows it, the turn is over
    // (flag or turn_end: ease out at once) or frames are late (hold a little before easing out: they may resume).
    // Where the session sends ambient frames, a finished reply is followed by them: wait for those as for late ones.
    const ended = !a.ambient && (a.last || this._ended.has(a.turn));
    const finished = (ended && !this._ambientSeen) || (b !== undefined && b.turn !== a.turn);
    const period = a.ambient ? this.ambientMaxGapMs : this.frameMs;
    const decayStart = a.ptsMs + period + (finished ? 0 : this.holdMs);
    const f = media <= decayStart ? 1 : decayFactor((media - decayStart) / this.decayMs);
    for (let k = 0; k < this.size; k++) out[k] = a.weights[k] * f;
  }

  /**
   * After an interrupt, ease from the pose it left to the frames' pose (neutral when no frame plays), so neither
   * the interrupt nor frames resuming soon after it make the face jump.
   */
  _applyTail(nowMs) {
    const out = this._out;
    if (this._tail) {
      const f = decayFactor((nowMs - this._tail.startMs) / this.decayMs);
      for (let k = 0; k < this.size; k++) out[k] += (this._tail.from[k] - out[k]) * f;
      if (f === 0) this._tail = null;
    }
    return out;
  }

  /** Drop frames wholly in the past, keeping the one being shown; and turn marks no frame refers to any more. */
  _prune(media) {
    const frames = this._frames;
    let drop = 0;
    while (drop + 1 < frames.length && frames[drop + 1].ptsMs <= media - 1000) drop++;
    if (drop) frames.splice(0, drop);
    if (this._ended.size > 8) {
      const oldest = frames[0].turn;
      for (const turn of this._ended) if (turn < oldest) this._ended.delete(turn);
    }
  }

  /** Number of buffered frames (for diagnostics). */
  get buffered() {
    return this._frames.length;
  }
}

/**
 * Recent average jitter-buffer delay in ms from two inbound-rtp audio stats snapshots, or null without new samples.
 * jitterBufferDelay is the cumulative seconds all emitted samples waited; the delta over the delta of
 * jitterBufferEmittedCount is the wait of the samples played since the previous snapshot — what is heard now.
 * @param {{jitterBufferDelay?: number, jitterBufferEmittedCount?: number} | null} prev
 * @param {{jitterBufferDelay?: number, jitterBufferEmittedCount?: number}} cur
 * @returns {number|null}
 */
export function jitterDelayMs(prev, cur) {
  if (!cur || typeof cur.jitterBufferDelay !== "number" || !cur.jitterBufferEmittedCount) return null;
  const count = cur.jitterBufferEmittedCount - (prev?.jitterBufferEmittedCount ?? 0);
  const delay = cur.jitterBufferDelay - (prev?.jitterBufferDelay ?? 0);
  if (count <= 0 || delay < 0) return null;
  return (delay / count) * 1000;
}

/**
 * Measures the audio playout delay from an RTCRtpReceiver's stats, four times a second.
 *
 * Each estimate is the average over the samples played since the previous poll, so it trails the truth by half an
 * interval; NetEq can grow its delay by hundreds of ms per second on a starved machine, hence the short interval.
 */
export class PlayoutDelayMeter {
  /**
   * @param {() => Promise<RTCStatsReport | Map<string, any>>} getStats usually `() => receiver.getStats()`
   * @param {{intervalMs?: number, outputLatencyMs?: number, onUpdate?: (meter: PlayoutDelayMeter) => void}} [options]
   *   outputLatencyMs: audio output buffering after the jitter buffer (AudioContext.outputLatency + baseLatency)
   */
  constructor(getStats, { intervalMs = 250, outputLatencyMs = 0, onUpdate = () => {} } = {}) {
    this.getStats = getStats;
    this.intervalMs = intervalMs;
    this.outputLatencyMs = outputLatencyMs;
    this.onUpdate = onUpdate;
    /** Smoothed jitter-buffer delay in ms (null until measured). */
    this.jitterMs = null;
    this._prev = null;
    this._timer = null;
  }

  /** Total delay between a packet's arrival and its sound: what the lip sync adds to arrival times. */
  get delayMs() {
    return (this.jitterMs ?? 0) + this.outputLatencyMs;
  }

  start() {
    if (this._timer === null) {
      this.poll().catch(() => {}); // a first estimate now: the first reply may start before the first tick
      this._timer = setInterval(() => this.poll().catch(() => {}), this.intervalMs);
    }
    return this;
  }

  stop() {
    clearInterval(this._timer);
    this._timer = null;
  }

  /** Take one stats snapshot and update the estimate; also usable directly in tests. */
  async poll() {
    const report = await this.getStats();
    let inbound = null;
    report.forEach((stat) => {
      if (stat.type === "inbound-rtp" && (stat.kind ?? stat.mediaType) === "audio") inbound = stat;
    });
    if (!inbound) return;
    const recent = jitterDelayMs(this._prev, inbound);
    this._prev = { jitterBufferDelay: inbound.jitterBufferDelay, jitterBufferEmittedCount: inbound.jitterBufferEmittedCount };
    if (recent === null) return;
    // Light smoothing: the face should not twitch with every 10 ms step of NetEq, yet follow a real change quickly.
    this.jitterMs = this.jitterMs === null ? recent : this.jitterMs * 0.25 + recent * 0.75;
    this.onUpdate(this);
  }
}

/**
 * Audio output buffering after the jitter buffer, from an AudioContext on the same output device (ms). The <audio>
 * element's path is not WebAudio, but it ends in the same device buffer, which dominates. Start it in a user
 * gesture (so the context may run); Chrome reports outputLatency only once the device has run a little, so poll.
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<number>}
 */
export async function measureOutputLatencyMs({ timeoutMs = 2000 } = {}) {
  let ctx;
  try {
    ctx = new AudioContext();
    ctx.resume().catch(() => {});
    const deadline = performance.now() + timeoutMs;
    while (!(ctx.outputLatency > 0) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const ms = ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000;
    return Number.isFinite(ms) && ms >= 0 && ms < 500 ? ms : 0;
  } catch {
    return 0; // no audio output at all: the jitter buffer is then the whole delay
  } finally {
    ctx?.close().catch(() => {});
  }
}
