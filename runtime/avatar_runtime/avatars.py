"""LAM avatar zips (DESIGN.md §5): validate one without unpacking its buffers, list a directory of them.

What the npm LAM renderer (gaussian-splat-renderer-for-lam 0.0.8, src/render.ts) needs of a zip, checked here:
- it takes the zip's *last directory entry* as the avatar folder and reads `<folder>/skin.glb`, `animation.glb`,
  `vertex_order.json` and `offset.ply` from it (macOS junk is not skipped by the renderer, only by this check);
- skin.glb must hold no animations (its loader returns the clips instead of the scene when a GLB has any), one
  skinned mesh with JOINTS_0/WEIGHTS_0 and morph targets named in mesh.extras.targetNames, joints `hip` and `head`;
- splat i of offset.ply sits on mesh vertex i, so the counts must match; all morph targets of all vertices live in
  one 4096x2048 texture;
- animation.glb's clips are split by index: hello 2, idle 1, speak 6, think 3 — so it needs at least 12.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NoReturn

from avatar_runtime.protocol import ARKIT_BLENDSHAPES

REQUIRED_FILES = ("offset.ply", "skin.glb", "animation.glb", "vertex_order.json")
PLY_PROPERTIES = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip
REQUIRED_JOINTS = ("hip", "head")
CLIP_SPLIT = (("hello", 2), ("idle", 1), ("speak", 6), ("think", 3))  # the renderer's animationConfig, in order
MIN_CLIPS = sum(n for _, n in CLIP_SPLIT)
MORPH_TEXELS = 4096 * 2048  # vertices * (morph targets + 1) must fit the renderer's flameModelTexture
_PLY_TYPES = {  # PLY scalar type -> bytes
    name: size
    for size, names in ((1, "char uchar int8 uint8"), (2, "short ushort int16 uint16"),
                        (4, "int uint int32 uint32 float float32"), (8, "double float64"))
    for name in names.split()
}  # fmt: skip
_ARKIT = frozenset(ARKIT_BLENDSHAPES)


Fail = Callable[[str], NoReturn]


class AvatarError(ValueError):
    """An avatar zip that the LAM renderer cannot load; the message names the file and the problem."""


@dataclass(frozen=True)
class AvatarInfo:
    name: str  # file stem: the URL /avatars/<name>.zip
    path: Path
    folder: str  # the one directory inside the zip
    splats: int
    vertices: int
    morph_targets: list[str]
    joints: list[str]
    clips: list[str]
    bytes: int


@dataclass(frozen=True)
class AvatarEntry:
    name: str
    path: Path
    ok: bool
    error: str | None = None
    info: AvatarInfo | None = field(default=None, repr=False)


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _read_prefix(zf: zipfile.ZipFile, member: str, limit: int) -> bytes:
    with zf.open(member) as fh:
        return fh.read(limit)


def _ply_header(zf: zipfile.ZipFile, member: str, fail: Fail) -> int:
    """Parse offset.ply's header; returns the splat count."""
    head = _read_prefix(zf, member, 16384)
    end = head.find(b"end_header\n")
    if not head.startswith(b"ply\n") or end < 0:
        fail("offset.ply is not a PLY file (no 'ply' magic or no end_header in the first 16 KiB)")
    lines = head[:end].decode("ascii", "replace").splitlines()[1:]
    fmt, count, props, element = None, None, [], None
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1] if len(words) > 1 else ""
        elif words[0] == "element":
            element = words[1] if len(words) > 1 else ""
            if element == "vertex":
                if len(words) < 3 or not words[2].isdigit():
                    fail(f"offset.ply has a malformed element line: {line!r}")
                count = int(words[2])
            elif count is not None:
                fail(f"offset.ply has an extra element {element!r} after the vertices")
        elif words[0] == "property" and element == "vertex":
            if len(words) != 3 or words[1] not in _PLY_TYPES:
                fail(f"offset.ply has an unsupported vertex property: {line!r}")
            props.append((words[2], _PLY_TYPES[words[1]]))
    if fmt != "binary_little_endian":
        fail(f"offset.ply is {fmt or 'of unknown format'}; the renderer reads binary_little_endian only")
    if count is None:
        fail("offset.ply has no 'element vertex N' line")
    names = [n for n, _ in props]
    missing = [p for p in PLY_PROPERTIES if p not in names]
    if missing:
        fail(f"offset.ply lacks the 3DGS properties {', '.join(missing)}")
    data = zf.getinfo(member).file_size - (end + len(b"end_header\n"))
    stride = sum(size for _, size in props)
    if data != count * stride:
        fail(
            f"offset.ply's header says {count} splats of {stride} bytes ({count * stride} bytes) "
            f"but {data} bytes follow it"
        )
    return count


