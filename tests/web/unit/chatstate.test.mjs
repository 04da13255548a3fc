// Unit tests of web/src/chatstate.js: which body clips the renderer plays as the conversation goes on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatStateTracker, LISTEN_TAIL_MS, chatStateFor } from "../../../web/src/chatstate.js";

/** A tracker on a hand-driven clock: `advance(ms)` fires the timers that fall due. */
function tracked() {
  let now = 0;
  let nextId = 1;
  const timers = new Map();
  const changes = [];
  const tracker = new ChatStateTracker({
    onChange: (state) => changes.push(state),
    setTimer: (fn, ms) => { timers.set(nextId, { fn, at: now + ms }); return nextId++; },
    clearTimer: (id) => timers.delete(id),
  });
  const advance = (ms) => {
    now += ms;
    for (const [id, timer] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at <= now && timers.delete(id)) timer.fn();
    }
  };
  return { tracker, changes, advance, timers };
}

test("chat state: the user talking is Listening; else thinking, speaking, and idle otherwise", () => {
  assert.equal(chatStateFor({ state: "listening", userSpeaking: false }), "Idle");
  assert.equal(chatStateFor({ state: "listening", userSpeaking: true }), "Listening");
  assert.equal(chatStateFor({ state: "thinking", userSpeaking: false }), "Thinking");
  assert.equal(chatStateFor({ state: "speaking", userSpeaking: false }), "Responding");
  assert.equal(chatStateFor({ state: "speaking", userSpeaking: true }), "Listening"); // a barge-in
  assert.equal(chatStateFor({ state: null, userSpeaking: false }), "Idle");
  assert.equal(chatStateFor({ state: "dreaming", userSpeaking: false }), "Idle"); // a state added later
});

test("a spoken turn: Idle, Listening while the user talks, Thinking, Responding, Idle", () => {
  const { tracker, changes, advance } = tracked();
  tracker.serverState("listening");
  assert.equal(tracker.chatState, "Idle");
  tracker.userSpeech(true);
  advance(2000);
  tracker.userSpeech(false);
  advance(400); // transcribing: the body still listens (no flash of Idle before Thinking)
  assert.equal(tracker.chatState, "Listening");
  tracker.serverState("thinking"); // ends the tail at once
  tracker.serverState("speaking");
  tracker.serverState("listening");
  assert.deepEqual(changes, ["Listening", "Thinking", "Responding", "Idle"]);
});

test("the listening tail ends by itself when no state follows (noise, nothing said)", () => {
  const { tracker, changes, advance, timers } = tracked();
  tracker.serverState("listening");
  tracker.userSpeech(true);
  tracker.userSpeech(false);
  advance(LISTEN_TAIL_MS - 1);
  assert.equal(tracker.chatState, "Listening");
  advance(1);
  assert.equal(tracker.chatState, "Idle");
  assert.deepEqual(changes, ["Listening", "Idle"]);
  assert.equal(timers.size, 0);
});

test("speaking again during the tail keeps listening; a stray 'stopped' changes nothing", () => {
  const { tracker, changes, advance } = tracked();
  tracker.serverState("listening");
  tracker.userSpeech(false); // never started
  assert.deepEqual(changes, []);
  tracker.userSpeech(true);
  tracker.userSpeech(false);
  advance(LISTEN_TAIL_MS / 2);
  tracker.userSpeech(true);
  advance(LISTEN_TAIL_MS * 2); // the first tail's timer must not end this second utterance
  assert.equal(tracker.chatState, "Listening");
  assert.deepEqual(changes, ["Listening"]);
});

test("a barge-in: the user's voice takes the body from the reply at once, states then follow", () => {
  const { tracker, changes } = tracked();
  tracker.serverState("speaking");
  tracker.userSpeech(true);
  tracker.serverState("listening"); // the interrupted reply's end, heard later: the user still talks
  assert.equal(tracker.chatState, "Listening");
  assert.deepEqual(changes, ["Responding", "Listening"]);
});

test("reset goes back to Idle and cancels the tail", () => {
  const { tracker, changes, advance, timers } = tracked();
  tracker.userSpeech(true);
  tracker.userSpeech(false);
  tracker.reset();
  assert.equal(timers.size, 0);
  advance(LISTEN_TAIL_MS);
  assert.equal(tracker.chatState, "Idle");
  assert.deepEqual(changes, ["Listening"]);
});

test("the default timers are the global ones, called as plain functions (a browser's throw as methods)", async () => {
  const changes = [];
  const strict = globalThis.setTimeout;
  globalThis.setTimeout = function (fn, ms) {
    if (this !== undefined && this !== globalThis) throw new TypeError("Illegal invocation");
    return strict(fn, ms);
  };
  try {
    const tracker = new ChatStateTracker({ onChange: (state) => changes.push(state), tailMs: 5 });
    tracker.userSpeech(true);
    tracker.userSpeech(false);
  } finally {
    globalThis.setTimeout = strict;
  }
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(changes, ["Listening", "Idle"]);
});
