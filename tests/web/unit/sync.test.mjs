// Unit tests of web/src/sync.js: the arrival clock, interpolation, decay to neutral, interrupts, delay stats.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AMBIENT_FRAME_MS, ArrivalClock, ExpressionPlayer, FRAME_MS, PlayoutDelayMeter, decayFactor, jitterDelayMs,
} from "../../../web/src/sync.js";

const JAW = 0;
/** A frame whose jaw weight is `jaw` (size 2 keeps the arithmetic readable). */
const frame = (turn, ptsMs, jaw, last = false) => ({ turn, ptsMs, last, weights: Float32Array.of(jaw, 1 - jaw) });
/** An ambient frame (idle life, 15 fps) of the latest turn `turn`. */
const ambient = (turn, ptsMs, jaw) => ({ ...frame(turn, ptsMs, jaw), ambient: true });
const close = (actual, expected, eps = 1e-4) => assert.ok(Math.abs(actual - expected) <= eps, `${actual} != ${expected}`);

/** A player fed a turn of frames at 30 fps, each arriving `networkMs` after its pts on a 1000 ms local offset. */
function playerWith(jaws, { turn = 1, startPts = 0, last = true, networkMs = 0, delayMs = 0 } = {}) {
  const player = new ExpressionPlayer({ size: 2, centreMs: 0, clock: new ArrivalClock({ packetSlackMs: 0 }) });
  player.playoutDelayMs = delayMs;
  jaws.forEach((jaw, i) => {
    const pts = startPts + Math.round(i * FRAME_MS);
    player.push(frame(turn, pts, jaw, last && i === jaws.length - 1), 1000 + pts + networkMs);
  });
  return player;
}

test("arrival clock: the windowed minimum of arrival − pts, plus the packet slack", () => {
  const clock = new ArrivalClock({ windowMs: 1000, packetSlackMs: 10 });
  assert.equal(clock.offsetMs, null);
  clock.observe(0, 1050); // late
  clock.observe(33, 1040);
  clock.observe(67, 1100); // late
  assert.equal(clock.offsetMs, 1007 + 10);
  clock.observe(2000, 3030); // the 1007 sample is now older than the window
  assert.equal(clock.offsetMs, 1030 + 10);
});

test("before any frame, and before the first frame is due, the face is neutral", () => {
  const player = new ExpressionPlayer({ size: 2, centreMs: 0 });
  assert.deepEqual(Array.from(player.sample(5000)), [0, 0]);
  const fed = playerWith([0.5, 0.6]);
  assert.deepEqual(Array.from(fed.sample(999)), [0, 0]);
});

test("frames are shown at arrival + playout delay, interpolated linearly between 30 fps frames", () => {
  const player = playerWith([0.0, 0.3, 0.6, 0.9], { delayMs: 80 });
  close(player.sample(1000 + 80)[JAW], 0.0);
  close(player.sample(1000 + 80 + 33)[JAW], 0.3);
  close(player.sample(1000 + 80 + 50)[JAW], 0.3 + 0.3 * (17 / 34)); // pts 33 → 67 (rounded stamps)
  close(player.sample(1000 + 80 + 67)[JAW], 0.6);
  // Without the delay the same wall time shows a later frame: the delay really shifts the timeline.
  player.playoutDelayMs = 0;
  close(player.sample(1000 + 67)[JAW], 0.6);
});

test("a frame is shown at the middle of the audio window it was computed from", () => {
  const player = new ExpressionPlayer({ size: 2, clock: new ArrivalClock({ packetSlackMs: 0 }) });
  player.push(frame(1, 0, 0.0), 1000);
  player.push(frame(1, 33, 0.6), 1033);
  assert.equal(player.centreMs, FRAME_MS / 2);
  close(player.sample(1000 + FRAME_MS / 2)[JAW], 0);
  close(player.sample(1033 + FRAME_MS / 2)[JAW], 0.6);
  close(player.displayTimeOf(33), 1033 + FRAME_MS / 2);
});

