"""One file from a hub into the cache: resumable, retried, hashed, verified, then atomically renamed into place.

Bytes go to `<dest>.part`; a later try (or a later `models pull` after Ctrl-C) continues with an HTTP Range
request from the `.part` size. The hash is computed while the bytes arrive (a resumed download first re-hashes
the bytes already on disk), and only a file whose size and hash match what the hub publishes (or the config pins)
is renamed to its final name: a file at its final path is always a verified one.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from .http import ModelCacheError, RetryableStatus, RetryPolicy, check_status, with_retries
from .hubs import RemoteFile
from .progress import ProgressFactory, silent

CHUNK = 1 << 20


class ChecksumMismatch(ModelCacheError):
    """A fetched (or cached) file is not the one the hub or the config describes."""

    def __init__(self, path: Path | str, kind: str, expected: object, actual: object, deleted: bool = True) -> None:
        self.path, self.kind, self.expected, self.actual = Path(path), kind, expected, actual
        tail = "; the download was deleted" if deleted else ""
        super().__init__(f"{path}: {kind} mismatch: expected {expected}, got {actual}{tail}")


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    git_oid: str | None = None  # sha1 of the git blob, computed when the size was known up front


class Hasher:
    """sha256 of a byte stream, plus its git blob id when the total size is known before the first byte."""

    def __init__(self, git_size: int | None = None) -> None:
        self._git_size = git_size
        self.reset()

    def reset(self) -> None:
        self.position = 0
        self._sha256 = hashlib.sha256()
        self._git = None
        if self._git_size is not None:
            self._git = hashlib.sha1(usedforsecurity=False)
            self._git.update(b"blob %d\0" % self._git_size)

    def update(self, data: bytes) -> None:
        self._sha256.update(data)
        if self._git is not None:
            self._git.update(data)
        self.position += len(data)

    def digest(self) -> Digest:
        git = self._git.hexdigest() if self._git is not None and self.position == self._git_size else None
        return Digest(self.position, self._sha256.hexdigest(), git)


def hash_file(
    path: Path, progress: ProgressFactory = silent, label: str | None = None, git_size: int | None = None
) -> Digest:
    """Re-read and hash a whole file (verify, adopting files already on disk)."""
    hasher = Hasher(git_size)
    _hash_prefix(path, hasher, None, progress, label or str(path))
    return hasher.digest()


def _hash_prefix(path: Path, hasher: Hasher, limit: int | None, progress: ProgressFactory, label: str) -> None:
    total = path.stat().st_size if limit is None else limit
    bar = progress(label, total)
    try:
        with path.open("rb") as f:
            while limit is None or hasher.position < limit:
                want = CHUNK if limit is None else min(CHUNK, limit - hasher.position)
                data = f.read(want)
                if not data:
                    break
                hasher.update(data)
                bar.update(len(data))
    finally:
        bar.close()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def check_digest(path: Path, remote: RemoteFile, digest: Digest) -> None:
    """Raise ChecksumMismatch unless `digest` matches everything the hub/config says about the file."""
    if remote.size is not None and digest.size != remote.size:
        raise ChecksumMismatch(path, "size", f"{remote.size} bytes", f"{digest.size} bytes", deleted=False)
    if remote.sha256 is not None and digest.sha256 != remote.sha256:
        raise ChecksumMismatch(path, "sha256", remote.sha256, digest.sha256, deleted=False)
    if remote.git_oid is not None and digest.git_oid != remote.git_oid:
        raise ChecksumMismatch(path, "git blob id", remote.git_oid, digest.git_oid, deleted=False)


_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes\s+\*/(\d+)$")


def download(
    client: httpx.Client,
    remote: RemoteFile,
    dest: Path,
    *,
    headers: dict[str, str],
    policy: RetryPolicy,
    progress: ProgressFactory = silent,
    label: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Digest:
    """Fetch `remote` to `dest` (resuming `<dest>.part`); return its digest once verified and in place."""
    label = label or remote.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    hasher = Hasher(remote.size if remote.git_oid else None)
    what = f"downloading {label}"
    # Bytes are checked as they are, so ask for them unencoded: Range offsets count bytes on the wire.
    request_headers = {**headers, "Accept-Encoding": "identity"}

    def attempt() -> None:
        offset = part.stat().st_size if part.exists() else 0
        if remote.size is not None and offset > remote.size:
            offset = _restart(part, hasher)
        if hasher.position != offset:
            hasher.reset()
            _hash_prefix(part, hasher, offset, silent, label)
        ranged = {**request_headers, "Range": f"bytes={offset}-"} if offset else request_headers
        with client.stream("GET", remote.url, headers=ranged) as response:
            if response.status_code == 416 and offset:
                match = _UNSATISFIED.match(response.headers.get("content-range", ""))
                if offset in (remote.size, int(match.group(1)) if match else None):
                    return  # the .part was already whole (interrupted between the last byte and the rename)
                _restart(part, hasher)
                raise RetryableStatus(416)
            check_status(response, remote.url, what)
            if response.status_code == 206:
                match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                if not match or int(match.group(1)) != offset:
                    _restart(part, hasher)  # some other range: start over rather than splice wrong bytes
                    raise RetryableStatus(206)
            elif offset:
                offset = _restart(part, hasher)  # 200: the server ignored Range and sends the whole file
            length = response.headers.get("content-length")
            total = offset + int(length) if length and length.isdigit() else remote.size
            bar = progress(label, total, offset)
            try:
                with part.open("ab" if offset else "wb") as f:
                    # No chunk_size: httpx would hold back up to that much, and lose it when the connection breaks.
                    for chunk in response.iter_bytes():
                        f.write(chunk)
                        hasher.update(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                bar.close()

    with_retries(attempt, policy, remote.url, what, sleep)
    digest = hasher.digest()
    try:
        check_digest(part, remote, digest)
    except ChecksumMismatch as exc:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(dest, exc.kind, exc.expected, exc.actual) from None
    os.replace(part, dest)
    return digest


def _restart(part: Path, hasher: Hasher) -> int:
    part.unlink(missing_ok=True)
    hasher.reset()
    return 0
