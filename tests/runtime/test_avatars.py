"""LAM avatar zips: the real p2-1 export, the generated default avatar, and broken variants (no mocks)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from avatar_runtime.avatars import AvatarError, inspect_avatar, list_avatars
from avatar_runtime.protocol import ARKIT_BLENDSHAPES

REPO = Path(__file__).resolve().parents[2]
P21 = REPO.parent / "shared/fixtures/lam/p2-1.zip"
SCRIPT = REPO / "hack/make_default_avatar.py"
needs_p21 = pytest.mark.skipif(not P21.is_file(), reason=f"the real LAM export fixture {P21} is absent")


# ------------------------------------------------------------------------------------------------- helpers
def read_glb(data: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    assert jtype == b"JSON"
    doc = json.loads(data[20 : 20 + jlen])
    blen, btype = struct.unpack_from("<I4s", data, 20 + jlen)
    assert btype == b"BIN\0"
    return doc, data[28 + jlen : 28 + jlen + blen]


def write_glb(doc: dict, binary: bytes) -> bytes:
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    total = 28 + len(js) + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON")
        + js
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )


def accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """Decode a float/int accessor, sparse ones included."""
    acc = doc["accessors"][index]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc["type"]]
    dtypes = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}

    def view(i, dtype, count):
        bv = doc["bufferViews"][i]
        return np.frombuffer(binary, dtype, count, bv.get("byteOffset", 0))

    dtype = dtypes[acc["componentType"]]
    if "bufferView" in acc:
        out = view(acc["bufferView"], dtype, acc["count"] * width).reshape(-1, width).copy()
    else:
        out = np.zeros((acc["count"], width), dtype)
    if "sparse" in acc:
        sp = acc["sparse"]
        idx = view(sp["indices"]["bufferView"], dtypes[sp["indices"]["componentType"]], sp["count"])
        out[idx] = view(sp["values"]["bufferView"], dtype, sp["count"] * width).reshape(-1, width)
    return out


def rebuild(src: Path, dst: Path, drop=(), replace=None, extra=()) -> Path:
    """Copy a zip entry by entry (stored, for speed), dropping, replacing (name -> fn(bytes)) or adding entries."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            base = info.filename.rsplit("/", 1)[-1] or info.filename
            if base in drop:
                continue
            data = zin.read(info)
            zout.writestr(info.filename, replace[base](data) if base in replace else data)
        for name, data in extra:
            zout.writestr(name, data)
    return dst


def expect_error(path: Path, *fragments: str) -> str:
    with pytest.raises(AvatarError) as exc:
        inspect_avatar(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def default_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "default.zip"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert str(out) in run.stdout
    return out


@pytest.fixture(scope="module")
def default_mesh(default_zip) -> dict:
    with zipfile.ZipFile(default_zip) as zf:
        doc, binary = read_glb(zf.read("default/skin.glb"))
    prim = doc["meshes"][0]["primitives"][0]
    names = doc["meshes"][0]["extras"]["targetNames"]
    return {
        "rest": accessor(doc, binary, prim["attributes"]["POSITION"]).astype(float),
        "morphs": {
            n: accessor(doc, binary, t["POSITION"]).astype(float) for n, t in zip(names, prim["targets"], strict=True)
        },
    }


# ------------------------------------------------------------------------------------------------- p2-1
@needs_p21
def test_real_lam_export_inspects_ok():
    info = inspect_avatar(P21)
    assert (info.name, info.folder) == ("p2-1", "p2-1")
    assert info.splats == info.vertices == 20018
    assert len(info.morph_targets) == 51 and "jawOpen" in info.morph_targets
    assert set(info.morph_targets) <= set(ARKIT_BLENDSHAPES) and "tongueOut" not in info.morph_targets
    assert {"hip", "head"} <= set(info.joints) and len(info.joints) == 262
    assert len(info.clips) == 12
    assert info.bytes == P21.stat().st_size


# ------------------------------------------------------------------------------------------------- default
def test_default_avatar_inspects_ok(default_zip):
    info = inspect_avatar(default_zip)
    assert info.folder == "default"
    assert info.splats == info.vertices == 12000
    assert info.morph_targets == list(ARKIT_BLENDSHAPES)
    assert info.joints[0] == "hip" and "head" in info.joints
    assert len(info.clips) == 12
    assert info.bytes < 2_000_000
    with zipfile.ZipFile(default_zip) as zf:
        assert [i.filename for i in zf.infolist() if i.is_dir()] == ["default/"]
        assert json.loads(zf.read("default/vertex_order.json")) == list(range(12000))
        anim, _ = read_glb(zf.read("default/animation.glb"))
        skin, _ = read_glb(zf.read("default/skin.glb"))
    assert "animations" not in skin
    animated = {anim["nodes"][c["target"]["node"]]["name"] for a in anim["animations"] for c in a["channels"]}
    assert {"hip", "head"} <= animated <= {n["name"] for n in skin["nodes"]}


def test_default_avatar_is_deterministic(default_zip, tmp_path):
    again = tmp_path / "default.zip"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(again)], check=True, capture_output=True, timeout=60)
    assert again.read_bytes() == default_zip.read_bytes()


