// Wire protocol of the `avatar` data channel (DESIGN.md §4): the 116-byte binary expression frame and the JSON
// events. Pure functions only, so they run (and are unit-tested) in Node as well as in the browser.

/** Binary frame version this client understands. */
export const FRAME_VERSION = 1;
/** flags bit 0: the last frame of its turn. */
export const FLAG_LAST = 0x01;
/**
 * flags bit 1: an ambient frame — idle life or listening behaviour, sent (at 15 fps) while no reply audio plays.
 * Its turn is the latest turn's number (0 before any); its pts is on the same timeline as the reply frames.
 */
export const FLAG_AMBIENT = 0x02;
/** u8 version · u8 flags · u16 n · u32 turn · u32 pts_ms. */
export const HEADER_BYTES = 12;

/** The ARKit-52 blendshape order of the frames (alphabetical); /api/config and `hello` repeat it. */
export const ARKIT_BLENDSHAPES = Object.freeze([
  "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
  "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
  "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
  "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
  "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
  "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
  "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
  "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
  "noseSneerLeft", "noseSneerRight", "tongueOut",
]);

/** Thrown for bytes or text that do not follow the protocol; the message says what is wrong. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * IEEE 754 half precision (binary16) bits → number. DataView has no getFloat16 in every browser we target yet,
 * and the weights are float16 to keep a frame at 116 bytes.
 * @param {number} bits unsigned 16-bit integer
 * @returns {number}
 */
export function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024); // subnormal (and ±0)
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/**
 * One decoded expression frame.
 * @typedef {object} ExpressionFrame
 * @property {number} turn       reply turn the frame belongs to (ambient frames: the latest turn, 0 before any)
 * @property {number} ptsMs      position on the reply audio track, ms since the start of the session's timeline
 * @property {boolean} last      the last frame of its turn
 * @property {boolean} ambient   sent while the avatar is silent (idle, listening, thinking), not part of a reply
 * @property {Float32Array} weights ARKit weights in the order of the blendshape list, clamped to 0..1
 */

/**
 * Decode a binary frame (little-endian, 12-byte header + n × float16).
 * @param {ArrayBuffer|ArrayBufferView} data
 * @returns {ExpressionFrame}
 * @throws {ProtocolError} on a short frame, an unknown version or a length that does not match n
 */
export function decodeFrame(data) {
  const view = ArrayBuffer.isView(data)
    ? new DataView(data.buffer, data.byteOffset, data.byteLength)
    : new DataView(data);
  if (view.byteLength < HEADER_BYTES) throw new ProtocolError(`frame too short: ${view.byteLength} bytes`);
  const version = view.getUint8(0);
  if (version !== FRAME_VERSION) throw new ProtocolError(`unsupported frame version ${version}`);
  const flags = view.getUint8(1);
  const n = view.getUint16(2, true);
  if (view.byteLength !== HEADER_BYTES + 2 * n) {
    throw new ProtocolError(`frame of ${view.byteLength} bytes does not hold ${n} weights`);
  }
  const weights = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const w = halfToFloat(view.getUint16(HEADER_BYTES + 2 * i, true));
    // The server clips to 0..1; clamp again so a NaN or stray value can never distort the mesh.
    weights[i] = w > 0 ? (w < 1 ? w : 1) : 0;
  }
  return {
    turn: view.getUint32(4, true),
    ptsMs: view.getUint32(8, true),
    last: (flags & FLAG_LAST) !== 0,
    ambient: (flags & FLAG_AMBIENT) !== 0,
    weights,
  };
}

/** Server → browser event types this client handles (DESIGN §4); others are ignored, as the contract allows additions. */
export const SERVER_EVENTS = Object.freeze([
  "hello", "state", "transcript", "reply", "turn_end", "latency", "error", "session_ending", "mood", "gesture",
  "user_speech",
]);

/** Moods of `mood` events, each with the emoji the UI shows next to its name (neutral shows nothing). */
export const MOOD_EMOJI = Object.freeze({
  happy: "😊", sad: "😢", angry: "😠", surprised: "😮", fearful: "😨", disgusted: "🤢", thinking: "🤔",
});

/**
 * The label for a `mood` event ("😊 happy"), or null when there is nothing to show (neutral, or intensity 0). A
 * mood this client does not know still shows its name, with a plain smiley, so a mood added to the server shows.
 * @param {{mood?: unknown, intensity?: unknown}} event
 * @returns {string|null}
 */
export function moodLabel(event) {
  const mood = typeof event?.mood === "string" ? event.mood.trim().toLowerCase() : "";
  if (!mood || mood === "neutral" || (typeof event.intensity === "number" && !(event.intensity > 0))) return null;
  return `${MOOD_EMOJI[mood] ?? "🙂"} ${mood}`;
}

/**
 * Parse a text message of the data channel into an event object.
 * @param {string} text
 * @returns {{type: string} & Record<string, any>}
 * @throws {ProtocolError} when it is not a JSON object with a string `type`
 */
export function parseEvent(text) {
  let event;
  try {
    event = JSON.parse(text);
  } catch {
    throw new ProtocolError("event is not valid JSON");
  }
  if (event === null || typeof event !== "object" || typeof event.type !== "string") {
    throw new ProtocolError('event must be a JSON object with a string "type"');
  }
  return event;
}

/**
 * Weights array → `{name: weight}` as the renderer wants them; names beyond the array (or vice versa) are skipped.
 * @param {ArrayLike<number>} weights
 * @param {readonly string[]} names
 * @param {Record<string, number>} [into] object to fill (reused every animation frame to spare the GC)
 * @returns {Record<string, number>}
 */
export function weightsToObject(weights, names, into = {}) {
  const n = Math.min(weights.length, names.length);
  for (let i = 0; i < n; i++) into[names[i]] = weights[i];
  return into;
}

/**
 * What the ASR heard besides words (SenseVoice's language, emotion and audio events on a `transcript` event), as
 * short labels for the transcript line; [] when the engine reports nothing (Whisper) or only neutral speech.
 * @param {{language?: string, emotion?: string, events?: string[]}} event
 * @returns {string[]}
 */
export function heardLabels(event) {
  const labels = [];
  if (typeof event.emotion === "string" && event.emotion && event.emotion !== "neutral") labels.push(event.emotion);
  if (Array.isArray(event.events)) labels.push(...event.events.filter((e) => typeof e === "string" && e));
  if (typeof event.language === "string" && event.language) labels.push(event.language);
  return labels;
}