def _glb_json(zf: zipfile.ZipFile, member: str, fail: Fail) -> dict:
    """The JSON chunk of a GLB (its binary chunk is never read)."""
    fname = member.rsplit("/", 1)[-1]
    size = zf.getinfo(member).file_size
    with zf.open(member) as fh:
        header = fh.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            fail(f"{fname} is not a GLB file (no 'glTF' magic)")
        _, version, length, chunk_len, chunk_type = struct.unpack("<4sIII4s", header)
        if version != 2:
            fail(f"{fname} is glTF version {version}; version 2 is required")
        if length != size:
            fail(f"{fname}'s header says {length} bytes but the file has {size}")
        if chunk_type != b"JSON" or chunk_len > size - 20:
            fail(f"{fname}'s first chunk is not a JSON chunk")
        try:
            doc = json.loads(fh.read(chunk_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            fail(f"{fname}'s JSON chunk does not parse: {e}")
    if not isinstance(doc, dict) or not str(doc.get("asset", {}).get("version", "")).startswith("2"):
        fail(f"{fname}'s JSON has no asset.version 2.x")
    return doc


def _node_names(doc: dict) -> list[str]:
    return [str(n.get("name", "")) for n in doc.get("nodes", [])]


def _check_skin(doc: dict, fail: Fail) -> tuple[int, list[str], list[str]]:
    """skin.glb: returns (vertex count, morph target names, joint names)."""
    if doc.get("animations"):
        fail("skin.glb holds animations; the renderer then loads them instead of the mesh (put clips in animation.glb)")
    nodes, meshes = doc.get("nodes", []), doc.get("meshes", [])
    skinned = [n for n in nodes if "mesh" in n and "skin" in n]
    if len(skinned) != 1:
        fail(f"skin.glb has {len(skinned)} skinned meshes; exactly one is required")
    node = skinned[0]
    try:
        mesh, skin = meshes[node["mesh"]], doc["skins"][node["skin"]]
        prims = mesh["primitives"]
        accessors = doc["accessors"]
        names = _node_names(doc)
        joints = [names[j] for j in skin["joints"]]
    except (KeyError, IndexError, TypeError) as e:
        fail(f"skin.glb's skinned mesh has a dangling reference ({e!r})")
    if len(prims) != 1:
        fail(f"skin.glb's skinned mesh has {len(prims)} primitives; exactly one is required")
    prim = prims[0]
    attrs = prim.get("attributes", {})
    for attr in ("POSITION", "JOINTS_0", "WEIGHTS_0"):
        if attr not in attrs:
            fail(f"skin.glb's skinned mesh has no {attr} attribute")
    if prim.get("mode", 4) != 4:
        fail(f"skin.glb's skinned mesh has primitive mode {prim['mode']}; triangles (4) are required")
    try:
        vertices = int(accessors[attrs["POSITION"]]["count"])
    except (IndexError, KeyError, TypeError, ValueError):
        fail("skin.glb's POSITION accessor is missing or has no count")
    targets = prim.get("targets", [])
    target_names = (mesh.get("extras") or {}).get("targetNames") or (prim.get("extras") or {}).get("targetNames")
    if not targets:
        fail("skin.glb's mesh has no morph targets; ARKit blendshapes (at least jawOpen) are required")
    if not isinstance(target_names, list) or len(target_names) != len(targets):
        fail(
            f"skin.glb's mesh has {len(targets)} morph targets but "
            f"{len(target_names) if isinstance(target_names, list) else 'no'} names in extras.targetNames"
        )
    bad = [str(n) for n in target_names if n not in _ARKIT]
    if bad:
        fail(f"skin.glb has morph targets that are not ARKit blendshape names: {', '.join(bad[:8])}")
    if len(set(target_names)) != len(target_names):
        fail("skin.glb has duplicate morph target names")
    if "jawOpen" not in target_names:
        fail("skin.glb has no jawOpen morph target; the mouth could not move")
    missing = [j for j in REQUIRED_JOINTS if j not in joints]
    if missing:
        fail(f"skin.glb's skeleton has no joint named {' or '.join(repr(m) for m in missing)}")
    if vertices * (len(targets) + 1) > MORPH_TEXELS:
        fail(
            f"skin.glb's {vertices} vertices x ({len(targets)} morph targets + 1) exceed the renderer's "
            f"4096x2048 morph texture"
        )
    return vertices, list(target_names), joints


def _check_animation(doc: dict, skin_nodes: set[str], fail: Fail) -> list[str]:
    anims = doc.get("animations") or []
    if len(anims) < MIN_CLIPS:
        split = ", ".join(f"{name} {n}" for name, n in CLIP_SPLIT)
        fail(
            f"animation.glb has {len(anims)} clips; the renderer splits clips by index ({split}) and needs "
            f"at least {MIN_CLIPS}"
        )
    names = _node_names(doc)
    targets = set()
    for anim in anims:
        for ch in anim.get("channels", []):
            node = ch.get("target", {}).get("node")
            if isinstance(node, int) and 0 <= node < len(names):
                targets.add(names[node])
    if not targets & skin_nodes:
        fail("animation.glb's clips animate no node of skin.glb (channels are bound by node name)")
    return [str(a.get("name", f"clip{i}")) for i, a in enumerate(anims)]


def inspect_avatar(path: str | Path) -> AvatarInfo:
    """Validate a LAM avatar zip; raises AvatarError naming the file and the first problem found."""
    path = Path(path)

    def fail(problem: str) -> NoReturn:
        raise AvatarError(f"{path}: {problem}")

    if not path.is_file():
        fail("no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        fail(f"not a valid zip file ({e})")
    with zf:
        entries = [n for n in zf.namelist() if not _is_junk(n)]
        tops = sorted({n.split("/", 1)[0] for n in entries})
        if len(tops) != 1:
            fail(
                f"has {len(tops)} top-level entries ({', '.join(tops[:5]) or 'none'}); expected one folder "
                f"holding {', '.join(REQUIRED_FILES)}"
            )
        folder = tops[0]
        if all(n == folder for n in entries):
            fail(f"its only top-level entry {folder!r} is a file, not a folder holding {', '.join(REQUIRED_FILES)}")
        members = set(entries)
        missing = [f for f in REQUIRED_FILES if f"{folder}/{f}" not in members]
        if missing:
            fail(f"{folder}/ lacks {', '.join(missing)}")
        dirs = [n for n in zf.namelist() if n.endswith("/")]
        if not dirs:
            fail(
                f"has no directory entry '{folder}/'; the LAM renderer finds the avatar folder by its directory "
                f"entry (zip it with directory entries, e.g. `zip -r`)"
            )
        if dirs[-1] != f"{folder}/":
            fail(
                f"its last directory entry is {dirs[-1]!r}; the LAM renderer takes the last directory entry "
                f"as the avatar folder, so it must be '{folder}/'"
            )
        splats = _ply_header(zf, f"{folder}/offset.ply", fail)
        skin = _glb_json(zf, f"{folder}/skin.glb", fail)
        vertices, morphs, joints = _check_skin(skin, fail)
        if splats != vertices:
            fail(f"offset.ply has {splats} splats but skin.glb's mesh has {vertices} vertices")
        clips = _check_animation(_glb_json(zf, f"{folder}/animation.glb", fail), set(_node_names(skin)), fail)
        try:
            order = json.loads(zf.read(f"{folder}/vertex_order.json"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            fail(f"vertex_order.json does not parse: {e}")
        if not isinstance(order, list) or len(order) != vertices or sorted(order) != list(range(vertices)):
            fail(f"vertex_order.json is not a permutation of 0..{vertices - 1}")
    return AvatarInfo(
        name=path.stem,
        path=path,
        folder=folder,
        splats=splats,
        vertices=vertices,
        morph_targets=morphs,
        joints=joints,
        clips=clips,
        bytes=path.stat().st_size,
    )


def list_avatars(directory: str | Path) -> list[AvatarEntry]:
    """Every *.zip in directory, sorted by name, each inspected; broken ones carry their error (never raises)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob("*.zip"), key=lambda p: p.stem):
        try:
            entries.append(AvatarEntry(path.stem, path, True, None, inspect_avatar(path)))
        except AvatarError as e:
            entries.append(AvatarEntry(path.stem, path, False, str(e), None))
        except Exception as e:  # a listing must survive any malformed file
            entries.append(AvatarEntry(path.stem, path, False, f"{path}: unreadable ({e!r})", None))
    return entries
