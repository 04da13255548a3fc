// Unit tests of web/src/avatar/headbone.js: the head rotation composed onto the LAM renderer's head bone matrix,
// on a real three.js skeleton and mixer stepped in the renderer's frame order (mixer.update, then runMorphUpdate:
// skeleton.update() and boneRoot.updateMatrixWorld(true)).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AnimationClip, AnimationMixer, Bone, Euler, Matrix4, Object3D, Quaternion, QuaternionKeyframeTrack, Skeleton,
} from "three";
import { HeadBone, multiply, rotationMatrix } from "../../../web/src/avatar/headbone.js";

const DEG = Math.PI / 180;

/**
 * A LAM-like rig: hip → neck → head (+ a jaw under the head), a clip that turns the head, and a fake renderer
 * exposing what headbone.js reads (viewer.useFlame, viewer.skinModel.skeleton, the splat shader's headBoneIndex).
 */
function rig({ headName = "head", clipTurnsHead = true, useFlame = false } = {}) {
  const root = new Object3D();
  const hip = new Bone();
  hip.name = "hip";
  hip.position.set(0, 1.0, 0);
  const neck = new Bone();
  neck.name = "neckUpper";
  neck.position.set(0, 0.45, 0.01);
  neck.quaternion.setFromEuler(new Euler(0.05, 0, 0));
  const head = new Bone();
  head.name = headName;
  head.position.set(0, 0.1, 0.004);
  const jaw = new Bone();
  jaw.name = "lowerJaw";
  jaw.position.set(0, 0.004, 0.014);
  root.add(hip);
  hip.add(neck);
  neck.add(head);
  head.add(jaw);
  root.updateMatrixWorld(true);
  const skeleton = new Skeleton([hip, neck, head, jaw]); // inverses from the rest pose, as a GLTF skin's
  skeleton.computeBoneTexture(); // the renderer does this: boneMatrices becomes the texture's data
  const index = skeleton.bones.indexOf(head);
  const mixer = new AnimationMixer(root);
  const q = (x, y, z) => new Quaternion().setFromEuler(new Euler(x, y, z)).toArray();
  const track = new QuaternionKeyframeTrack(`${headName}.quaternion`, [0, 1, 2],
    [...q(0, 0, 0), ...q(0.1, 0.2, 0), ...q(0, 0, 0)]);
  const action = mixer.clipAction(new AnimationClip("idle", 2, clipTurnsHead ? [track] : []));
  action.play();
  const renderer = {
    viewer: { useFlame, skinModel: { skeleton }, splatMesh: { material: { uniforms: { headBoneIndex: { value: index } } } } },
  };
  /** One rendered frame, in the renderer's order. @returns {number[]} the head's bone matrix sent to the GPU */
  const frame = (dt = 1 / 30) => {
    mixer.update(dt);
    skeleton.update();
    hip.updateMatrixWorld(true);
    return [...skeleton.boneMatrices.subarray(16 * index, 16 * index + 16)];
  };
  return { root, head, skeleton, index, mixer, renderer, frame };
}

const close = (a, b, tol = 1e-6) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol);
const pose = (pitchDeg, yawDeg = 0, rollDeg = 0) => ({ pitch: pitchDeg * DEG, yaw: yawDeg * DEG, roll: rollDeg * DEG });
const silent = () => { const warnings = []; return { warnings, warn: (...a) => warnings.push(a.map(String).join(" ")) }; };

test("rotationMatrix is three's Euler 'YXZ' rotation; multiply is Matrix4.multiply", () => {
  for (const p of [pose(8), pose(-3, 12, 5), pose(1, -2, -7)]) {
    const m = new Matrix4().makeRotationFromEuler(new Euler(p.pitch, p.yaw, p.roll, "YXZ"));
    assert.ok(close(rotationMatrix(p), m.elements, 1e-12));
  }
  const a = new Matrix4().makeRotationFromEuler(new Euler(0.3, -0.2, 0.1)).setPosition(1, 2, 3);
  const b = new Matrix4().makeScale(0.01, 0.01, 0.01).setPosition(-4, 0.5, 7);
  assert.ok(close(multiply(a.elements, b.elements), a.clone().multiply(b).elements, 1e-12));
});

test("the head's GPU matrix is the clip's pose turned by the rotation: as if its quaternion were multiplied", () => {
  const { renderer, frame } = rig();
  const hook = new HeadBone(renderer, silent());
  assert.equal(hook.attached, true);
  hook.setSource({ pose: () => pose(8, -3, 2) });
  // Reference: the same rig, the rotation multiplied onto the head's local quaternion after the mixer each frame.
  const ref = rig();
  const turn = new Quaternion().setFromEuler(new Euler(8 * DEG, -3 * DEG, 2 * DEG, "YXZ"));
  const plain = rig();
  let prevWant = null;
  for (let i = 0; i < 20; i++) {
    const got = frame();
    ref.mixer.update(1 / 30);
    const clip = ref.head.quaternion.clone();
    ref.head.quaternion.multiply(turn);
    ref.root.updateMatrixWorld(true);
    ref.skeleton.update();
    const want = [...ref.skeleton.boneMatrices.subarray(16 * ref.index, 16 * ref.index + 16)];
    ref.head.quaternion.copy(clip); // undo, so that the reference itself does not accumulate
    // The renderer's skeleton.update() runs before updateMatrixWorld: its matrix is one frame behind the pose.
    if (prevWant) assert.ok(close(got, prevWant), `frame ${i}`);
    assert.ok(!close(got, plain.frame(), 1e-3), "the rotation shows");
    prevWant = want;
  }
});