test("jitter on single arrivals does not move the timeline", () => {
  const player = new ExpressionPlayer({ size: 2, centreMs: 0, clock: new ArrivalClock({ packetSlackMs: 0 }) });
  const jitter = [0, 30, 5, 60, 0, 12];
  jitter.forEach((j, i) => player.push(frame(1, i * 33, i / 10), 1000 + i * 33 + j));
  close(player.sample(1000 + 99)[JAW], 0.3);
});

test("after the last frame of a turn the face eases to neutral within the decay time", () => {
  const player = playerWith([0.4, 0.8]); // last frame pts 33, covers until 66
  close(player.sample(1000 + 60)[JAW], 0.8);
  const mid = player.sample(1000 + 66 + 75)[JAW];
  assert.ok(mid > 0.05 && mid < 0.75, `halfway through the decay: ${mid}`);
  close(player.sample(1000 + 66 + 150)[JAW], 0);
  close(player.sample(1000 + 5000)[JAW], 0);
});

test("the decay is monotonic and smooth (no jump larger than a small step per 10 ms)", () => {
  const player = playerWith([1.0]);
  let prev = player.sample(1000 + 33)[JAW];
  for (let t = 1000 + 33; t < 1000 + 33 + 200; t += 10) {
    const value = player.sample(t)[JAW];
    assert.ok(value <= prev + 1e-9, "monotonic");
    assert.ok(prev - value < 0.16, `step ${prev - value} at ${t}`);
    prev = value;
  }
  assert.equal(decayFactor(0), 1);
  assert.equal(decayFactor(1), 0);
  close(decayFactor(0.5), 0.5);
});

test("frames that stop without the last flag are held a little (an underrun), then decay", () => {
  const player = playerWith([0.5, 0.7], { last: false });
  close(player.sample(1000 + 33 + 33 + 100)[JAW], 0.7); // held: more frames may still come
  close(player.sample(1000 + 33 + 33 + 120 + 150)[JAW], 0);
});

test("turn_end starts the decay right after the last received frame, without the hold", () => {
  const player = playerWith([0.5, 0.7], { last: false });
  player.endTurn(1);
  const value = player.sample(1000 + 66 + 100)[JAW];
  assert.ok(value < 0.2, `decaying: ${value}`);
});

test("interrupt eases out from the current pose at once and ignores the interrupted turn's stragglers", () => {
  const player = playerWith([0.8, 0.8, 0.8, 0.8, 0.8], { last: false });
  close(player.sample(1000 + 40)[JAW], 0.8);
  player.interrupt(1000 + 40);
  close(player.sample(1000 + 40)[JAW], 0.8);
  assert.ok(player.sample(1000 + 40 + 120)[JAW] < 0.1);
  player.push(frame(1, 200, 0.9), 1000 + 200); // straggler of the interrupted turn
  close(player.sample(1000 + 40 + 150)[JAW], 0);
  close(player.sample(1000 + 210)[JAW], 0);
  player.push(frame(2, 500, 0.6), 1000 + 500); // the next turn plays normally
  close(player.sample(1000 + 510)[JAW], 0.6);
});

test("a gap between turns is not interpolated across", () => {
  const player = playerWith([0.5], { turn: 1 });
  player.push(frame(2, 3000, 0.9), 4000);
  close(player.sample(1000 + 2000)[JAW], 0);
  close(player.sample(1000 + 3000)[JAW], 0.9);
});

test("reset forgets the timeline (a new session starts its pts at 0 again)", () => {
  const player = playerWith([0.5, 0.5]);
  player.reset();
  assert.equal(player.clock.offsetMs, null);
  assert.equal(player.buffered, 0);
  assert.deepEqual(Array.from(player.sample(1010)), [0, 0]);
});

