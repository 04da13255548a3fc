"""What the cache holds for a model, judged from the manifest and file sizes alone (no hashing, no network).

Offline `pull` and `list` use it as is; `verify` adds a full re-hash of every file on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .manifest import ModelRecord
from .specs import ModelSpec

Status = Literal["ok", "missing", "incomplete", "stale"]


@dataclass
class CacheState:
    status: Status
    missing: list[str] = field(default_factory=list)  # paths (relative to the model directory) not in place
    wrong: list[str] = field(default_factory=list)  # present, but not what the manifest or the config says
    note: str = ""  # why, in a few words, when not ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def expected_without_record(spec: ModelSpec) -> list[str]:
    """What the cache should hold when nothing was pulled yet: the named files, or the whole repo."""
    return spec.exact_files() or [f"(every file of {spec.origin()})"]


def cache_state(spec: ModelSpec, record: ModelRecord | None, directory: Path) -> CacheState:
    if record is None:
        return CacheState("missing", expected_without_record(spec), note="never pulled")
    if not record.matches(spec):
        cached = record.url or f"{record.repo}@{record.revision}"
        return CacheState("stale", expected_without_record(spec), note=f"the cache holds {cached}")
    missing, wrong = [], []
    for path, entry in sorted(record.files.items()):
        target = directory / path
        if not target.is_file():
            missing.append(path)
        elif target.stat().st_size != entry.size:
            wrong.append(f"{path} (size {target.stat().st_size}, expected {entry.size})")
    for path in spec.exact_files():
        if path not in record.files and path not in record.archives:
            missing.append(path)
    for path, pin in _pins(spec, record):
        entry = record.files.get(path) or record.archives.get(path)
        if entry is not None and entry.sha256 != pin:
            wrong.append(f"{path} (config pins sha256 {pin}, cached {entry.sha256})")
    if not record.complete:
        return CacheState("incomplete", missing, wrong, note="the last pull did not finish")
    if missing or wrong:
        return CacheState("missing" if not wrong else "stale", missing, wrong, note="files changed since the pull")
    return CacheState("ok")


def _pins(spec: ModelSpec, record: ModelRecord) -> list[tuple[str, str]]:
    known = set(record.files) | set(record.archives)
    return [(path, pin) for path in sorted(known) if (pin := spec.pinned_sha256(path)) is not None]
