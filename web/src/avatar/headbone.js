// Puts a procedural head rotation (head.js) on the LAM renderer's head bone (npm gaussian-splat-renderer-for-lam
// 0.0.8), on top of the body clip's pose. How the renderer moves the splats, per animation frame
// (GaussianSplatRenderer.render → viewer.update → runMorphUpdate → splatMesh.updateTetureAfterBSAndSkeleton):
//   1. animManager.update(chatState) picks the clips; mixer.update(dt) poses the bones (local position/quaternion);
//   2. runMorphUpdate calls skinModel.skeleton.update(): boneMatrices[i] = bones[i].matrixWorld × boneInverses[i],
//      written into skeleton.boneTexture's data (needsUpdate); then boneRoot.updateMatrixWorld(true);
//   3. the splat vertex shader reads that texture as `boneTexture0` and moves EVERY splat by the matrix of one bone,
//      uniform `headBoneIndex` (the skeleton's bone named 'head'): the avatar is rigid on the head bone.
// So this wraps skeleton.update(): after it has flattened the clip's pose, the head bone's matrix becomes
// matrixWorld × R × boneInverse, R the rotation in the head's own frame about its joint. That is what multiplying
// the bone's local quaternion by R would give, without touching the pose the mixer owns: three's PropertyMixer writes
// a bone only when its value changed, so a rotation added to the quaternion would stay, and compound, whenever the
// clip holds still or the body is frozen, and it would leak into the "original state" a newly played clip saves.
// Here each frame starts from the clip's matrices again: nothing accumulates, and no pose means bit-identical output.
// No import of the renderer (it is 4 MB and needs a browser): the renderer comes in as an object, so Node tests run
// this against three.js's own Skeleton.

/**
 * R = Ry(yaw) · Rx(pitch) · Rz(roll) (three's Euler order 'YXZ'), as a column-major 4×4 array.
 * @param {{pitch: number, yaw: number, roll: number}} pose radians
 * @returns {number[]}
 */
export function rotationMatrix({ pitch = 0, yaw = 0, roll = 0 }) {
  const [a, b] = [Math.cos(pitch), Math.sin(pitch)];
  const [c, d] = [Math.cos(yaw), Math.sin(yaw)];
  const [e, f] = [Math.cos(roll), Math.sin(roll)];
  const ce = c * e, cf = c * f, de = d * e, df = d * f;
  // Rows of the 3×3 (as three.js Matrix4.makeRotationFromEuler, order YXZ), stored by columns.
  const m = [
    [ce + df * b, de * b - cf, a * d],
    [a * f, a * e, -b],
    [cf * b - de, df + ce * b, a * c],
  ];
  return [m[0][0], m[1][0], m[2][0], 0, m[0][1], m[1][1], m[2][1], 0, m[0][2], m[1][2], m[2][2], 0, 0, 0, 0, 1];
}

/** out = A · B for column-major 4×4 arrays. */
export function multiply(A, B, out = new Array(16)) {
  for (let col = 0; col < 4; col++) {
    for (let row = 0; row < 4; row++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += A[k * 4 + row] * B[col * 4 + k];
      out[col * 4 + row] = s;
    }
  }
  return out;
}

/** Whether a pose rotates at all: no pose, all zeros or a non-number leaves the renderer's matrices untouched. */
function rotates(pose) {
  if (!pose) return false;
  const angles = [pose.pitch ?? 0, pose.yaw ?? 0, pose.roll ?? 0];
  return angles.every(Number.isFinite) && angles.some((v) => v !== 0);
}

/**
 * The hook on one renderer. `source.pose()` is asked for the rotation each rendered frame; while `frozen` (the body
 * clips stopped for deterministic stills) the head holds the last pose it showed from that source.
 */
export class HeadBone {
  /**
   * @param {object} renderer the GaussianSplatRenderer (its viewer's skinModel is the avatar's skinned mesh)
   * @param {{warn?: (...args: unknown[]) => void}} [options]
   */
  constructor(renderer, { warn = (...args) => console.warn(...args) } = {}) {
    this.warn = warn;
    this.source = null;
    this.frozen = false;
    this.attached = false;
    this._held = null; // the last pose shown, for frozen frames
    this._threw = false;
    const skeleton = renderer?.viewer?.skinModel?.skeleton;
    const index = skeleton?.bones?.findIndex((bone) => bone?.name === "head") ?? -1;
    const uniform = renderer?.viewer?.splatMesh?.material?.uniforms?.headBoneIndex?.value;
    let why = null;
    if (renderer?.viewer?.useFlame !== false) why = "the avatar is not a skinned LAM avatar";
    else if (!skeleton || typeof skeleton.update !== "function") why = "the avatar has no skeleton";
    else if (index < 0) why = "the avatar's skeleton has no bone named 'head'";
    else if (!skeleton.boneInverses?.[index] || !(skeleton.boneMatrices?.length >= 16 * (index + 1))) {
      why = "the skeleton has no bone matrices";
    } else if (uniform !== undefined && uniform !== index) why = `the renderer moves the splats with bone ${uniform}`;
    if (why) {
      this.warn(`avatar: no head motion (${why})`);
      return;
    }
    this.skeleton = skeleton;
    this.index = index;
    this.bone = skeleton.bones[index];
    const update = skeleton.update;
    const hook = this;
    skeleton.update = function (...args) {
      const result = update.apply(this, args);
      hook._apply();
      return result;
    };
    this.attached = true;
  }

  /** @param {{pose: () => import("./head.js").HeadPose}|null} source */
  setSource(source) {
    this.source = source;
    this._held = null;
    this._threw = false;
  }

  /** The pose for this frame: the source's, or the held one while frozen. */
  _pose() {
    if (this.frozen && this._held) return this._held;
    try {
      this._held = this.source.pose();
    } catch (e) {
      if (!this._threw) this.warn("avatar: the head motion threw, the head shows the body clip alone:", e);
      this._threw = true;
      this._held = null;
    }
    return this._held;
  }

  _apply() {
    if (!this.source) return;
    const pose = this._pose();
    if (!rotates(pose)) return;
    const { skeleton, index, bone } = this;
    // The head's world matrix turned about its joint in its own frame, then back to bind space, as update() does.
    const world = multiply(bone.matrixWorld.elements, rotationMatrix(pose));
    const out = multiply(world, skeleton.boneInverses[index].elements);
    for (let i = 0; i < 16; i++) skeleton.boneMatrices[16 * index + i] = out[i];
  }
}
