"""The published LAM checkpoint ↔ our module keys, strict loading, and the hub archive it ships in.

The released file `LAM_audio2exp_streaming.tar` is a gzip tar archive holding
`pretrained_models/lam_audio2exp_streaming.tar`, a `torch.save` of `{"state_dict": ...}` whose keys may start
with `module.` (saved from DataParallel) and `backbone.` (the `DefaultEstimator` wrapper). Its wav2vec2
positional convolution uses the legacy weight-norm names `weight_g`/`weight_v`; current torch registers the
same two tensors as `parametrizations.weight.original0/original1`. Everything else matches one to one.
"""

from __future__ import annotations

import logging
import os
import pickle
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import torch
from torch import nn

log = logging.getLogger(__name__)

ARCHIVE_NAME = "LAM_audio2exp_streaming.tar"  # the hub file, as the model cache stores it
CHECKPOINT_MEMBER = "pretrained_models/lam_audio2exp_streaming.tar"  # the torch checkpoint inside it
PUBLISHED_PREFIXES = ("module.", "backbone.")

# Legacy weight-norm names (as stored) → parametrization names (as torch >= 2.1 registers them).
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


class CheckpointMismatch(RuntimeError):
    """The checkpoint does not fit the network; the message lists the missing and unexpected keys."""


def published_key_layout(model: nn.Module, prefix: str = "module.backbone.") -> dict[str, torch.Tensor]:
    """Our state dict under the published names (legacy weight-norm names, `prefix` in front of every key).

    The inverse of what `load_checkpoint` undoes; used to write checkpoints in the released layout.
    """
    out = {}
    for key, value in model.state_dict().items():
        for legacy, current in _WEIGHT_NORM.items():
            if key.endswith("." + current):
                key = key[: -len(current)] + legacy
        out[prefix + key] = value
    return out


def to_model_keys(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A published state dict renamed to `model`'s keys: wrapper prefixes stripped, weight-norm names mapped
    to whichever form this torch registers (both exist in the wild)."""
    expected = set(model.state_dict())
    out = {}
    for key, value in state.items():
        for prefix in PUBLISHED_PREFIXES:
            key = key.removeprefix(prefix)
        if key not in expected:
            for legacy, current in _WEIGHT_NORM.items():
                if key.endswith("." + legacy) and key[: -len(legacy)] + current in expected:
                    key = key[: -len(legacy)] + current
        out[key] = value
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a torch checkpoint file (or the file itself, if it is a bare state dict)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Training checkpoints may pickle trainer objects beside the weights. The file comes from the model
        # cache, which `models pull` filled and checksummed, so a full unpickle is an accepted risk here.
        log.warning("LAM checkpoint %s needs full unpickling (%s); loading it anyway", path, str(exc)[:200])
        blob = torch.load(path, map_location="cpu", weights_only=False)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatch(f"{path} holds no state dict of tensors")
    return state


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a published-layout checkpoint into `model` strictly; any key or shape mismatch is an error that
    names the keys (so a wrong architecture or file is obvious, never a silently half-loaded model)."""
    state = to_model_keys(read_state_dict(path), model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    if missing or unexpected or wrong:
        found = (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        parts = [f"{label} ({len(k)}): {', '.join(k[:8])}{' …' if len(k) > 8 else ''}" for label, k in found if k]
        raise CheckpointMismatch(f"checkpoint {path} does not match the LAM network: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def extract_checkpoint(archive: str | Path, directory: str | Path) -> Path:
    """Extract the torch checkpoint from the hub archive into `directory` (only that member; atomically).

    The member must be a regular file whose normalised path stays inside `directory`; links, devices and
    anything else in the archive are never written.
    """
    archive, directory = Path(archive), Path(directory)
    with tarfile.open(archive, "r:*") as tar:
        member = next((m for m in tar.getmembers() if _clean(m.name) == CHECKPOINT_MEMBER), None)
        if member is None or not member.isfile():
            raise CheckpointMismatch(f"{archive} does not contain {CHECKPOINT_MEMBER} as a regular file")
        target = directory / CHECKPOINT_MEMBER
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has a payload
        # Write beside the target and rename: another process loading the same cache never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".extract-")
        try:
            with os.fdopen(fd, "wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def _clean(name: str) -> str:
    """Archive member name normalised ('./a//b' → 'a/b'); '' for anything absolute or climbing out."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        return ""
    return "/".join(p for p in path.parts if p not in (".", ""))


def checkpoint_path(model_dir: str | Path) -> Path | None:
    """The torch checkpoint in the `lam-audio2exp` cache directory, extracting it from the archive if only the
    archive is there; None when neither is present."""
    directory = Path(model_dir)
    extracted = directory / CHECKPOINT_MEMBER
    if extracted.is_file():
        return extracted
    archive = directory / ARCHIVE_NAME
    if not archive.is_file():
        return None
    if not tarfile.is_tarfile(archive):  # someone stored the inner checkpoint under the hub name
        return archive
    log.info("extracting %s from %s", CHECKPOINT_MEMBER, archive)
    return extract_checkpoint(archive, directory)
