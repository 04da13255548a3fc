// Unit tests of web/src/avatar/clips.js: the hello wave, played on the LAM renderer's own AnimationManager (its
// source taken from the pinned npm bundle, since the package does not export it) driving a real three.js mixer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AnimationClip, AnimationMixer, LoopOnce, LoopRepeat, Object3D, VectorKeyframeTrack } from "three";
import { HelloClip, LOOP_ONCE, pickHelloAction } from "../../../web/src/avatar/clips.js";

const BUNDLE = new URL(
  "../node_modules/gaussian-splat-renderer-for-lam/build/gaussian-splat-renderer-for-lam.module.js", import.meta.url);

/** The renderer's TYVoiceChatState enum and AnimationManager (with its state classes), evaluated on their own. */
function rendererAnimation() {
  const source = readFileSync(BUNDLE, "utf8");
  const slice = (from, to) => {
    const start = source.indexOf(from);
    const end = source.indexOf(to, start);
    assert.ok(start >= 0 && end > start, `the bundle no longer has ${from} … ${to}`);
    return source.slice(start, end);
  };
  const code = slice("var TYVoiceChatState;", "var InferMode;") +
    slice("class AnimationManager {", "function computeMikkTSpaceTangents(") +
    "return { AnimationManager, TYVoiceChatState };";
  return new Function("LoopOnce", "LoopRepeat", code)(LoopOnce, LoopRepeat);
}

/** p2-1's clip layout (names and lengths from its animation.glb): hello 2, idle 1, speak 6, think 3. */
const CLIPS = [
  ["head_test", 10], ["yumi_h5_a3_hello", 2.17], ["yumi_h5_a3_idle", 10],
  ["speak_1", 2], ["speak_2", 2], ["speak_3", 3], ["speak_4", 2.33], ["speak", 3], ["speak_end", 10],
  ["think_1", 1.17], ["think_2", 3], ["think_3", 1.33],
];
/** The bundle's animationConfig: how many clips each state takes, in order. */
const CONFIG = {
  hello: { size: 2, isGroup: false }, idle: { size: 1, isGroup: false }, listen: { size: 0, isGroup: false },
  speak: { size: 6, isGroup: false }, think: { size: 3, isGroup: true },
};

/** A manager over a real mixer; `run(state, seconds)` steps it as the renderer's frame loop does, at 30 fps. */
function rig() {
  const { AnimationManager } = rendererAnimation();
  const root = new Object3D();
  const head = new Object3D();
  head.name = "head";
  root.add(head);
  const track = (d) => new VectorKeyframeTrack("head.position", [0, d], [0, 0, 0, 1, 1, 1]);
  const clips = CLIPS.map(([name, d]) => new AnimationClip(name, d, [track(d)]));
  const mixer = new AnimationMixer(root);
  const manager = new AnimationManager(mixer, clips, CONFIG);
  const run = async (state, seconds) => {
    for (let i = 0; i < Math.round(seconds * 30); i++) {
      manager.update(state);
      mixer.update(1 / 30);
      await new Promise((r) => setTimeout(r, 1)); // lets the manager's IsBlending timer fire, as between frames
    }
  };
  const weightOf = (name) => {
    const action = AnimationManager.actions.find((a) => a.getClip().name === name);
    return action.isRunning() ? action.getEffectiveWeight() : 0;
  };
  return { AnimationManager, manager, mixer, run, weightOf };
}

test("three's LoopOnce is the constant clips.js uses", () => {
  assert.equal(LOOP_ONCE, LoopOnce);
});

test("the wave is the hello clip named like one, else the last hello clip", () => {
  const action = (name) => ({ getClip: () => ({ name }) });
  const [test1, wave] = [action("head_test"), action("yumi_h5_a3_hello")];
  assert.equal(pickHelloAction([test1, wave]), wave);
  const [a, b] = [action("a"), action("b")];
  assert.equal(pickHelloAction([a, b]), b);
  assert.equal(pickHelloAction([]), null);
});

test("hello plays the wave over the speaking clips, then hands the body back to the chat state's clip", async () => {
  const { AnimationManager, manager, run, weightOf } = rig();
  await run("Responding", 1);
  assert.equal(manager.curPlaying(), "Responding");
  const hello = new HelloClip(manager);
  assert.ok(hello.play());
  assert.equal(hello.play(), false, "one wave at a time");
  await run("Responding", 1); // the chat state stays Responding: the manager must not cut the wave short
  assert.ok(hello.playing);
  assert.ok(weightOf("yumi_h5_a3_hello") > 0.99, `the wave owns the body: ${weightOf("yumi_h5_a3_hello")}`);
  assert.equal(weightOf("head_test"), 0, "not the 10 s test clip");
  await run("Responding", 1.5); // 2.17 s clip: handed back 0.5 s before its end
  assert.equal(hello.playing, false);
  assert.equal(manager.curPlaying(), "Responding");
  await run("Responding", 1);
  assert.equal(weightOf("yumi_h5_a3_hello"), 0, "faded out");
  const speaking = ["speak_1", "speak_2", "speak_3", "speak_4", "speak", "speak_end"].map(weightOf);
  // The renderer cross-fades from one speaking clip to the next on its own timer: together they hold the body.
  const together = speaking.reduce((a, b) => a + b, 0);
  assert.ok(together > 0.99 && together < 1.01, `the speaking clips play again: ${speaking}`);
  AnimationManager.actions.length = 0;
});

test("after a wave started in Idle, the chat state of the moment (Listening) takes over", async () => {
  const { AnimationManager, manager, run } = rig();
  await run("Idle", 0.5);
  const hello = new HelloClip(manager);
  assert.ok(hello.play());
  await run("Idle", 0.5);
  await run("Listening", 2);
  assert.equal(hello.playing, false);
  assert.equal(manager.curPlaying(), "Listening");
  AnimationManager.actions.length = 0;
});

test("no wave while the body clips are frozen (it would never end), nor without hello clips", () => {
  const { AnimationManager, manager, mixer } = rig();
  mixer.timeScale = 0;
  assert.equal(new HelloClip(manager).play(), false);
  AnimationManager.actions.length = 0;
  const bare = { constructor: AnimationManager, hello: { actions: [] }, update() {} };
  assert.equal(new HelloClip(bare).play(), false);
});
