#!/usr/bin/env python3
"""Generate the embedded default avatar: a stylised head in the LAM zip format (DESIGN.md §5), no download.

    python hack/make_default_avatar.py [--out avatars/default.zip] [--splats 12000] [--preview /tmp/default_avatar]

Deterministic (fixed seed, fixed zip timestamps; the zip's folder is the --out file's stem): the same arguments give
the same bytes, in well under a second. What it writes mirrors a real LAM export (../shared/fixtures/lam/p2-1.zip)
as far as the LAM renderer (npm gaussian-splat-renderer-for-lam 0.0.8) needs:
- `default/` is the zip's only directory entry: the renderer takes the *last* directory entry as the avatar folder;
- offset.ply: INRIA binary PLY with p2-1's 17 float properties; splat i sits on mesh vertex i with a zero offset,
  f_dc is plain RGB 0..1 with baked lighting (the renderer does none), opacity logit 5 (the bust's lower rim fades
  out), isotropic log scales from the local vertex spacing, identity rotation (rot_0 = w = 1);
- skin.glb: one skinned mesh (Y-up metres, facing +Z, head centre at y=1.68 like p2-1), joints
  hip/spine/chest/neck/head under an identity root (every vertex on `head`: the renderer moves all splats with the
  head bone only), all 52 ARKit morph targets as sparse accessors named in mesh.extras.targetNames, no animations;
- animation.glb: the same joint names and 12 rotation clips, because the renderer splits clips by index into
  hello 2, idle 1 (listen reuses it), speak 6 (random order, played once each), think 3 (start, loop, end);
- vertex_order.json: the identity permutation.

The renderer blends splats back to front by their *rest* positions, so parts that a morph reveals sit behind the skin
at rest: an eyelid sheet above each eye (eyeBlink slides it down in front of the eyeball), a dark mouth cavity,
teeth and tongue behind the lips (jawOpen swings the jaw about a hinge near the ears and reveals them), irises in
front of a deep spherical sclera (eyeLook* moves them).

Why 12,000 splats (3,000..150,000 allowed): p2-1 has 20,018, and the renderer's per-frame cost (CPU morph update and
sort, a vertex shader reading all morph targets of every splat) is linear in the count; headless Chromium on
SwiftShader ran p2-1 at ~1.3 FPS. 12k is ~1.7x cheaper, and at the renderer's default camera the head is about a
quarter of the canvas height, so the face (a 60x60 grid, ~2.3 mm apart) still has more splats than pixels at 1080p.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

ARKIT = (
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)  # fmt: skip  (the order of avatar_runtime.protocol.ARKIT_BLENDSHAPES; this script runs without the package)

SEED = 20240611
HEAD = np.array([0.0, 1.68, 0.0])  # head centre, world metres (p2-1: eyes at y~1.69, crown 1.80)
JOINTS = (
    ("hip", (0.0, 1.00, 0.0)),
    ("spine", (0.0, 1.20, 0.0)),
    ("chest", (0.0, 1.38, -0.01)),
    ("neck", (0.0, 1.50, -0.015)),
    ("head", (0.0, 1.575, -0.01)),
)  # world rest positions, a chain
HEAD_JOINT = 4
NECK_BOTTOM = -0.215  # local y of the bust's lower rim, which fades out like p2-1's
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
Y_MOUTH, MOUTH_W = -0.047, 0.024  # mouth line (local y) and half-width
EYE_X, EYE_Y, EYE_A, EYE_UP, EYE_LO = 0.032, 0.018, 0.0135, 0.0074, 0.0050  # eye centre, half-width, lid heights
IRIS_R = 0.0062
RECESS, EYE_R = 0.008, 0.012  # eyeball apex depth behind the skin at the eye centre; eyeball radius
LIGHT = np.array([-0.35, 0.55, 0.76]) / np.linalg.norm([-0.35, 0.55, 0.76])

SKIN, SKIN_NECK, LIP = np.array([0.88, 0.69, 0.58]), np.array([0.80, 0.60, 0.50]), np.array([0.76, 0.44, 0.44])
HAIR, BROW, LASH = np.array([0.21, 0.14, 0.10]), np.array([0.26, 0.17, 0.12]), np.array([0.16, 0.10, 0.08])
SCLERA, IRIS, PUPIL = np.array([0.95, 0.94, 0.91]), np.array([0.33, 0.47, 0.60]), np.array([0.04, 0.04, 0.05])
SWEATER, CAVITY, TEETH = np.array([0.22, 0.32, 0.46]), np.array([0.30, 0.08, 0.09]), np.array([0.94, 0.92, 0.86])
TONGUE = np.array([0.78, 0.38, 0.40])


# ----------------------------------------------------------------------------------------------- small helpers
def smoothstep(e0, e1, x):
    t = np.clip((np.asarray(x, float) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(x, y, cx, cy, sx, sy):
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def grid(nu: int, nv: int):
    """Cell-centre parameters in [-1, 1]^2 (nu*nv, 2) and the triangles of the grid."""
    u = (np.arange(nu) + 0.5) / nu * 2 - 1
    v = (np.arange(nv) + 0.5) / nv * 2 - 1
    uu, vv = np.meshgrid(u, v, indexing="ij")
    i, j = np.meshgrid(np.arange(nu - 1), np.arange(nv - 1), indexing="ij")
    a = (i * nv + j).ravel()
    tris = np.concatenate([np.stack([a, a + nv, a + 1], 1), np.stack([a + 1, a + nv, a + nv + 1], 1)])
    return np.stack([uu.ravel(), vv.ravel()], 1), tris


def keep(points: dict, tris: np.ndarray, mask: np.ndarray):
    """Drop masked-out vertices from a patch and the triangles that used them."""
    remap = np.full(len(mask), -1)
    remap[mask] = np.arange(mask.sum())
    tris = remap[tris]
    return {k: v[mask] for k, v in points.items()}, tris[(tris >= 0).all(1)]


def grid_normals(p: np.ndarray, nu: int, nv: int) -> np.ndarray:
    g = p.reshape(nu, nv, 3)
    n = np.cross(np.gradient(g, axis=0), np.gradient(g, axis=1)).reshape(-1, 3)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def grid_spacing(p: np.ndarray, nu: int, nv: int, widest: bool = False) -> np.ndarray:
    """Local vertex spacing of a grid patch: the geometric mean of its two step lengths (or the longer one)."""
    g = p.reshape(nu, nv, 3)
    a = np.linalg.norm(np.gradient(g, axis=0), axis=2)
    b = np.linalg.norm(np.gradient(g, axis=1), axis=2)
    return (np.maximum(a, b) if widest else np.sqrt(a * b)).ravel()


class Parts:
    """Accumulates vertex patches: position, colour, normal, part id, triangles."""

    def __init__(self):
        self.p, self.c, self.n, self.s, self.part, self.tris, self.count = [], [], [], [], [], [], 0
        self.names: list[str] = []

    def add(self, name, p, c, n, tris, spacing):
        if name not in self.names:
            self.names.append(name)
        self.p.append(p)
        self.c.append(c)
        self.n.append(n)
        self.s.append(np.broadcast_to(spacing, len(p)))
        self.part.append(np.full(len(p), self.names.index(name)))
        self.tris.append(tris + self.count)
        self.count += len(p)

    def arrays(self):
        return (
            np.concatenate(self.p),
            np.concatenate(self.c),
            np.concatenate(self.n),
            np.concatenate(self.s),
            np.concatenate(self.part),
            np.concatenate(self.tris),
        )


# ---------------------------------------------------------------------------------------------- head surface
def eye_opening(x, y):
    """(inside, u, top, bottom) of the almond-shaped eye openings, in local face coordinates."""
    u = (np.abs(x) - EYE_X) / EYE_A
    w = np.clip(1 - u**2, 0, None) ** 0.75
    top = EYE_Y + 0.0006 * u + EYE_UP * w
    bottom = EYE_Y + 0.0006 * u - EYE_LO * w
    return (np.abs(u) < 1) & (y < top) & (y > bottom), u, top, bottom


def lip_shape(x):
    """Upper and lower lip heights above/below the mouth line at x."""
    t = np.clip(1 - (x / MOUTH_W) ** 2, 0, None)
    bow = 0.0012 * np.exp(-(((np.abs(x) - 0.005) / 0.004) ** 2)) - 0.0008 * np.exp(-((x / 0.003) ** 2))
    return 0.0054 * t**0.5 + bow * t, 0.0074 * t**0.6


def base_shape(d: np.ndarray) -> np.ndarray:
    """Unit directions -> skull/face ellipsoid with a tapered jaw (local metres, facing +Z)."""
    dx, dy, dz = d.T
    ax = 0.075 - 0.002 * smoothstep(0.2, 1.0, dy)
    ay = np.where(dy > 0, 0.112, 0.118)
    az = np.where(dz > 0, 0.093, 0.104)
    x, y, z = ax * dx, ay * dy, az * dz
    jaw = smoothstep(-0.05, -0.95, dy)
    x = x * (1 - 0.24 * jaw**1.8)
    z = np.where(z > 0, z * (1 - 0.10 * jaw * smoothstep(0.0, 0.8, -dy)), z * (1 - 0.35 * jaw))
    z = z + 0.032 * dx**2 * np.clip(dz, 0, None) ** 2  # flatter face
    return np.stack([x, y, z], 1)


def face_relief(x, y):
    """Forward displacement (metres) of the face features at (x, y)."""
    ax_ = np.abs(x)
    ridge = 0.011 * np.clip((0.032 - y) / 0.05, 0, 1) ** 1.4 * np.exp(-((x / 0.0080) ** 2)) * (y > -0.026)
    tip = 0.012 * gauss(x, y, 0, -0.017, 0.0095, 0.0095)
    alae = 0.006 * gauss(ax_, y, 0.0120, -0.021, 0.0060, 0.0060)
    sockets = -0.0070 * gauss(ax_, y, EYE_X, EYE_Y - 0.001, 0.017, 0.011)
    brow = 0.004 * gauss(ax_, y, 0.030, 0.040, 0.022, 0.007)
    cheek = 0.006 * gauss(ax_, y, 0.042, -0.010, 0.016, 0.016)
    hu, hl = lip_shape(x)
    upper = 0.0026 * np.exp(-(((y - Y_MOUTH - hu * 0.5) / np.maximum(hu * 0.75, 1e-4)) ** 2)) * (hu > 0)
    lower = 0.0034 * np.exp(-(((y - Y_MOUTH + hl * 0.5) / np.maximum(hl * 0.75, 1e-4)) ** 2)) * (hl > 0)
    crease = -0.0015 * np.exp(-(((y - Y_MOUTH) / 0.0012) ** 2)) * (ax_ < MOUTH_W)
    philtrum = 0.0015 * gauss(ax_, y, 0.0035, -0.034, 0.002, 0.006)
    chin = 0.0075 * gauss(x, y, 0, -0.090, 0.017, 0.013) - 0.003 * gauss(x, y, 0, -0.070, 0.02, 0.006)
    return ridge + tip + alae + sockets + brow + cheek + upper + lower + crease + philtrum + chin


def hair_mask(p: np.ndarray) -> np.ndarray:
    x, y, z = p.T
    phi = np.abs(np.arctan2(x, z))
    line = np.interp(
        phi,
        [0.0, 0.55, 0.95, 1.25, 1.42, 1.72, 2.2, math.pi],
        [0.082, 0.076, 0.060, 0.030, 0.012, 0.030, -0.050, -0.075],
    )
    return smoothstep(line - 0.003, line + 0.004, y)


def ear_bump(p: np.ndarray) -> np.ndarray:
    x, y, z = p.T
    return gauss(y, z, -0.004, -0.016, 0.022, 0.011) * smoothstep(0.045, 0.065, np.abs(x))


def surface_colours(p, rng):
    x, y, z = p.T
    ax_ = np.abs(x)
    front = smoothstep(0.0, 0.04, z)
    c = np.tile(SKIN, (len(p), 1))
    c = c + (
        np.array([0.04, -0.04, -0.03])
        * (0.8 * gauss(ax_, y, 0.046, -0.02, 0.016, 0.014) + 0.3 * gauss(x, y, 0, -0.018, 0.008, 0.008))[:, None]
        * front[:, None]
    )
    hu, hl = lip_shape(x)
    lip = smoothstep(-0.0008, 0.0006, np.minimum(y - (Y_MOUTH - hl), Y_MOUTH + hu - y)) * (ax_ < MOUTH_W)
    c = c * (1 - lip[:, None] * front[:, None]) + LIP * (lip * front)[:, None]
    crease = np.exp(-(((y - Y_MOUTH) / 0.0009) ** 2)) * smoothstep(MOUTH_W, MOUTH_W - 0.004, ax_) * front
    c = c * (1 - 0.55 * crease[:, None])
    nostril = gauss(ax_, y, 0.0068, -0.0262, 0.0030, 0.0018) * front
    c = c * (1 - 0.75 * nostril[:, None])
    yb = 0.0385 + 0.0055 * (1 - ((ax_ - 0.029) / 0.022) ** 2)
    tb = 0.0034 - 0.0014 * smoothstep(0.015, 0.052, ax_)
    brow = np.exp(-(((y - yb) / tb) ** 2)) * smoothstep(0.009, 0.013, ax_) * smoothstep(0.056, 0.050, ax_) * front
    c = c * (1 - brow[:, None]) + BROW * brow[:, None]
    inside, u, top, _ = eye_opening(x, y)
    lash = (np.abs(u) < 1.06) & (y >= top) & (y < top + 0.0011) & (z > 0)
    c[lash] = 0.55 * LASH + 0.45 * c[lash]
    ear = ear_bump(p)
    c = c * (1 - np.array([0.02, 0.10, 0.10]) * smoothstep(0.3, 0.8, ear)[:, None])
    hair = hair_mask(p) * (1 - smoothstep(0.2, 0.5, ear_bump(p)))
    streak = 1 + 0.10 * np.sin(260 * x + 90 * y) * np.sin(180 * z) + rng.normal(0, 0.05, len(p))
    c = c * (1 - hair[:, None]) + (HAIR * streak[:, None]) * hair[:, None]
    c[inside & (z > 0)] = SCLERA
    return c


def build_surface(parts: Parts, n_front: int, n_side: int, rng) -> None:
    """Cube-sphere head (front face finer, tilted 20 deg down to cover brow to chin), relief, hair, eyes."""
    tilt = math.radians(20)
    rot = np.array([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    faces = [
        ((0, 0, 1), (1, 0, 0), (0, 1, 0), n_front),
        ((1, 0, 0), (0, 0, -1), (0, 1, 0), n_side),
        ((-1, 0, 0), (0, 0, 1), (0, 1, 0), n_side),
        ((0, 1, 0), (1, 0, 0), (0, 0, -1), n_side),
        ((0, -1, 0), (1, 0, 0), (0, 0, 1), n_side),
        ((0, 0, -1), (-1, 0, 0), (0, 1, 0), n_side),
    ]
    for axis, e1, e2, n in faces:
        uv, tris = grid(n, n)
        a, b = np.tan(uv[:, 0] * math.pi / 4), np.tan(uv[:, 1] * math.pi / 4)
        d = np.asarray(axis) + a[:, None] * np.asarray(e1) + b[:, None] * np.asarray(e2)
        d = (d / np.linalg.norm(d, axis=1, keepdims=True)) @ rot.T
        p = base_shape(d)
        x, y, z = p.T
        front = smoothstep(0.01, 0.05, z)
        p[:, 2] += face_relief(x, y) * front
        p += (0.010 * ear_bump(p))[:, None] * np.stack([np.sign(x), np.zeros_like(x), -0.3 * np.ones_like(x)], 1)
        hair = hair_mask(p) * (1 - smoothstep(0.2, 0.5, ear_bump(p)))
        p += (0.007 * hair)[:, None] * d
        normals = grid_normals(p, n, n)
        normals *= np.sign(np.sum(normals * d, axis=1, keepdims=True) + 1e-9)
        spacing = grid_spacing(p, n, n)
        colour = surface_colours(p, rng)
        inside, *_ = eye_opening(p[:, 0], p[:, 1])
        inside &= p[:, 2] > 0
        p[inside, 2] = eyeball_z(p[inside, 0], p[inside, 1])  # the sclera sits well behind the lids
        normals[inside] = [0.0, 0.2, 0.98]
        parts.add("skin", p, colour, normals, tris, spacing)


def build_neck(parts: Parts, count: int) -> None:
    """Neck cylinder widening into sweater-clad shoulders; `count` vertices exactly (the top ring may be partial)."""
    cols = int(round(math.sqrt(count * 2.9)))  # ~square cells: circumference ~0.4 m, height 0.14 m
    rows = -(-count // cols)
    uv, tris = grid(rows, cols)
    t = (uv[:, 0] + 1) / 2  # 0 at the bottom
    ang = (uv[:, 1] + 1) * math.pi
    y = NECK_BOTTOM + t * (-0.075 - NECK_BOTTOM)
    flare = smoothstep(-0.135, NECK_BOTTOM, y)
    r = 0.057 + 0.07 * flare**1.4
    x = r * np.sin(ang) * (1 + 0.55 * flare)
    z = -0.012 + r * np.cos(ang) * (0.95 - 0.25 * flare)
    p = np.stack([x, y - 0.022 * flare * np.sin(ang) ** 2, z], 1)  # shoulders slope down at the sides
    colour = SKIN_NECK * (1 - smoothstep(-0.128, -0.136, y))[:, None] + SWEATER * smoothstep(-0.128, -0.136, y)[:, None]
    colour = colour * (0.85 + 0.15 * smoothstep(-0.09, -0.13, y))[:, None]  # shadow under the jaw
    normals = grid_normals(p, rows, cols)
    outward = np.stack([x, 0 * x, z + 0.012], 1)
    normals *= np.sign(np.sum(normals * outward, axis=1, keepdims=True) + 1e-9)
    pts, tris = keep(
        {"p": p, "c": colour, "n": normals, "s": grid_spacing(p, rows, cols, widest=True)},
        tris,
        np.arange(len(p)) < count,
    )  # the top row, inside the head, may be partial
    parts.add("neck", pts["p"], pts["c"], pts["n"], tris, pts["s"])


# ------------------------------------------------------------------------------- parts hidden behind the skin
def zs(x, y):
    """z of the front skin surface (with relief, without the sclera recess) at (x, y): base_shape inverted."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x / 0.075, y / 0.12
    for _ in range(40):  # x, y grow monotonically with dx, dy: damped fixed-point steps converge
        d = np.stack([dx, dy, np.sqrt(np.maximum(1 - dx**2 - dy**2, 1e-9))], -1)
        p = base_shape(d.reshape(-1, 3)).reshape(d.shape)
        dx = np.clip(dx + (x - p[..., 0]) / 0.075, -0.99, 0.99)
        dy = np.clip(dy + (y - p[..., 1]) / 0.12, -0.99, 0.99)
    return p[..., 2] + face_relief(x, y) * smoothstep(0.01, 0.05, p[..., 2])