/** A player (no playout delay, pts 0 arriving at local 1000) fed ambient frames at 15 fps from `startPts`. */
function ambientPlayer(jaws, { turn = 0, startPts = 0 } = {}) {
  const player = new ExpressionPlayer({ size: 2, centreMs: 0, clock: new ArrivalClock({ packetSlackMs: 0 }) });
  jaws.forEach((jaw, i) => {
    const pts = startPts + Math.round(i * AMBIENT_FRAME_MS);
    player.push(ambient(turn, pts, jaw), 1000 + pts);
  });
  return player;
}

test("ambient frames 66.7 ms apart are interpolated", () => {
  const player = ambientPlayer([0.2, 0.8, 0.5]);
  close(player.sample(1000)[JAW], 0.2);
  close(player.sample(1000 + 33)[JAW], 0.2 + 0.6 * (33 / 67)); // pts 0 → 67 (rounded stamps)
  close(player.sample(1000 + 67)[JAW], 0.8);
  close(player.sample(1000 + 100)[JAW], 0.8 - 0.3 * (33 / 66)); // 67 → 133
});

test("a reply's last frame followed by an ambient frame is interpolated into it, not eased to neutral", () => {
  const player = ambientPlayer([0.1, 0.1]); // idle life before the question: pts 0, 67
  [0.3, 0.6, 0.9].forEach((jaw, i) => player.push(frame(1, 100 + 33 * i, jaw, i === 2), 1100 + 33 * i));
  player.endTurn(1); // turn_end arrives with the last frame; the ambient frames still follow it
  player.push(ambient(1, 200, 0.2), 1200); // the server resumes idle life right after the reply's audio
  close(player.sample(1000 + 83)[JAW], 0.1 + 0.2 * (16 / 33)); // ambient → reply: one timeline, 33 ms apart
  close(player.sample(1000 + 166)[JAW], 0.9);
  const mid = player.sample(1000 + 183)[JAW]; // halfway between the last reply frame (166) and the ambient one (200)
  assert.ok(mid > 0.2 && mid < 0.9, `between the two frames' weights: ${mid}`);
  close(mid, 0.9 + (0.2 - 0.9) * (17 / 34));
  close(player.sample(1000 + 200)[JAW], 0.2);
});

test("a finished reply waits for the ambient frames that follow it (a late one is not a jump back up)", () => {
  const player = ambientPlayer([0.1]);
  player.push(frame(1, 67, 0.8, true), 1067);
  const before = player.sample(1000 + 67 + 33 + 60)[JAW]; // the ambient frame after it has not arrived yet
  close(before, 0.8); // held as an underrun, not eased out as the end of a session without idle life
  player.push(ambient(1, 67 + 100, 0.2), 1000 + 67 + 100);
  close(player.sample(1000 + 67 + 50)[JAW], 0.8 + (0.2 - 0.8) * 0.5);
});

test("ambient frames that stop (a stall) are held, then eased to neutral", () => {
  const player = ambientPlayer([0.3, 0.6]); // the newest one, pts 67: the next may come up to 600 ms later
  close(player.sample(1000 + 67 + 600 + 100)[JAW], 0.6); // held: the longest gap + 120 ms hold
  const easing = player.sample(1000 + 67 + 600 + 120 + 75)[JAW];
  assert.ok(easing > 0.05 && easing < 0.55, `easing out: ${easing}`);
  close(player.sample(1000 + 67 + 600 + 120 + 150)[JAW], 0);
  player.push(ambient(0, 2000, 0.4), 3000); // they resume
  close(player.sample(3000)[JAW], 0.4);
});

test("sparse ambient frames (a still face sent every 0.5 s) are interpolated, not eased out between", () => {
  const player = ambientPlayer([]);
  for (const [pts, jaw] of [[0, 0.1], [533, 0.1], [600, 0.5], [1133, 0.2]]) player.push(ambient(0, pts, jaw), 1000 + pts);
  close(player.sample(1000 + 300)[JAW], 0.1); // the still part: held exactly, no dip toward neutral
  close(player.sample(1000 + 566.5)[JAW], 0.3); // the movement, at its real speed
  close(player.sample(1000 + 866.5)[JAW], 0.5 - 0.3 * (266.5 / 533));
});

