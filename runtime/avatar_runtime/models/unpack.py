"""Safe extraction of a verified .tar/.tar.gz/.tgz/.zip into a model directory.

Only regular files and directories are extracted, each to a path that stays inside the model directory; any
absolute path, `..` component, link, device or FIFO refuses the whole archive. Members go to a staging directory
first (hashed as they are written, so the manifest gets their digests without a second read), and only when the
whole archive has been read are they moved into place: a refused or truncated archive leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .download import CHUNK, Digest, Hasher
from .http import ModelCacheError
from .specs import safe_relative_path


class ArchiveError(ModelCacheError):
    """The archive cannot be unpacked (damaged, or not an archive)."""


class UnsafeArchive(ArchiveError):
    """The archive holds a member that must not be extracted."""


def unpack(archive: Path, into: Path) -> dict[str, Digest]:
    """Extract `archive` into directory `into`; the extracted files (relative path → digest)."""
    staging = into / f".unpack-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        extracted = {path: _write(staging / path, stream) for path, stream in _members(archive)}
        for path in extracted:
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / path, target)
        return extracted
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(target: Path, stream: BinaryIO) -> Digest:
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher = Hasher()
    with target.open("wb") as f:
        while data := stream.read(CHUNK):
            f.write(data)
            hasher.update(data)
    return hasher.digest()


def _safe(archive: Path, name: str) -> str:
    try:
        return safe_relative_path(name)
    except ValueError:
        raise UnsafeArchive(
            f"{archive.name}: refusing member {name!r}: it would land outside the model directory"
        ) from None


def _members(archive: Path) -> Iterator[tuple[str, BinaryIO]]:
    """(safe relative path, readable stream) for every regular file of the archive, in archive order."""
    if zipfile.is_zipfile(archive):
        yield from _zip_members(archive)
    elif tarfile.is_tarfile(archive):
        yield from _tar_members(archive)
    else:
        raise ArchiveError(f"{archive.name} is neither a tar nor a zip archive; set `unpack: false` to keep it")


def _tar_members(archive: Path) -> Iterator[tuple[str, BinaryIO]]:
    try:
        # Stream mode ("r|*"): one sequential pass over a possibly compressed tar, no random seeks.
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                if member.isdir():
                    continue  # directories come with the files' paths; their own modes are not wanted
                if not member.isreg():
                    raise UnsafeArchive(
                        f"{archive.name}: refusing member {member.name!r}: only regular files and directories "
                        "are extracted (it is a link, device or FIFO)"
                    )
                path = _safe(archive, member.name)
                with _opened(tar.extractfile(member), archive, member.name) as stream:
                    yield path, stream
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:  # gzip.BadGzipFile is an OSError
        raise ArchiveError(f"{archive.name}: damaged archive: {exc}") from None


def _zip_members(archive: Path) -> Iterator[tuple[str, BinaryIO]]:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = _safe(archive, info.filename)
                if info.is_dir():
                    continue
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix file type
                if kind and kind != stat.S_IFREG:
                    raise UnsafeArchive(
                        f"{archive.name}: refusing member {info.filename!r}: only regular files are extracted"
                    )
                with zf.open(info) as stream:
                    yield path, stream
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{archive.name}: damaged archive: {exc}") from None


@contextmanager
def _opened(stream: BinaryIO | None, archive: Path, name: str) -> Iterator[BinaryIO]:
    if stream is None:
        raise ArchiveError(f"{archive.name}: cannot read member {name!r}")
    try:
        yield stream
    finally:
        stream.close()