def eyeball_z(x, y):
    """The eyeball: a sphere cap whose apex is RECESS behind the skin at the eye centre (so an iris moved across it
    always sorts in front of the sclera, and the lid sheets sort in front of both)."""
    apex = zs(EYE_X, EYE_Y) - RECESS  # symmetric face: the same for both eyes
    return apex - ((np.abs(x) - EYE_X) ** 2 + (y - EYE_Y) ** 2) / (2 * EYE_R)


def patch(x0, x1, y0, y1, step):
    """A flat grid over [x0, x1] x [y0, y1]: x, y, triangles and its spacing."""
    nu, nv = max(int(round((x1 - x0) / step)), 2), max(int(round((y1 - y0) / step)), 2)
    uv, tris = grid(nu, nv)
    spacing = math.sqrt((x1 - x0) / nu * (y1 - y0) / nv)
    return x0 + (uv[:, 0] + 1) / 2 * (x1 - x0), y0 + (uv[:, 1] + 1) / 2 * (y1 - y0), tris, spacing


def facing(n: int, normal=(0.0, 0.0, 1.0)) -> np.ndarray:
    return np.tile(np.asarray(normal) / np.linalg.norm(normal), (n, 1))


def build_eyes(parts: Parts, step: float) -> dict:
    """Per eye: an iris disc in front of the sclera and an eyelid sheet tucked under the brow skin."""
    blink = {}
    lift = EYE_UP + EYE_LO + 0.003
    for side, s in (("Left", 1), ("Right", -1)):
        cx = s * EYE_X
        # iris: a disc in front of the recessed sclera; what strays outside the opening stays behind the lids
        x, y, tris, sp = patch(cx - IRIS_R, cx + IRIS_R, EYE_Y - IRIS_R, EYE_Y + IRIS_R + 0.001, step * 0.45)
        r = np.hypot(x - cx, y - EYE_Y - 0.0005)
        pts, tris = keep({"x": x, "y": y, "r": r}, tris, r < IRIS_R)
        x, y, r = pts["x"], pts["y"], pts["r"]
        z = eyeball_z(cx, EYE_Y) + 0.0004 + 0.0004 * (1 - (r / IRIS_R) ** 2) + 0 * x  # flat: above all sclera
        c = IRIS * (0.70 + 0.5 * (r / IRIS_R))[:, None]
        c[r > 0.86 * IRIS_R] = IRIS * 0.45
        c[r < 0.38 * IRIS_R] = PUPIL
        c[np.hypot(x - cx + 0.0015 * s, y - EYE_Y - 0.0021) < 0.0009] = 0.97
        parts.add(f"iris{side}", np.stack([x, y, z], 1), c, facing(len(x)), tris, sp)
        # eyelid: closed it covers the opening just in front of the skin; at rest it is lifted under the brow
        x, y, tris, sp = patch(
            cx - EYE_A * 1.15, cx + EYE_A * 1.15, EYE_Y - EYE_LO - 0.002, EYE_Y + EYE_UP + 0.002, step * 0.6
        )
        inside, u, top, bottom = eye_opening(x, y)
        pts, tris = keep({"x": x, "y": y}, tris, (np.abs(u) < 1.15) & (y > bottom - 0.0018) & (y < top + 0.0018))
        x, y = pts["x"], pts["y"]
        closed = np.stack([x, y, zs(x, y) + 0.0008], 1)
        rest = np.stack([x, y + lift, zs(x, y + lift) - 0.0010], 1)
        _, _, _, bottom = eye_opening(x, y)
        reach = np.abs(x - cx) < IRIS_R + 0.0045  # where an iris looking in/out can be
        below = np.where(reach, eyeball_z(cx, EYE_Y) + 0.0008, eyeball_z(x, y)) + 0.0004
        if np.any(rest[:, 2] < below):  # the closed lid must sort in front of the iris and sclera
            raise SystemExit("eyelid sheet would sort behind the eyeball: adjust the eye relief")
        c = np.tile(SKIN * np.array([0.90, 0.86, 0.85]), (len(x), 1))
        c[y < bottom + 0.0010] = LASH
        parts.add(f"lid{side}", rest, c, facing(len(x), (0, 0.3, 1)), tris, sp)
        blink[side] = closed - rest
    return blink


