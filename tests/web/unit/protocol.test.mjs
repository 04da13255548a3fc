// Unit tests of web/src/protocol.js: the 116-byte frame (float16 included) and event parsing.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ARKIT_BLENDSHAPES, FLAG_AMBIENT, FLAG_LAST, HEADER_BYTES, ProtocolError, SERVER_EVENTS, decodeFrame, halfToFloat,
  heardLabels, MOOD_EMOJI, moodLabel, parseEvent, weightsToObject,
} from "../../../web/src/protocol.js";

/** float → float16 bits (round to nearest), written independently of the decoder under test. */
function floatToHalf(value) {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mant = bits & 0x7fffff;
  if (exp <= 0) return sign | Math.round((mant | 0x800000) / 2 ** (14 - exp)); // subnormal
  if (exp >= 31) return sign | 0x7c00;
  let half = sign | (exp << 10) | (mant >> 13);
  if (mant & 0x1000) half += 1; // round half up on the dropped bits
  return half;
}

function encode({ version = 1, flags = 0, turn = 0, pts = 0, weights = new Array(52).fill(0), n = weights.length }) {
  const buffer = new ArrayBuffer(HEADER_BYTES + 2 * weights.length);
  const view = new DataView(buffer);
  view.setUint8(0, version);
  view.setUint8(1, flags);
  view.setUint16(2, n, true);
  view.setUint32(4, turn, true);
  view.setUint32(8, pts, true);
  weights.forEach((w, i) => view.setUint16(HEADER_BYTES + 2 * i, floatToHalf(w), true));
  return buffer;
}

test("float16: exact values, subnormals, infinities and NaN", () => {
  assert.equal(halfToFloat(0x0000), 0);
  assert.ok(Object.is(halfToFloat(0x8000), -0));
  assert.equal(halfToFloat(0x3c00), 1);
  assert.equal(halfToFloat(0x3800), 0.5);
  assert.equal(halfToFloat(0xc000), -2);
  assert.equal(halfToFloat(0x7bff), 65504); // largest normal
  assert.equal(halfToFloat(0x0001), 2 ** -24); // smallest subnormal
  assert.equal(halfToFloat(0x0400), 2 ** -14); // smallest normal
  assert.equal(halfToFloat(0x3555), 0.333251953125);
  assert.equal(halfToFloat(0x7c00), Infinity);
  assert.equal(halfToFloat(0xfc00), -Infinity);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
});

test("a 116-byte frame decodes to turn, pts, last flag and 52 weights", () => {
  const weights = ARKIT_BLENDSHAPES.map((_, i) => i / 51);
  const buffer = encode({ flags: FLAG_LAST, turn: 7, pts: 123456, weights });
  assert.equal(buffer.byteLength, 116);
  const frame = decodeFrame(buffer);
  assert.equal(frame.turn, 7);
  assert.equal(frame.ptsMs, 123456);
  assert.equal(frame.last, true);
  assert.equal(frame.weights.length, 52);
  frame.weights.forEach((w, i) => assert.ok(Math.abs(w - i / 51) < 1e-3, `weight ${i}: ${w}`));
  assert.equal(decodeFrame(encode({ flags: 0 })).last, false);
});

test("flags bit 1 marks an ambient frame, independently of bit 0", () => {
  assert.equal(FLAG_AMBIENT, 0x02);
  // Bytes written by hand, not by encode(): version 1, flags 0x02, n = 52, turn 3, pts 70000 (0x00011170).
  const bytes = new Uint8Array(116);
  bytes.set([0x01, 0x02, 0x34, 0x00, 0x03, 0x00, 0x00, 0x00, 0x70, 0x11, 0x01, 0x00]);
  bytes.set([0x00, 0x38], HEADER_BYTES + 2 * 8); // eyeBlinkLeft = 0.5 (float16 0x3800)
  const ambient = decodeFrame(bytes);
  assert.equal(ambient.ambient, true);
  assert.equal(ambient.last, false);
  assert.equal(ambient.turn, 3);
  assert.equal(ambient.ptsMs, 70000);
  assert.equal(ambient.weights[8], 0.5);
  bytes[1] = 0x03; // both bits
  assert.deepEqual([decodeFrame(bytes).ambient, decodeFrame(bytes).last], [true, true]);
  bytes[1] = 0x01; // a reply's last frame
  assert.deepEqual([decodeFrame(bytes).ambient, decodeFrame(bytes).last], [false, true]);
  bytes[1] = 0xfc; // unknown bits of a later server are ignored
  assert.deepEqual([decodeFrame(bytes).ambient, decodeFrame(bytes).last], [false, false]);
});