test("nothing accumulates: a frozen body with a held rotation renders the same matrix every frame", () => {
  const { renderer, frame, mixer } = rig();
  mixer.update(0.7); // somewhere in the clip
  mixer.timeScale = 0; // setBodyFrozen(true)
  const hook = new HeadBone(renderer, silent());
  hook.frozen = true;
  hook.setSource({ pose: () => pose(8) });
  frame();
  const first = frame();
  for (let i = 0; i < 30; i++) assert.deepEqual(frame(), first);
  // Why not add it to the bone's quaternion: three's mixer writes a bone only when the clip's value changes, so
  // while the body is frozen a rotation multiplied onto the quaternion each frame compounds.
  const naive = rig();
  naive.mixer.update(0.7);
  naive.mixer.timeScale = 0;
  const step = new Quaternion().setFromEuler(new Euler(8 * DEG, 0, 0));
  const angles = [];
  for (let i = 0; i < 4; i++) {
    naive.mixer.update(1 / 30);
    naive.head.quaternion.multiply(step);
    angles.push(naive.head.quaternion.angleTo(new Quaternion()) / DEG);
  }
  assert.ok(angles[3] > angles[0] + 20, `naive angles ${angles}`);
});

test("frozen: the head holds the last pose it showed; unfrozen it follows the motion again", () => {
  const { renderer, frame, mixer } = rig({ clipTurnsHead: false });
  const hook = new HeadBone(renderer, silent());
  let pitch = 2;
  hook.setSource({ pose: () => pose(pitch) });
  frame();
  const at2 = frame();
  mixer.timeScale = 0;
  hook.frozen = true;
  pitch = 6;
  assert.deepEqual(frame(), at2);
  assert.deepEqual(frame(), at2);
  hook.frozen = false;
  frame();
  const at6 = frame();
  assert.ok(!close(at6, at2, 1e-4));
  // Frozen from the start with a fresh source: sampled once, then held.
  hook.frozen = true;
  let calls = 0;
  hook.setSource({ pose: () => { calls++; return pose(4); } });
  frame();
  frame();
  assert.equal(calls, 1);
});

test("no source or a zero pose leaves the renderer's matrices bit-identical", () => {
  const plain = rig();
  const hooked = rig();
  const hook = new HeadBone(hooked.renderer, silent());
  for (let i = 0; i < 5; i++) assert.deepEqual(hooked.frame(), plain.frame());
  hook.setSource({ pose: () => pose(0) });
  for (let i = 0; i < 5; i++) assert.deepEqual(hooked.frame(), plain.frame());
  hook.setSource({ pose: () => pose(5) });
  hooked.frame();
  plain.frame();
  assert.notDeepEqual(hooked.frame(), plain.frame());
  hook.setSource(null);
  hooked.frame();
  plain.frame();
  assert.deepEqual(hooked.frame(), plain.frame()); // one frame later: back to the clip alone
  // The other bones are never touched.
  const i = hooked.index;
  const others = (r) => [...r.skeleton.boneMatrices.subarray(0, 16 * 4)].filter((_, k) => Math.floor(k / 16) !== i);
  hook.setSource({ pose: () => pose(9, 9, 9) });
  hooked.frame();
  plain.frame();
  assert.deepEqual(others(hooked), others(plain));
});

test("robust: no head bone, a FLAME avatar or a throwing motion log once and leave the clip alone", () => {
  for (const options of [{ headName: "skull" }, { useFlame: true }]) {
    const { renderer, skeleton, frame } = rig(options);
    const update = skeleton.update;
    const { warnings, warn } = silent();
    const hook = new HeadBone(renderer, { warn });
    assert.equal(hook.attached, false);
    assert.equal(skeleton.update, update);
    hook.setSource({ pose: () => pose(5) });
    frame();
    assert.equal(warnings.length, 1, warnings);
    assert.match(warnings[0], /no head motion/);
  }
  assert.equal(new HeadBone({}, silent()).attached, false);
  assert.equal(new HeadBone(undefined, silent()).attached, false);
  // The renderer moving the splats with another bone than 'head': do nothing rather than move the wrong one.
  const other = rig();
  other.renderer.viewer.splatMesh.material.uniforms.headBoneIndex.value = 0;
  assert.equal(new HeadBone(other.renderer, silent()).attached, false);

  const plain = rig();
  const { renderer, frame } = rig();
  const { warnings, warn } = silent();
  const hook = new HeadBone(renderer, { warn });
  hook.setSource({ pose: () => { throw new Error("boom"); } });
  for (let i = 0; i < 5; i++) assert.deepEqual(frame(), plain.frame());
  assert.equal(warnings.length, 1, warnings);
});