def build_mouth(parts: Parts, step: float) -> None:
    """Dark cavity, upper/lower teeth and tongue, all behind the lips at rest."""
    cy = Y_MOUTH - 0.010
    x, y, tris, sp = patch(-0.036, 0.036, cy - 0.022, cy + 0.022, step)
    r2 = (x / 0.036) ** 2 + ((y - cy) / 0.022) ** 2
    pts, tris = keep({"x": x, "y": y, "r2": r2}, tris, r2 < 1)
    x, y, r2 = pts["x"], pts["y"], pts["r2"]
    edge = smoothstep(0.016, 0.030, np.abs(x))[:, None]  # towards the corners: lip-coloured lining
    colour = CAVITY * (0.55 + 0.45 * r2)[:, None] * (1 - edge) + LIP * 0.62 * edge
    parts.add("cavity", np.stack([x, y, zs(x, y) - 0.014], 1), colour, facing(len(x)), tris, sp)
    for name, (y0, y1, half, depth) in {
        "teethUpper": (Y_MOUTH - 0.0012, Y_MOUTH + 0.0075, 0.018, 0.0042),
        "teethLower": (Y_MOUTH - 0.0085, Y_MOUTH - 0.0016, 0.016, 0.0055),
    }.items():
        x, y, tris, sp = patch(-half, half, y0, y1, step * 0.55)
        z = zs(x, y) - depth - 0.25 * x**2 / half
        gaps = 1 - 0.18 * np.exp(-(((((np.abs(x) + 0.00225) % 0.0045) - 0.00225) / 0.0005) ** 2))
        c = TEETH * gaps[:, None] * (0.85 + 0.15 * smoothstep(half, half * 0.5, np.abs(x)))[:, None]
        parts.add(name, np.stack([x, y, z], 1), c, facing(len(x)), tris, sp)
    x, y, tris, sp = patch(-0.015, 0.015, Y_MOUTH - 0.018, Y_MOUTH - 0.005, step * 0.7)
    r2 = (x / 0.015) ** 2 + ((y - Y_MOUTH + 0.0115) / 0.0065) ** 2
    pts, tris = keep({"x": x, "y": y, "r2": r2}, tris, r2 < 1)
    x, y, r2 = pts["x"], pts["y"], pts["r2"]
    parts.add(
        "tongue",
        np.stack([x, y, zs(x, y) - 0.0095 + 0.002 * (1 - r2)], 1),
        TONGUE * (0.85 + 0.15 * (1 - r2))[:, None],
        facing(len(x), (0, 0.5, 0.87)),
        tris,
        sp,
    )