def test_default_avatar_pose_like_lam(default_mesh):
    rest = default_mesh["rest"]
    assert 1.40 < rest[:, 1].min() and rest[:, 1].max() < 1.85  # Y-up metres, a head where p2-1's is (1.49-1.80)
    nose = rest[np.argmax(rest[:, 2])]
    assert nose[2] > 0.09 and abs(nose[0]) < 0.005 and 1.62 < nose[1] < 1.70  # facing +Z


def test_jaw_open_moves_the_lower_face_only(default_mesh):
    rest, jaw = default_mesh["rest"], default_mesh["morphs"]["jawOpen"]
    moved = np.linalg.norm(jaw, axis=1)
    lower_face = (rest[:, 1] < 1.64) & (rest[:, 1] > 1.55) & (rest[:, 2] > 0.03)
    assert moved[lower_face].max() >= 0.01
    chin = lower_face & (moved > 0.005)
    assert jaw[chin, 1].mean() < 0 and jaw[chin, 2].mean() < 0  # down and back
    assert moved[rest[:, 1] > 1.70].max() == 0  # eyes, brows, top of the head stay
    upper_lip = (np.abs(rest[:, 0]) < 0.015) & (rest[:, 1] > 1.636) & (rest[:, 1] < 1.66) & (rest[:, 2] > 0.05)
    assert upper_lip.sum() > 20 and moved[upper_lip].max() < 0.002  # the upper lip stays: the mouth opens


def test_eye_blink_left_moves_the_left_eye_only(default_mesh):
    rest = default_mesh["rest"]
    for name, side in (("eyeBlinkLeft", 1), ("eyeBlinkRight", -1)):  # ARKit Left = the avatar's left = +X
        delta = default_mesh["morphs"][name]
        moved = np.linalg.norm(delta, axis=1) > 1e-4
        assert moved.sum() > 50
        assert (side * rest[moved, 0] > 0.01).all()
        assert ((rest[moved, 1] > 1.68) & (rest[moved, 1] < 1.73) & (rest[moved, 2] > 0.05)).all()
        assert delta[moved, 1].min() < -0.008  # the lid comes down over the eye


# ------------------------------------------------------------------------------------------------- broken
@needs_p21
def test_missing_skin_glb(tmp_path):
    expect_error(rebuild(P21, tmp_path / "noskin.zip", drop={"skin.glb"}), "p2-1/ lacks skin.glb")


@needs_p21
def test_splat_count_mismatch(tmp_path):
    def drop_one(ply: bytes) -> bytes:
        return ply.replace(b"element vertex 20018\n", b"element vertex 20017\n")[:-68]

    expect_error(
        rebuild(P21, tmp_path / "short.zip", replace={"offset.ply": drop_one}),
        "offset.ply has 20017 splats but skin.glb's mesh has 20018 vertices",
    )


@needs_p21
def test_non_arkit_morph_name(tmp_path):
    def rename(glb: bytes) -> bytes:
        doc, binary = read_glb(glb)
        doc["meshes"][0]["extras"]["targetNames"][0] = "grinWide"
        return write_glb(doc, binary)

    expect_error(rebuild(P21, tmp_path / "grin.zip", replace={"skin.glb": rename}), "not ARKit", "grinWide")


def test_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip file")
    expect_error(bad, "not a valid zip")


@needs_p21
def test_two_top_level_folders(tmp_path):
    zipped = rebuild(P21, tmp_path / "two.zip", extra=[("other/", b""), ("other/readme.txt", b"hi")])
    expect_error(zipped, "2 top-level entries", "other", "p2-1")


@needs_p21
def test_zip_without_directory_entry(tmp_path):
    with zipfile.ZipFile(P21) as zin, zipfile.ZipFile(tmp_path / "nodir.zip", "w") as zout:
        for info in zin.infolist():
            if not info.is_dir():
                zout.writestr(info.filename, zin.read(info))
    expect_error(tmp_path / "nodir.zip", "no directory entry 'p2-1/'")


@needs_p21
def test_list_avatars(tmp_path, default_zip):
    shutil.copy(P21, tmp_path / "p2-1.zip")
    shutil.copy(default_zip, tmp_path / "default.zip")
    (tmp_path / "broken.zip").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("not an avatar")
    entries = list_avatars(tmp_path)
    assert [e.name for e in entries] == ["broken", "default", "p2-1"]
    broken, default, p21 = entries
    assert not broken.ok and broken.info is None and "not a valid zip" in broken.error
    assert default.ok and default.error is None and default.info.splats == 12000
    assert p21.ok and p21.info.vertices == 20018
    assert list_avatars(tmp_path / "missing") == []
