"""Fetch an AvatarModelCache's avatar zips into the cache, each verified by its sha256 (runs inside the pull Job).

Not imported by the operator: `model_cache.py` ships this file's text in the pull ConfigMap (key `fetch_avatars.py`)
and the Job runs it with the runtime image's `python3`, because `avatar-runtime` has no avatar download command.
Standard library only, for that reason.

    python3 fetch_avatars.py AVATARS_JSON DEST_DIR

AVATARS_JSON holds `[{"name": ..., "url": ..., "sha256": ...}, ...]`; each zip becomes `DEST_DIR/<name>.zip`, the
file the runtime serves as `/avatars/<name>.zip`. A zip is downloaded to a hidden `.part` file in DEST_DIR, fsynced,
checked, and only then renamed over the final name (atomic within one filesystem): a runtime pod never sees half a
zip, and a failed or mismatching download leaves the previous file as it was. A file already there with the right
digest is not fetched again. Exit 0 when every avatar is in place, 1 otherwise (the Job then retries).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 16
ATTEMPTS = 3  # per avatar, for connection errors and 5xx; the Job's backoffLimit retries the whole step on top
TIMEOUT_S = 60.0


class Mismatch(Exception):
    """The downloaded bytes are not the pinned ones: never retried, never placed."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _transient(error: Exception) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code == 429
    return isinstance(error, OSError)  # URLError, timeouts, resets


def download(url: str, expected: str, dest: Path) -> int:
    """Download `url` to `dest` if its sha256 is `expected`; returns the size. Raises Mismatch or the network error."""
    part = dest.with_name(f".{dest.name}.part")
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, part.open("wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise Mismatch(f"sha256 of {url} is {digest.hexdigest()}, expected {expected}")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    directory = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)
    return size


def fetch(avatar: dict[str, str], dest_dir: Path) -> bool:
    name, url, expected = avatar["name"], avatar["url"], avatar["sha256"].lower()
    if Path(name).name != name or name.startswith("."):
        print(f"avatar {name!r}: not a plain file name", file=sys.stderr)
        return False
    dest = dest_dir / f"{name}.zip"
    if dest.is_file() and file_sha256(dest) == expected:
        print(f"avatar {name}: already present ({dest})", flush=True)
        return True
    for attempt in range(1, ATTEMPTS + 1):
        try:
            size = download(url, expected, dest)
        except Mismatch as exc:
            print(f"avatar {name}: {exc}", file=sys.stderr)
            return False
        except Exception as exc:  # noqa: BLE001 - report every failure by name, keep going with the others
            if attempt < ATTEMPTS and _transient(exc):
                time.sleep(2**attempt)
                continue
            print(f"avatar {name}: download of {url} failed: {exc}", file=sys.stderr)
            return False
        print(f"avatar {name}: fetched {size} bytes, sha256 verified ({dest})", flush=True)
        return True
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: fetch_avatars.py AVATARS_JSON DEST_DIR", file=sys.stderr)
        return 2
    avatars = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    dest_dir = Path(argv[1])
    dest_dir.mkdir(parents=True, exist_ok=True)
    results = [fetch(avatar, dest_dir) for avatar in avatars]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