# ------------------------------------------------------------------------------------------------- morphs
def build_morphs(p: np.ndarray, part: np.ndarray, names: list[str], blink: dict) -> dict[str, np.ndarray]:
    x, y, z = p.T
    ax_ = np.abs(x)
    is_ = {n: part == i for i, n in enumerate(names)}
    skin = (is_["skin"] & (z > -0.02)).astype(float)
    front = smoothstep(0.01, 0.045, z) * skin
    zero = np.zeros_like(p)

    def vec(w, dx, dy, dz):
        return np.stack([w * dx, w * dy, w * dz], 1)

    def side(s):
        return smoothstep(-0.008, 0.008, s * x)

    # jaw: rotation about a hinge near the ears; the skin below the mouth line and the jaw line follows
    yline = Y_MOUTH + (-0.004 - Y_MOUTH) * smoothstep(MOUTH_W, 0.068, ax_)
    width = 0.0008 + 0.010 * smoothstep(MOUTH_W - 0.009, MOUTH_W + 0.010, ax_) + 0.006 * smoothstep(0.035, 0.06, ax_)
    jaw = smoothstep(yline + width, yline - width, y) * smoothstep(-0.05, 0.0, z) * skin
    jaw = np.maximum(jaw, (is_["teethLower"] | is_["tongue"]).astype(float))
    hinge, angle = np.array([0.0, -0.004, -0.032]), 0.21
    c_, s_ = math.cos(angle), math.sin(angle)
    q = p - hinge
    rotated = np.stack([q[:, 0], q[:, 1] * c_ - q[:, 2] * s_, q[:, 1] * s_ + q[:, 2] * c_], 1) + hinge
    jaw_open = (rotated - p) * jaw[:, None]

    hu, hl = lip_shape(np.clip(x, -MOUTH_W, MOUTH_W))
    lipzone = (
        np.exp(-((np.maximum(ax_ - 0.020, 0) / 0.010) ** 2))
        * np.exp(-((np.maximum(np.abs(y - Y_MOUTH) - 0.006, 0) / 0.009) ** 2))
        * front
    )
    upper = smoothstep(Y_MOUTH - 0.0007, Y_MOUTH + 0.0007, y)
    lower = 1 - upper
    lip_u = lipzone * upper * np.exp(-((np.maximum(y - Y_MOUTH - 0.008, 0) / 0.006) ** 2))
    lip_l = lipzone * lower * np.exp(-((np.maximum(Y_MOUTH - 0.010 - y, 0) / 0.007) ** 2))

    def corner(s, r=0.011):
        return gauss(x, y, s * MOUTH_W, Y_MOUTH, r, r) * front

    def brow(s, cx, sx, sy=0.011):
        return gauss(x, y, s * cx, 0.039, sx, sy) * front

    m: dict[str, np.ndarray] = {"jawOpen": jaw_open}
    m["jawForward"] = vec(jaw, 0, 0, 0.005)
    m["mouthClose"] = -jaw_open * (lip_l * 0.95)[:, None] + vec(lip_u, 0, -0.0015, 0.0005)
    m["mouthFunnel"] = (
        vec(lipzone, -0.22, 0, 0) * x[:, None] + vec(lip_u, 0, 0.0022, 0.0045) + vec(lip_l, 0, -0.0028, 0.0045)
    )
    m["mouthPucker"] = (
        vec(lipzone, -0.38, 0, 0) * x[:, None]
        + vec(lipzone, 0, 0, 0.0075)
        + vec(lip_u, 0, -0.0006, 0)
        + vec(lip_l, 0, 0.0008, 0)
    )
    m["mouthRollLower"] = vec(lip_l, 0, 0.0025, -0.0040)
    m["mouthRollUpper"] = vec(lip_u, 0, -0.0022, -0.0040)
    m["mouthShrugLower"] = vec(lip_l + 0.6 * gauss(x, y, 0, -0.085, 0.02, 0.015) * front, 0, 0.0030, 0.0022)
    m["mouthShrugUpper"] = vec(lip_u, 0, 0.0035, 0.0010)
    m["tongueOut"] = vec(is_["tongue"].astype(float), 0, -0.003, 0.017)
    m["cheekPuff"] = (
        vec(gauss(ax_, y, 0.040, -0.036, 0.016, 0.018) * front, 0, 0, 0.0045)
        + vec(gauss(ax_, y, 0.040, -0.036, 0.016, 0.018) * front, 0.006, 0, 0) * np.sign(x)[:, None]
    )
    for side_name, s in (("Left", 1), ("Right", -1)):
        half = side(s)
        m[f"mouth{side_name}"] = vec(lipzone, s * 0.0060, 0.0005, -0.0008)
        m[f"jaw{side_name}"] = vec(jaw, s * 0.0060, 0, 0.0008)
        # Feelings read at a glance: corners and brows travel ~8 mm at full weight (a real smile: ~10 mm).
        m[f"mouthSmile{side_name}"] = vec(corner(s), s * 0.0060, 0.0080, -0.0015) + vec(
            gauss(x, y, s * 0.040, -0.012, 0.014, 0.012) * front, 0, 0.0030, 0.0010
        )
        m[f"mouthFrown{side_name}"] = vec(corner(s), s * 0.0015, -0.0080, -0.0008)
        m[f"mouthDimple{side_name}"] = vec(corner(s), s * 0.0030, 0.0010, -0.0030)
        m[f"mouthStretch{side_name}"] = vec(corner(s, 0.013), s * 0.0060, -0.0030, -0.0020)
        m[f"mouthPress{side_name}"] = vec(lip_u * half, 0, -0.0012, -0.0015) + vec(lip_l * half, 0, 0.0015, -0.0015)
        m[f"mouthLowerDown{side_name}"] = vec(lip_l * half, 0, -0.0060, -0.0005)
        m[f"mouthUpperUp{side_name}"] = vec(lip_u * half, 0, 0.0050, 0.0005)
        m[f"noseSneer{side_name}"] = vec(
            gauss(x, y, s * 0.011, -0.016, 0.008, 0.010) * front, -s * 0.0005, 0.0030, 0.0008
        ) + vec(lip_u * half, 0, 0.0010, 0)
        m[f"cheekSquint{side_name}"] = vec(gauss(x, y, s * 0.040, -0.006, 0.014, 0.012) * front, 0, 0.0055, 0.0010)
        m[f"browDown{side_name}"] = vec(brow(s, 0.031, 0.020), -s * 0.0020, -0.0060, 0.0005)
        m[f"browOuterUp{side_name}"] = vec(brow(s, 0.046, 0.013), 0, 0.0080, 0)
        # eyes: lid sheet slides down in front of the eyeball; lower lid band rises; iris moves
        ex = s * EYE_X
        band = np.exp(-(((x - ex) / 0.0145) ** 4)) * front
        above = band * gauss(0, y, 0, EYE_Y + EYE_UP + 0.0025, 1, 0.0035)
        below = band * gauss(0, y, 0, EYE_Y - EYE_LO - 0.0022, 1, 0.0032)
        lid = is_[f"lid{side_name}"]
        iris = is_[f"iris{side_name}"].astype(float)
        d = zero.copy()
        d[lid] = blink[side_name]
        m[f"eyeBlink{side_name}"] = d + vec(above, 0, -0.0012, 0) + vec(below, 0, 0.0008, 0.0002)
        m[f"eyeSquint{side_name}"] = (
            d * 0.22 + vec(below, 0, 0.0024, 0.0006) + vec(gauss(x, y, ex, -0.004, 0.014, 0.010) * front, 0, 0.0012, 0)
        )
        m[f"eyeWide{side_name}"] = vec(above, 0, 0.0018, 0.0002) + vec(brow(s, 0.031, 0.020), 0, 0.0012, 0)
        m[f"eyeLookUp{side_name}"] = vec(iris, 0, 0.0026, 0) + vec(above, 0, 0.0008, 0)
        m[f"eyeLookDown{side_name}"] = vec(iris, 0, -0.0026, 0) + vec(above, 0, -0.0010, 0)
        m[f"eyeLookIn{side_name}"] = vec(iris, -s * 0.0042, 0, 0)
        m[f"eyeLookOut{side_name}"] = vec(iris, s * 0.0042, 0, 0)
    m["browInnerUp"] = vec(gauss(ax_, y, 0.012, 0.040, 0.014, 0.012) * front, 0, 0.0085, 0)
    out = {}
    for name in ARKIT:
        d = m[name].astype(np.float32)
        d[np.abs(d).max(1) < 2e-5] = 0  # keep the accessors sparse
        out[name] = d
    return out