test("little-endian u32 fields, and typed-array views with an offset, decode right", () => {
  const buffer = encode({ turn: 0x01020304, pts: 0xfffffffe });
  const padded = new Uint8Array(buffer.byteLength + 5);
  padded.set(new Uint8Array(buffer), 5);
  const frame = decodeFrame(padded.subarray(5));
  assert.equal(frame.turn, 0x01020304);
  assert.equal(frame.ptsMs, 0xfffffffe);
});

test("weights are clamped to 0..1 and NaN becomes 0", () => {
  const buffer = encode({ weights: [1.5, -0.25, 0.5] });
  new DataView(buffer).setUint16(HEADER_BYTES + 4, 0x7e00, true); // NaN in slot 2
  assert.deepEqual(Array.from(decodeFrame(buffer).weights), [1, 0, 0]);
});

test("malformed frames raise ProtocolError", () => {
  assert.throws(() => decodeFrame(new ArrayBuffer(5)), ProtocolError);
  assert.throws(() => decodeFrame(encode({ version: 2 })), /version 2/);
  assert.throws(() => decodeFrame(encode({ n: 51 })), /does not hold 51/);
});

test("events parse from JSON text; anything else is a ProtocolError", () => {
  assert.deepEqual(parseEvent('{"type":"state","state":"listening"}'), { type: "state", state: "listening" });
  assert.throws(() => parseEvent("not json"), ProtocolError);
  assert.throws(() => parseEvent("[1]"), ProtocolError);
  assert.throws(() => parseEvent('{"type":3}'), ProtocolError);
});

test("mood labels: an emoji and the name; neutral, intensity 0 and garbage show nothing", () => {
  assert.equal(moodLabel({ type: "mood", mood: "happy", intensity: 0.7 }), "😊 happy");
  assert.equal(moodLabel({ mood: "thinking" }), "🤔 thinking");
  for (const mood of ["sad", "angry", "surprised", "fearful", "disgusted"]) {
    assert.ok(MOOD_EMOJI[mood], `an emoji for ${mood}`);
    assert.equal(moodLabel({ mood, intensity: 0.4 }), `${MOOD_EMOJI[mood]} ${mood}`);
  }
  assert.equal(moodLabel({ mood: "bored", intensity: 0.5 }), "🙂 bored"); // a mood added to the server later
  assert.equal(moodLabel({ mood: "neutral", intensity: 1 }), null);
  assert.equal(moodLabel({ mood: "happy", intensity: 0 }), null);
  assert.equal(moodLabel({ mood: 3 }), null);
  assert.equal(moodLabel({}), null);
  assert.ok(["mood", "gesture", "user_speech"].every((type) => SERVER_EVENTS.includes(type)));
});

test("weightsToObject maps by name and reuses the target", () => {
  const target = {};
  const out = weightsToObject([0.25, 0.5], ["jawOpen", "mouthClose", "extra"], target);
  assert.equal(out, target);
  assert.deepEqual(out, { jawOpen: 0.25, mouthClose: 0.5 });
});

test("heardLabels turns SenseVoice's extra fields into labels, and nothing into nothing", () => {
  assert.deepEqual(heardLabels({ type: "transcript", text: "hi" }), []);
  assert.deepEqual(heardLabels({ emotion: "happy", events: ["laughter"], language: "en" }), ["happy", "laughter", "en"]);
  assert.deepEqual(heardLabels({ emotion: "neutral", language: "zh" }), ["zh"]);
  assert.deepEqual(heardLabels({ emotion: 3, events: "x", language: "" }), []);
});
