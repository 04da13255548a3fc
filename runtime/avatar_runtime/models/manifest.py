"""`<model_dir>/manifest.json`: what `models pull` put in the cache, so `verify` and later pulls can check it.

Per model: where it came from (source, repo or URL, revision, resolved commit), every file with size and sha256
(and, for archives that were unpacked, the archive's own digest and which files came out of it), when it was
fetched, and whether the pull finished. Written atomically (temporary file + rename) after every file, so an
interrupted pull keeps what it finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .http import ModelCacheError
from .specs import MANIFEST_NAME, ModelSpec

VERSION = 1


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    size: int
    sha256: str
    git_oid: str | None = None
    from_archive: str | None = None  # the unpacked archive this file came out of


class ModelRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: str
    repo: str | None = None
    url: str | None = None
    revision: str | None = None
    commit: str | None = None
    fetched_at: str | None = None
    complete: bool = False
    files: dict[str, FileRecord] = Field(default_factory=dict)
    archives: dict[str, FileRecord] = Field(default_factory=dict)  # fetched, verified, unpacked, then removed

    def matches(self, spec: ModelSpec) -> bool:
        """Whether this record describes the model the spec asks for (same origin and revision)."""
        return (self.source, self.repo, self.url, self.revision) == (spec.source, spec.repo, spec.url, spec.revision)

    @classmethod
    def start(cls, spec: ModelSpec) -> ModelRecord:
        return cls(source=spec.source, repo=spec.repo, url=spec.url, revision=spec.revision)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int = VERSION
    models: dict[str, ModelRecord] = Field(default_factory=dict)


class ManifestError(ModelCacheError):
    pass


def manifest_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / MANIFEST_NAME


def load(model_dir: str | Path) -> Manifest:
    """The cache's manifest (empty when there is none yet)."""
    path = manifest_path(model_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Manifest()
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return Manifest.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ManifestError(f"{path} is damaged ({first}); delete it and run `avatar-runtime models pull`") from None


def save(model_dir: str | Path, manifest: Manifest) -> None:
    path = manifest_path(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = manifest.model_dump_json(indent=2, exclude_none=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