def build_avatar(n_splats: int) -> dict:
    """Everything the four files need, in local head coordinates plus HEAD."""
    rng = np.random.default_rng(SEED)
    parts = Parts()
    n_front = int(round(math.sqrt(0.30 * n_splats)))
    n_side = int(round(math.sqrt(0.50 * n_splats / 5)))
    build_surface(parts, n_front, n_side, rng)
    step = 0.138 / n_front  # ~ the front grid's spacing
    blink = build_eyes(parts, step)
    build_mouth(parts, step)
    neck = n_splats - parts.count
    if neck < 200:
        raise SystemExit(f"--splats {n_splats} is too few for this head (need at least {n_splats - neck + 200})")
    build_neck(parts, neck)
    p, colour, normals, spacing, part, tris = parts.arrays()
    names = parts.names
    morphs = build_morphs(p, part, names, blink)
    # baked light (the renderer does no lighting): lambert + ambient, softer on hair
    lambert = np.clip(normals @ LIGHT, 0, 1)
    colour = np.clip(colour * (0.62 + 0.48 * lambert)[:, None], 0, 1)
    sigma = np.clip(0.62 * spacing, 0.0004, 0.006)
    neck = part == names.index("neck")
    opacity = 5.0 - 7.5 * neck * smoothstep(NECK_BOTTOM + 0.03, NECK_BOTTOM, p[:, 1])  # logit: ~0.993, rim ~0.1
    return {
        "opacity": opacity,
        "positions": p + HEAD,
        "colours": colour,
        "sigma": sigma,
        "triangles": tris,
        "morphs": morphs,
        "part": part,
        "part_names": names,
    }