test("interrupt drops the reply's frames but never the ambient ones, before or after it", () => {
  const player = ambientPlayer([0.2, 0.4, 0.6]); // pts 0, 67, 133: the user interrupts while the avatar thinks
  player.interrupt(1000 + 50);
  close(player.sample(1000 + 50)[JAW], 0.2 + 0.2 * (50 / 67)); // no ease-out: idle life goes on where it was
  close(player.sample(1000 + 100)[JAW], 0.4 + 0.2 * (33 / 66));
  // Ambient frames carry the latest turn, the one just interrupted: they still play.
  player.push(ambient(0, 200, 0.8), 1200);
  close(player.sample(1000 + 200)[JAW], 0.8);
  player.push(frame(0, 233, 0.1), 1233); // a straggler of the interrupted reply is still dropped
  close(player.sample(1000 + 233)[JAW], 0.8);
  assert.equal(player.buffered, 4);
});

test("interrupting a reply eases out of it into the ambient frames that follow", () => {
  const player = ambientPlayer([0.0]);
  [0.8, 0.8, 0.8, 0.8, 0.8, 0.8].forEach((jaw, i) => player.push(frame(1, 67 + 33 * i, jaw), 1067 + 33 * i));
  close(player.sample(1000 + 120)[JAW], 0.8);
  player.interrupt(1000 + 120);
  close(player.sample(1000 + 120)[JAW], 0.8); // leaves the pose it had, not a jump
  player.push(ambient(1, 140, 0.3), 1140); // the server resumes idle life at once
  player.push(ambient(1, 207, 0.3), 1207);
  const blend = player.sample(1000 + 195)[JAW]; // halfway through the ease: between the reply pose and idle life
  assert.ok(blend > 0.3 && blend < 0.8, `blending: ${blend}`);
  close(player.sample(1000 + 120 + 150)[JAW], 0.3); // the ease is over: the ambient frames alone
  player.push(frame(1, 300, 0.9), 1300); // the interrupted reply's straggler
  close(player.sample(1000 + 300)[JAW], 0.3);
});

test("jitter-buffer delay: cumulative seconds over emitted samples, per interval", () => {
  assert.equal(jitterDelayMs(null, {}), null);
  // 20 s of audio at 48 kHz that waited 50 ms each: 960000 samples × 0.05 s.
  close(jitterDelayMs(null, { jitterBufferDelay: 48000, jitterBufferEmittedCount: 960000 }), 50);
  const prev = { jitterBufferDelay: 48000, jitterBufferEmittedCount: 960000 };
  close(jitterDelayMs(prev, { jitterBufferDelay: 48000 + 3840, jitterBufferEmittedCount: 960000 + 48000 }), 80);
  assert.equal(jitterDelayMs(prev, prev), null); // nothing played since: keep the old estimate
});

test("PlayoutDelayMeter reads inbound-rtp audio stats and smooths them", async () => {
  const snapshots = [
    { jitterBufferDelay: 2400, jitterBufferEmittedCount: 48000 }, // 50 ms
    { jitterBufferDelay: 2400 + 4800, jitterBufferEmittedCount: 96000 }, // 100 ms over the last second
  ];
  let call = 0;
  const getStats = async () => {
    const report = new Map();
    report.set("v", { type: "inbound-rtp", kind: "video", jitterBufferDelay: 99, jitterBufferEmittedCount: 1 });
    report.set("a", { type: "inbound-rtp", kind: "audio", ...snapshots[call++] });
    return report;
  };
  const updates = [];
  const meter = new PlayoutDelayMeter(getStats, { outputLatencyMs: 12, onUpdate: (m) => updates.push(m.delayMs) });
  assert.equal(meter.delayMs, 12);
  await meter.poll();
  close(meter.jitterMs, 50);
  await meter.poll();
  close(meter.jitterMs, 87.5);
  close(meter.delayMs, 99.5);
  assert.equal(updates.length, 2);
});
