"""`avatar-runtime models pull|verify|list`: the logic behind the commands, returning exit codes.

Exit codes: 0 all good; 1 a model could not be fetched or verified (network, checksum, missing while offline);
2 bad input (unknown model name; bad config is reported by the CLI before we get here); 130 interrupted, with
`.part` files kept so the next `pull` resumes them. Results go to `out`, progress and errors to `err`.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from . import manifest as mf
from .cache import model_path
from .download import ChecksumMismatch, Digest, check_digest, download, hash_file
from .http import HubError, ModelCacheError, RetryPolicy, make_client
from .hubs import RemoteFile, list_files
from .manifest import FileRecord, Manifest, ModelRecord
from .progress import ProgressFactory, for_stream, human_bytes
from .specs import HubSettings, ModelSpec, default_models, is_archive
from .state import cache_state
from .unpack import ArchiveError, unpack

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ModelCacheError):
    pass


@dataclass
class Console:
    out: TextIO
    err: TextIO
    progress: ProgressFactory

    @classmethod
    def standard(cls) -> Console:
        return cls(sys.stdout, sys.stderr, for_stream(sys.stderr))

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def error(self, line: str) -> None:
        print(f"avatar-runtime models: {line}", file=self.err, flush=True)


def pick(specs: Sequence[ModelSpec], names: Sequence[str]) -> list[ModelSpec]:
    """The specs named by `--model` (all when none), in config order."""
    known = {s.name for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        configured = ", ".join(sorted(known)) or "none"
        raise UsageError(f"unknown model {', '.join(map(repr, unknown))} (configured: {configured})")
    return [s for s in specs if not names or s.name in names]


# -- pull ------------------------------------------------------------------------------------------------------


def pull(
    specs: Sequence[ModelSpec],
    model_dir: str | Path,
    hub: HubSettings,
    console: Console,
    *,
    names: Sequence[str] = (),
    force: bool = False,
    client: httpx.Client | None = None,
    policy: RetryPolicy | None = None,
) -> int:
    chosen = pick(specs, names)
    model_dir = Path(model_dir)
    if hub.offline:
        return _pull_offline(chosen, _load_manifest(model_dir, console), model_dir, console)
    policy = policy or RetryPolicy(retries=hub.retries)
    failed = []
    with ExitStack() as stack:
        try:
            stack.enter_context(pull_lock(model_dir, console))
        except OSError as exc:
            console.error(f"cannot use the model cache {model_dir}: {_message(exc)}")
            return EXIT_FAILED
        # Read after taking the lock: a pull we waited for has just rewritten it.
        manifest = _load_manifest(model_dir, console)
        http = stack.enter_context(client or make_client(hub.timeout_s))
        for spec in chosen:
            try:
                _Puller(http, spec, manifest, model_dir, hub, console, policy, force).run()
            except (ModelCacheError, OSError) as exc:
                failed.append(spec.name)
                console.error(f"model {spec.name!r} failed: {_message(exc)}")
    if failed:
        console.error(f"{len(failed)} of {len(chosen)} models failed: {', '.join(failed)}")
        return EXIT_FAILED
    return EXIT_OK


def _load_manifest(model_dir: Path, console: Console) -> Manifest:
    try:
        return mf.load(model_dir)
    except mf.ManifestError as exc:
        # Files already on disk are adopted again by hash, so a lost manifest costs hashing, not downloads.
        console.error(f"{exc}; continuing as if it were empty")
        return Manifest()


@contextmanager
def pull_lock(model_dir: Path, console: Console) -> Iterator[None]:
    """One pull at a time per cache: two Jobs (or a Job and a person) must not write the same `.part` files."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / ".pull.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.error(f"another `models pull` is using this cache ({path}); waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process dies


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, ModelCacheError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return str(exc)


def _pull_offline(chosen: list[ModelSpec], manifest: Manifest, model_dir: Path, console: Console) -> int:
    missing = 0
    for spec in chosen:
        directory = model_path(model_dir, spec.name)
        state = cache_state(spec, manifest.models.get(spec.name), directory)
        if state.ok:
            console.say(f"{spec.name}: ok (cached; offline, nothing fetched)")
            continue
        missing += 1
        problems = [str(directory / p) for p in state.missing] + [str(directory / w) for w in state.wrong]
        console.error(f"offline: model {spec.name!r} is not in the cache ({state.note}): missing {', '.join(problems)}")
    if missing:
        console.error(
            "offline mode (--offline, hub.offline, AVATAR_OFFLINE or HF_HUB_OFFLINE) opens no connection: "
            "run `avatar-runtime models pull` where the hubs are reachable, or copy the files in"
        )
        return EXIT_FAILED
    return EXIT_OK


def _same(cached: FileRecord | None, remote: RemoteFile) -> bool:
    """Whether a manifest entry describes the file the hub lists now."""
    if cached is None or (remote.size is not None and cached.size != remote.size):
        return False
    if remote.sha256 is not None:
        return cached.sha256 == remote.sha256
    if remote.git_oid is not None:
        return cached.git_oid == remote.git_oid
    return remote.size is not None  # the hub publishes no hash: its size is all we can compare


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _in_place(directory: Path, path: str, entry: FileRecord) -> bool:
    target = directory / path
    return target.is_file() and target.stat().st_size == entry.size


class _Puller:
    """Brings one model's cache directory up to date with its hub listing."""

    def __init__(
        self,
        http: httpx.Client,
        spec: ModelSpec,
        manifest: Manifest,
        model_dir: Path,
        hub: HubSettings,
        console: Console,
        policy: RetryPolicy,
        force: bool,
    ) -> None:
        self.http, self.spec, self.manifest, self.model_dir = http, spec, manifest, model_dir
        self.hub, self.console, self.policy, self.force = hub, console, policy, force
        self.directory = model_path(model_dir, spec.name)
        self.fetched = self.cached = 0

    def run(self) -> None:
        spec = self.spec
        try:
            listing = list_files(self.http, spec, self.hub, self.policy)
        except HubError as exc:
            if not cache_state(spec, self.manifest.models.get(spec.name), self.directory).ok:
                raise
            # A hub outage must not fail a cache that is already whole (a restarted Job, an air-gapped cluster).
            self.console.error(f"model {spec.name!r}: cannot check for updates ({exc}); the cached copy is complete")
            self.console.say(f"{spec.name}: ok (cached; the hub was not reachable)")
            return
        record = self.manifest.models.get(spec.name)
        if record is None or not record.matches(spec):
            record = ModelRecord.start(spec)
        record.complete, record.commit = False, listing.commit
        self.manifest.models[spec.name] = self.record = record
        for remote in listing.files:
            if spec.unpack and is_archive(remote.path):
                self._archive(remote)
            else:
                self._file(remote)
            mf.save(self.model_dir, self.manifest)
        listed = {r.path for r in listing.files}
        # Forget (but never delete) files the revision no longer has: the manifest describes the listing.
        record.files = {p: f for p, f in record.files.items() if p in listed or f.from_archive in listed}
        record.archives = {p: a for p, a in record.archives.items() if p in listed}
        record.complete, record.fetched_at = True, mf.now()
        mf.save(self.model_dir, self.manifest)
        size = sum(f.size for f in record.files.values())
        commit = f", commit {listing.commit[:12]}" if listing.commit else ""
        self.console.say(
            f"{spec.name}: ok ({_files(len(record.files))}, {human_bytes(size)}; {self.fetched} fetched, "
            f"{self.cached} already cached) from {spec.origin()}{commit}"
        )

    def _file(self, remote: RemoteFile) -> None:
        cached = self.record.files.get(remote.path)
        if not self.force and cached and _same(cached, remote) and _in_place(self.directory, remote.path, cached):
            self.cached += 1
            return
        digest = self._obtain(remote)
        self.record.files[remote.path] = FileRecord(size=digest.size, sha256=digest.sha256, git_oid=digest.git_oid)

    def _archive(self, remote: RemoteFile) -> None:
        record, path = self.record, remote.path
        members = {p: f for p, f in record.files.items() if f.from_archive == path}
        if (
            not self.force
            and _same(record.archives.get(path), remote)
            and members
            and all(_in_place(self.directory, p, f) for p, f in members.items())
        ):
            self.cached += 1
            return
        digest = self._obtain(remote)
        archive = self.directory / path
        self.console.say(f"{self.spec.name}: unpacking {path}")
        extracted = unpack(archive, self.directory)
        if not extracted:
            raise ArchiveError(f"{path} holds no files")
        for member in members:
            record.files.pop(member, None)
        for member, got in extracted.items():
            record.files[member] = FileRecord(size=got.size, sha256=got.sha256, from_archive=path)
        record.archives[path] = FileRecord(size=digest.size, sha256=digest.sha256, git_oid=digest.git_oid)
        if path not in extracted:
            archive.unlink()  # its contents are verified and recorded; keeping it would double the disk use

    def _obtain(self, remote: RemoteFile) -> Digest:
        """A verified copy of `remote` at its place: adopted from disk when it already matches, else downloaded."""
        target = self.directory / remote.path
        label = f"{self.spec.name}/{remote.path}"
        checkable = remote.sha256 is not None or remote.git_oid is not None
        size_fits = target.is_file() and remote.size in (None, target.stat().st_size)
        if not self.force and checkable and size_fits:
            # A file put there by hand (or by a pull whose manifest was lost): hashing beats downloading it.
            git_size = remote.size if remote.git_oid else None
            digest = hash_file(target, self.console.progress, f"{label} (checking)", git_size)
            try:
                check_digest(target, remote, digest)
                self.cached += 1
                return digest
            except ChecksumMismatch:
                pass
        headers = {"Authorization": f"Bearer {self.hub.token}"} if remote.auth and self.hub.token else {}
        digest = download(
            self.http, remote, target, headers=headers, policy=self.policy, progress=self.console.progress, label=label
        )
        self.fetched += 1
        return digest


# -- verify and list -------------------------------------------------------------------------------------------


def verify(specs: Sequence[ModelSpec], model_dir: str | Path, console: Console, *, names: Sequence[str] = ()) -> int:
    """Re-hash every cached file against the manifest and the config's pins; never touches the network."""
    chosen = pick(specs, names)
    model_dir = Path(model_dir)
    try:
        manifest = mf.load(model_dir)
    except mf.ManifestError as exc:
        console.error(str(exc))
        return EXIT_FAILED
    bad = 0
    for spec in chosen:
        directory = model_path(model_dir, spec.name)
        record = manifest.models.get(spec.name)
        state = cache_state(spec, record, directory)
        corrupt = list(state.wrong)
        if record is not None and record.matches(spec):
            for path, entry in sorted(record.files.items()):
                if path in state.missing or not _in_place(directory, path, entry):
                    continue
                got = hash_file(directory / path, console.progress, f"{spec.name}/{path}")
                if got.sha256 != entry.sha256:
                    corrupt.append(f"{path} (sha256 expected {entry.sha256}, got {got.sha256})")
        if state.ok and not corrupt:
            size = sum(f.size for f in record.files.values()) if record else 0
            console.say(f"ok       {spec.name}: {_files(len(record.files) if record else 0)}, {human_bytes(size)}")
            continue
        bad += 1
        if state.missing:
            console.say(f"MISSING  {spec.name}: {', '.join(str(directory / p) for p in state.missing)}")
        if corrupt:
            console.say(f"CORRUPT  {spec.name}: {'; '.join(str(directory / c) for c in corrupt)}")
        if not state.missing and not corrupt:
            console.say(f"{state.status.upper():8} {spec.name}: {state.note}")
    if bad:
        console.error(f"{bad} of {len(chosen)} models are not intact; run `avatar-runtime models pull`")
        return EXIT_FAILED
    return EXIT_OK


def list_models(specs: Sequence[ModelSpec], model_dir: str | Path, console: Console) -> int:
    """A table of the configured models and their state in the cache (sizes only; `verify` re-hashes)."""
    model_dir = Path(model_dir)
    try:
        manifest = mf.load(model_dir)
    except mf.ManifestError as exc:
        console.error(str(exc))
        manifest = Manifest()
    rows = [("NAME", "SOURCE", "FROM", "FILES", "SIZE", "STATE")]
    for spec in specs:
        record = manifest.models.get(spec.name)
        state = cache_state(spec, record, model_path(model_dir, spec.name))
        files = record.files if record is not None and record.matches(spec) else {}
        count = str(len(files) or (1 if spec.source == "url" else len(spec.files)) or "all")
        size = human_bytes(sum(f.size for f in files.values())) if files else "-"
        status = state.status if state.ok else f"{state.status} ({state.note})"
        rows.append((spec.name, spec.source, spec.origin(), count, size, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        console.say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    console.say(f"model cache: {model_dir.resolve()}")
    return EXIT_OK


# -- command line ----------------------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `models` subcommand of `avatar-runtime`."""
    models = commands.add_parser("models", help="fetch, verify or list the production models in the model cache")
    actions = models.add_subparsers(dest="models_command", required=True)
    pull_cmd = actions.add_parser("pull", help="download the configured models into the cache (resumable)")
    verify_cmd = actions.add_parser("verify", help="re-hash the cached files; exit 0 only if all are intact")
    list_cmd = actions.add_parser("list", help="the configured models and their state in the cache")
    for sub in (pull_cmd, verify_cmd, list_cmd):
        sub.add_argument("--config", help="YAML config file (model_dir, models, hub)")
    for sub in (pull_cmd, verify_cmd):
        sub.add_argument("--model", action="append", default=[], metavar="NAME", help="only this model (repeatable)")
    pull_cmd.add_argument("--force", action="store_true", help="fetch again even what is cached and verified")
    pull_cmd.add_argument("--offline", action="store_true", help="open no connection; succeed only if all is cached")


def run(args: argparse.Namespace, config) -> int:
    """Run `avatar-runtime models ...` with a loaded RuntimeConfig."""
    # Until config.py carries `models`/`hub`, the production defaults and the environment apply.
    specs = getattr(config, "models", None)
    specs = default_models() if specs is None else specs
    hub = getattr(config, "hub", None) or HubSettings().with_env(os.environ)
    if getattr(args, "offline", False):
        hub = hub.model_copy(update={"offline": True})
    console = Console.standard()
    try:
        if args.models_command == "pull":
            return pull(specs, config.model_dir, hub, console, names=args.model, force=args.force)
        if args.models_command == "verify":
            return verify(specs, config.model_dir, console, names=args.model)
        return list_models(specs, config.model_dir, console)
    except UsageError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.error("interrupted; partial downloads (*.part) are kept and the next `models pull` resumes them")
        return EXIT_INTERRUPTED