# ------------------------------------------------------------------------------------------------- writers
def ply_bytes(av: dict) -> bytes:
    n = len(av["positions"])
    props = "x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3".split()
    fields = "".join(f"property float {p}\n" for p in props)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n{fields}end_header\n"
    data = np.zeros((n, len(props)), np.float32)  # xyz: zero offset from the mesh vertex; normals unused
    data[:, 6:9] = av["colours"]
    data[:, 9] = av["opacity"]  # logit
    data[:, 10:13] = np.log(av["sigma"])[:, None]
    data[:, 13] = 1.0  # rot_0 = w: identity
    return header.encode("ascii") + data.tobytes()


class Glb:
    """A minimal glTF 2.0 binary writer: one buffer, 4-byte aligned views."""

    TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4", 16: "MAT4"}
    COMPONENTS = {
        np.dtype(np.float32): 5126,
        np.dtype(np.uint8): 5121,
        np.dtype(np.uint16): 5123,
        np.dtype(np.uint32): 5125,
    }

    def __init__(self):
        self.bin, self.views, self.accessors = bytearray(), [], []

    def view(self, data: bytes, target: int | None = None) -> int:
        self.bin += b"\0" * (-len(self.bin) % 4)
        v = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if target:
            v["target"] = target
        self.bin += data
        self.views.append(v)
        return len(self.views) - 1

    def accessor(self, arr: np.ndarray, target: int | None = None, minmax: bool = False) -> int:
        arr = np.ascontiguousarray(arr)
        width = 1 if arr.ndim == 1 else arr.shape[1]
        acc = {
            "bufferView": self.view(arr.tobytes(), target),
            "componentType": self.COMPONENTS[arr.dtype],
            "count": len(arr),
            "type": self.TYPES[width],
        }
        if minmax:
            flat = arr.reshape(len(arr), -1)
            acc["min"], acc["max"] = [float(v) for v in flat.min(0)], [float(v) for v in flat.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def sparse_vec3(self, full: np.ndarray) -> int:
        idx = np.flatnonzero(np.abs(full).max(1) > 0)
        itype = np.uint16 if len(full) < 65536 else np.uint32
        self.accessors.append(
            {
                "componentType": 5126,
                "count": len(full),
                "type": "VEC3",
                "min": [float(v) for v in full.min(0)],
                "max": [float(v) for v in full.max(0)],
                "sparse": {
                    "count": len(idx),
                    "indices": {
                        "bufferView": self.view(idx.astype(itype).tobytes()),
                        "componentType": self.COMPONENTS[np.dtype(itype)],
                    },
                    "values": {"bufferView": self.view(full[idx].astype(np.float32).tobytes())},
                },
            }
        )
        return len(self.accessors) - 1

    def finish(self, doc: dict) -> bytes:
        self.bin += b"\0" * (-len(self.bin) % 4)
        doc = {
            **doc,
            "bufferViews": self.views,
            "accessors": self.accessors,
            "buffers": [{"byteLength": len(self.bin)}],
        }
        js = json.dumps(doc, separators=(",", ":")).encode()
        js += b" " * (-len(js) % 4)
        total = 12 + 8 + len(js) + 8 + len(self.bin)
        return (
            struct.pack("<4sII", b"glTF", 2, total)
            + struct.pack("<I4s", len(js), b"JSON")
            + js
            + struct.pack("<I4s", len(self.bin), b"BIN\0")
            + bytes(self.bin)
        )


def skeleton_nodes() -> list[dict]:
    """Armature root (identity) -> hip -> spine -> chest -> neck -> head, translations relative to the parent."""
    nodes, prev = [{"name": "Armature", "children": [1]}], np.zeros(3)
    for i, (name, pos) in enumerate(JOINTS):
        node = {"name": name, "translation": [float(v) for v in np.asarray(pos) - prev]}
        if i + 1 < len(JOINTS):
            node["children"] = [i + 2]
        nodes.append(node)
        prev = np.asarray(pos)
    return nodes


def skin_glb(av: dict) -> bytes:
    g, n = Glb(), len(av["positions"])
    pos = g.accessor(av["positions"].astype(np.float32), 34962, minmax=True)
    joints = np.zeros((n, 4), np.uint8)
    joints[:, 0] = HEAD_JOINT
    weights = np.zeros((n, 4), np.float32)
    weights[:, 0] = 1
    j_acc, w_acc = g.accessor(joints, 34962), g.accessor(weights, 34962)
    tris = av["triangles"].astype(np.uint16 if n < 65536 else np.uint32).ravel()
    i_acc = g.accessor(tris, 34963)
    targets = [{"POSITION": g.sparse_vec3(av["morphs"][name])} for name in ARKIT]
    ibm = np.tile(np.eye(4, dtype=np.float32), (len(JOINTS), 1, 1))
    ibm[:, 3, :3] = -np.array([p for _, p in JOINTS])  # column-major: translation in the last column
    ibm_acc = g.accessor(ibm.reshape(-1, 16))
    nodes = skeleton_nodes()
    nodes[0]["children"] = [1, len(nodes)]
    nodes.append({"name": "head_mesh", "mesh": 0, "skin": 0})
    doc = {
        "asset": {"version": "2.0", "generator": "gaussian-avatar hack/make_default_avatar.py"},
        "scene": 0,
        "scenes": [{"name": "Scene", "nodes": [0]}],
        "nodes": nodes,
        "materials": [
            {
                "name": "skin",
                "doubleSided": True,
                "pbrMetallicRoughness": {"baseColorFactor": [0.5, 0.5, 0.5, 1], "metallicFactor": 0},
            }
        ],
        "meshes": [
            {
                "name": "head",
                "primitives": [
                    {
                        "attributes": {"POSITION": pos, "JOINTS_0": j_acc, "WEIGHTS_0": w_acc},
                        "indices": i_acc,
                        "material": 0,
                        "targets": targets,
                    }
                ],
                "weights": [0] * len(ARKIT),
                "extras": {"targetNames": list(ARKIT)},
            }
        ],
        "skins": [
            {
                "name": "Armature",
                "inverseBindMatrices": ibm_acc,
                "joints": list(range(1, len(JOINTS) + 1)),
                "skeleton": 1,
            }
        ],
    }
    return g.finish(doc)


def quat(pitch, yaw, roll) -> np.ndarray:
    """Degrees about X (positive nods down), Y (positive turns to the avatar's left), Z -> glTF (x, y, z, w)."""

    def axis(a, i):
        q = np.zeros((len(a), 4))
        q[:, i], q[:, 3] = np.sin(np.radians(a) / 2), np.cos(np.radians(a) / 2)
        return q

    def mul(a, b):
        x1, y1, z1, w1 = a.T
        x2, y2, z2, w2 = b.T
        return np.stack(
            [
                w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            ],
            1,
        )

    return mul(mul(axis(yaw, 1), axis(pitch, 0)), axis(roll, 2))


def clips() -> list[tuple[str, float, dict]]:
    """12 clips in the renderer's index order: hello 2, idle 1, speak 6, think 3 (start, loop, end).

    Each is (name, seconds, {joint: f(t) -> (pitch, yaw, roll) degrees}); small angles, since the renderer moves
    every splat with the head bone (the hip swings the whole bust about a point 0.68 m below the head)."""
    sin, pi = np.sin, math.pi

    def bell(t, d):
        return sin(pi * np.clip(t / d, 0, 1)) ** 2

    def speak(d, nods, yaw, roll, phase):
        return {
            "head": lambda t: (
                2.2 * bell(t, d) * sin(2 * pi * nods * t / d + phase),
                yaw * bell(t, d),
                roll * bell(t, d) * sin(pi * t / d),
            ),
            "neck": lambda t: (1.0 * bell(t, d), 0.4 * yaw * bell(t, d), 0 * t),
            "chest": lambda t: (0.4 * bell(t, d) * sin(2 * pi * t / d), 0 * t, 0 * t),
        }

    think_pose = np.array([-5.0, 7.0, 5.0])
    ease = lambda t, d: smoothstep(0, d, t)  # noqa: E731
    return [
        ("hello_wave", 2.0, {"head": lambda t: (-3 * bell(t, 2.0), 0 * t, 5 * bell(t, 2.0) * sin(pi * t / 2.0))}),
        (
            "hello_nod",
            2.2,
            {
                "head": lambda t: (5 * bell(t, 2.2) * sin(pi * t / 1.1) ** 2, 0 * t, 0 * t),
                "neck": lambda t: (2 * bell(t, 2.2), 0 * t, 0 * t),
            },
        ),
        (
            "idle",
            6.0,
            {
                "head": lambda t: (0.8 * sin(2 * pi * t / 3), 2.5 * sin(2 * pi * t / 6), 1.5 * sin(2 * pi * t / 6 + 1)),
                "chest": lambda t: (0.5 * sin(2 * pi * t / 3 + 0.5), 0 * t, 0 * t),
                "hip": lambda t: (0 * t, 0.3 * sin(2 * pi * t / 6), 0.25 * sin(2 * pi * t / 6 + 2)),
            },
        ),
        ("speak_1", 2.0, speak(2.0, 2, 3.0, 2.0, 0.0)),
        ("speak_2", 2.0, speak(2.0, 3, -3.0, -1.5, 0.6)),
        ("speak_3", 3.0, speak(3.0, 3, 4.0, 2.5, 1.2)),
        ("speak_4", 2.4, speak(2.4, 2, -2.0, 1.5, 0.3)),
        ("speak_5", 3.0, speak(3.0, 4, 2.0, -2.0, 0.9)),
        ("speak_6", 2.6, speak(2.6, 3, -4.0, 1.0, 0.2)),
        ("think_start", 1.2, {"head": lambda t: tuple(think_pose[:, None] * ease(t, 1.2))}),
        (
            "think_loop",
            3.0,
            {"head": lambda t: tuple(think_pose[:, None] + np.array([1.2, 1.5, 0.8])[:, None] * sin(2 * pi * t / 3.0))},
        ),
        ("think_end", 1.3, {"head": lambda t: tuple(think_pose[:, None] * (1 - ease(t, 1.3)))}),
    ]


def animation_glb() -> bytes:
    g, nodes, anims = Glb(), skeleton_nodes(), []
    index = {name: i + 1 for i, (name, _) in enumerate(JOINTS)}
    for name, seconds, tracks in clips():
        t = np.linspace(0, seconds, int(round(seconds * 30)) + 1)
        t_acc = g.accessor(t.astype(np.float32), minmax=True)
        samplers, channels = [], []
        for joint in ("hip", "spine", "chest", "neck", "head"):  # every clip drives the same channels
            f = tracks.get(joint, lambda t: (0 * t, 0 * t, 0 * t))
            angles = [np.broadcast_to(a, t.shape) for a in f(t)]
            samplers.append(
                {"input": t_acc, "output": g.accessor(quat(*angles).astype(np.float32)), "interpolation": "LINEAR"}
            )
            channels.append({"sampler": len(samplers) - 1, "target": {"node": index[joint], "path": "rotation"}})
        anims.append({"name": name, "samplers": samplers, "channels": channels})
    doc = {
        "asset": {"version": "2.0", "generator": "gaussian-avatar hack/make_default_avatar.py"},
        "scene": 0,
        "scenes": [{"name": "Scene", "nodes": [0]}],
        "nodes": nodes,
        "animations": anims,
    }
    return g.finish(doc)


def write_zip(out: Path, folder: str, files: dict[str, bytes]) -> None:
    """Deterministic zip: the folder's directory entry first (the renderer needs one), fixed dates."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(f"{folder}/", ZIP_DATE)
        info.external_attr = (0o40755 << 16) | 0x10
        zf.writestr(info, b"")
        for name, data in files.items():
            info = zipfile.ZipInfo(f"{folder}/{name}", ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=6)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)


# ------------------------------------------------------------------------------------------------- preview
def render(
    av: dict, weights: dict[str, float], view: str = "front", size: int = 360, half: float = 0.16, centre=(0.0, 1.66)
) -> np.ndarray:
    """Software preview: orthographic, splats as discs drawn in *rest*-depth order like the LAM renderer sorts."""
    p = av["positions"] + sum(w * av["morphs"][k] for k, w in weights.items())
    axis = 0 if view == "side" else 2  # side: looking at the avatar's left cheek from +X
    u = -p[:, 2] if view == "side" else p[:, 0]
    rank = np.argsort(np.argsort(av["positions"][:, axis], kind="stable"), kind="stable")
    scale = size / (2 * half)
    px = (u - centre[0]) * scale + size / 2
    py = (centre[1] - p[:, 1]) * scale + size / 2
    rad = np.maximum(1.7 * av["sigma"] * scale, 0.7)
    best = np.full(size * size, -1)
    visible = (px > -rad) & (px < size + rad) & (py > -rad) & (py < size + rad) & (av["opacity"] > 0)
    bucket = np.ceil(rad).astype(int)
    for r in np.unique(bucket[visible]):  # splats of similar pixel radius together
        sel = np.flatnonzero(visible & (bucket == r))
        sx, sy, sr, sk = px[sel], py[sel], rad[sel], rank[sel]
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                ix, iy = np.round(sx).astype(int) + dx, np.round(sy).astype(int) + dy
                ok = (np.hypot(ix - sx, iy - sy) <= sr) & (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
                np.maximum.at(best, iy[ok] * size + ix[ok], sk[ok])
    img = np.ones((size * size, 3))
    order = np.argsort(rank)
    hit = best >= 0
    img[hit] = av["colours"][order[best[hit]]]
    return (img.reshape(size, size, 3) * 255).astype(np.uint8)


def png(path: Path, img: np.ndarray) -> None:
    h, w, _ = img.shape
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def previews(av: dict, prefix: str) -> list[Path]:
    states = {
        "neutral": {},
        "jawOpen": {"jawOpen": 1.0},
        "eyeBlink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
        "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
        "pucker": {"mouthPucker": 1.0},
        "funnel": {"mouthFunnel": 1.0, "jawOpen": 0.2},
        "brows": {"browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0},
        "sad": {"browInnerUp": 0.6, "mouthFrownLeft": 0.45, "mouthFrownRight": 0.45, "mouthShrugLower": 0.2},
        "angry": {"browDownLeft": 0.65, "browDownRight": 0.65, "noseSneerLeft": 0.35, "noseSneerRight": 0.35},
        "look": {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0, "eyeLookUpLeft": 0.5, "eyeLookUpRight": 0.5},
    }
    written = []
    for name, w in states.items():
        front = render(av, w)
        side = render(av, w, "side")
        mouth = render(av, w, size=360, half=0.045, centre=(0.0, 1.645))
        eyes = render(av, w, size=360, half=0.045, centre=(0.0, 1.695))
        path = Path(f"{prefix}_{name}.png")
        png(path, np.concatenate([front, side, mouth, eyes], axis=1))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("avatars/default.zip"))
    ap.add_argument("--splats", type=int, default=12000, help="exact splat/vertex count (3000..150000)")
    ap.add_argument("--preview", metavar="PREFIX", help="also write PREFIX_<state>.png software previews")
    args = ap.parse_args(argv)
    if not 3000 <= args.splats <= 150000:
        ap.error("--splats must be within 3000..150000")
    av = build_avatar(args.splats)
    folder = args.out.stem
    files = {
        "offset.ply": ply_bytes(av),
        "skin.glb": skin_glb(av),
        "animation.glb": animation_glb(),
        "vertex_order.json": json.dumps(list(range(args.splats))).encode(),
    }
    write_zip(args.out, folder, files)
    sizes = ", ".join(f"{k} {len(v) / 1e6:.2f} MB" for k, v in files.items())
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): folder {folder}/, {args.splats} splats, "
        f"{len(ARKIT)} ARKit morph targets, {len(JOINTS)} joints, {len(clips())} clips; {sizes}"
    )
    if args.preview:
        for path in previews(av, args.preview):
            print(f"preview {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
