"""A real HTTP server on 127.0.0.1 that speaks enough of the Hugging Face Hub and ModelScope APIs for `models pull`.

It serves small generated files for Hugging Face repos, ModelScope repos and plain URLs, honours Range requests,
and can be scripted to misbehave per file: cut the connection after N bytes, serve corrupted bytes, fail with a
5xx N times, ignore Range, or stall mid-body until released. It records every request (path, headers, status,
bytes sent), so tests can assert what went over the wire — including that nothing did.

    with FakeHub() as hub:
        hub.add_hf("org/model", {"config.json": b"{}", "model.safetensors": os.urandom(200_000)})
        hub.cut("org/model/model.safetensors", after=50_000)
        ... pull with hub.url as the endpoint ...
        assert hub.downloads("org/model/model.safetensors")[1].headers["range"] == "bytes=50000-"

Files are keyed `<repo>/<path>` (hub repos) or `files/<name>` (URLs).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_MIN_SIZE = 1024  # files this big are served like Hugging Face serves LFS files (sha256 listed, CDN redirect)


@dataclass
class Served:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    file: str | None = None  # the file key when the request fetched file bytes
    status: int = 0
    bytes_sent: int = 0


@dataclass
class _Fault:
    times: int | None  # None: every time
    cut_after: int | None = None
    corrupt: bool = False
    status: int | None = None
    stall_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class _HFRepo:
    files: dict[str, bytes]
    refs: dict[str, str]  # branch/tag → commit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {len(data)}\n".encode()


class FakeHub:
    def __init__(self, token: str | None = None) -> None:
        self.token = token  # when set, Hugging Face API and resolve requests need `Authorization: Bearer <token>`
        self.ignore_range = False
        self.requests: list[Served] = []
        self._hf: dict[str, _HFRepo] = {}
        self._ms: dict[str, tuple[str, dict[str, bytes]]] = {}
        self._urls: dict[str, bytes] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content -------------------------------------------------------------------------------------------------

    def add_hf(self, repo: str, files: dict[str, bytes], revision: str = "main") -> str:
        """A Hugging Face model repo; returns the commit `revision` resolves to."""
        commit = hashlib.sha1(repr(sorted((p, hashlib.sha256(d).hexdigest()) for p, d in files.items())).encode())
        self._hf[repo] = _HFRepo(dict(files), {revision: commit.hexdigest()})
        return commit.hexdigest()

    def add_modelscope(self, repo: str, files: dict[str, bytes], revision: str = "master") -> None:
        self._ms[repo] = (revision, dict(files))

    def add_url(self, name: str, data: bytes) -> str:
        self._urls[name] = data
        return f"{self.url}/files/{quote(name)}"

    # -- faults --------------------------------------------------------------------------------------------------

    def cut(self, key: str, after: int, times: int | None = 1) -> None:
        """Close the connection after sending `after` body bytes of `key` (Content-Length promised the rest)."""
        self._add_fault(key, _Fault(times, cut_after=after))

    def corrupt(self, key: str, times: int | None = None) -> None:
        """Serve `key` with one byte flipped (same length)."""
        self._add_fault(key, _Fault(times, corrupt=True))

    def fail(self, key: str, times: int | None = 1, status: int = 503) -> None:
        """Answer requests for `key` with `status` (a JSON error body)."""
        self._add_fault(key, _Fault(times, status=status))

    def stall(self, key: str, after: int) -> threading.Event:
        """Send `after` bytes of `key`, then hold the connection open until the returned event is set."""
        fault = _Fault(1, stall_after=after)
        self._add_fault(key, fault)
        return fault.release

    def _add_fault(self, key: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault(key, []).append(fault)

    def _take_fault(self, key: str) -> _Fault | None:
        with self._lock:
            faults = self._faults.get(key, [])
            if not faults:
                return None
            fault = faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)
            return fault

    # -- what happened -------------------------------------------------------------------------------------------

    def downloads(self, key: str) -> list[Served]:
        return [r for r in list(self.requests) if r.file == key]

    def bytes_served(self, key: str) -> int:
        return sum(r.bytes_sent for r in self.downloads(key))

    # -- server --------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start the hub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            owner = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for faults in self._faults.values():
                for fault in faults:
                    fault.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - keep the test output quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming; huggingface_hub's own client starts with HEAD
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.served = Served(self.command, unquote(parts.path), query, headers)
        self.owner.requests.append(self.served)
        path = self.served.path
        try:
            if path.startswith("/api/models/"):
                self._hf_api(path.removeprefix("/api/models/"), query)
            elif path.startswith("/api/v1/models/"):
                self._modelscope(path.removeprefix("/api/v1/models/"), query)
            elif path.startswith("/files/"):
                name = path.removeprefix("/files/")
                data = self.owner._urls.get(name)
                self._blob(f"files/{name}", data) if data is not None else self._json(404, {"error": "no such file"})
            elif path.startswith("/cdn-lfs/"):
                key = path.removeprefix("/cdn-lfs/")
                repo, _, file = key.partition("::")
                self._blob(f"{repo}/{file}", self.owner._hf[repo].files[file])
            elif "/resolve/" in path:
                self._hf_resolve(path)
            else:
                self._json(404, {"error": "unknown route"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- Hugging Face --------------------------------------------------------------------------------------------

    def _authorized(self) -> bool:
        token = self.owner.token
        if token and self.served.headers.get("authorization") != f"Bearer {token}":
            self._json(401, {"error": "Invalid credentials in Authorization header"})
            return False
        return True

    def _hf_repo(self, repo: str, revision: str) -> tuple[_HFRepo, str] | None:
        found = self.owner._hf.get(repo)
        if found is None:
            self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return None
        commit = found.refs.get(revision) or (revision if revision in found.refs.values() else None)
        if commit is None:
            self._json(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"})
            return None
        return found, commit

    def _hf_api(self, rest: str, query: dict[str, str]) -> None:
        # {owner}/{name}/revision/{revision}
        match = re.match(r"^([^/]+/[^/]+)/revision/(.+)$", rest)
        if not match:
            self._json(404, {"error": "unknown route"})
            return
        if not self._authorized() or (found := self._hf_repo(match.group(1), match.group(2))) is None:
            return
        repo, commit = found
        siblings = []
        for path, data in sorted(repo.files.items()):
            sibling: dict = {"rfilename": path}
            if query.get("blobs") in ("true", "True", "1"):
                lfs = len(data) >= LFS_MIN_SIZE
                sibling["size"] = len(data)
                sibling["blobId"] = git_blob_id(lfs_pointer(data) if lfs else data)
                if lfs:
                    sha = hashlib.sha256(data).hexdigest()
                    sibling["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": len(lfs_pointer(data))}
            siblings.append(sibling)
        self._json(200, {"id": match.group(1), "modelId": match.group(1), "sha": commit, "siblings": siblings})

    def _hf_resolve(self, path: str) -> None:
        match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if not match:
            self._json(404, {"error": "unknown route"})
            return
        repo_id, revision, file = match.groups()
        if not self._authorized() or (found := self._hf_repo(repo_id, revision)) is None:
            return
        repo, commit = found
        data = repo.files.get(file)
        if data is None:
            self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return
        headers = {"X-Repo-Commit": commit}
        if len(data) >= LFS_MIN_SIZE:
            # As on huggingface.co: LFS files are a redirect to a CDN, with the sha256 as X-Linked-Etag.
            headers |= {"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))}
            # Another origin (localhost, still loopback), as the real CDN is: clients must drop the token there.
            port = self.owner.url.rsplit(":", 1)[1]
            headers["Location"] = f"http://localhost:{port}/cdn-lfs/{quote(repo_id, safe='')}::{quote(file, safe='')}"
            self._send(302, b"", headers)
            return
        self._blob(f"{repo_id}/{file}", data, headers)

    # -- ModelScope ----------------------------------------------------------------------------------------------

    def _modelscope(self, rest: str, query: dict[str, str]) -> None:
        match = re.match(r"^([^/]+/[^/]+)/repo(/files)?$", rest)
        if not match:
            self._json(404, {"Code": 404, "Message": "unknown route", "Success": False})
            return
        repo_id, listing = match.group(1), match.group(2)
        found = self.owner._ms.get(repo_id)
        if found is None or query.get("Revision", "master") != found[0]:
            self._json(
                404, {"Code": 10010205001, "Message": f"model {repo_id} or revision not found", "Success": False}
            )
            return
        revision, files = found
        if listing:
            entries, dirs = [], set()
            for path, data in sorted(files.items()):
                parent = path.rpartition("/")[0]
                while parent and parent not in dirs:
                    dirs.add(parent)
                    entries.append({"Name": parent.rpartition("/")[2], "Path": parent, "Type": "tree", "Size": 0})
                    parent = parent.rpartition("/")[0]
                entries.append(
                    {
                        "Name": path.rpartition("/")[2],
                        "Path": path,
                        "Type": "blob",
                        "Size": len(data),
                        "Sha256": hashlib.sha256(data).hexdigest(),
                        "Revision": "0" * 40,
                        "IsLFS": len(data) > 1024,
                    }
                )
            self._json(200, {"Code": 200, "Data": {"Files": entries}, "Message": "success", "Success": True})
            return
        file = query.get("FilePath", "")
        if file not in files:
            self._json(404, {"Code": 10010205001, "Message": f"file {file} not found", "Success": False})
            return
        self._blob(f"{repo_id}/{file}", files[file])

    # -- bytes ---------------------------------------------------------------------------------------------------

    def _blob(self, key: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.served.file = key
        fault = self.owner._take_fault(key)
        if fault is not None and fault.status is not None:
            self._json(fault.status, {"error": "scripted failure"})
            return
        if fault is not None and fault.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{git_blob_id(data)}"', **(headers or {})}
        start, status = 0, 200
        match = _RANGE.match(self.served.headers.get("range", ""))
        if match and not self.owner.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self._send(416, b"", headers | {"Content-Range": f"bytes */{len(data)}"})
                return
            total = len(data)
            end = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
            status, data = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        self._send(status, data, headers, fault)

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, body: bytes, headers: dict[str, str], fault: _Fault | None = None) -> None:
        self.served.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = fault.cut_after if fault is not None else None
        stall = fault.stall_after if fault is not None else None
        for offset in range(0, len(body), 16384):
            piece = body[offset : offset + 16384]
            if limit is not None and self.served.bytes_sent + len(piece) >= limit:
                piece = piece[: limit - self.served.bytes_sent]
            if stall is not None and self.served.bytes_sent + len(piece) >= stall:
                piece = piece[: stall - self.served.bytes_sent]
            self.wfile.write(piece)
            self.served.bytes_sent += len(piece)
            if limit is not None and self.served.bytes_sent >= limit:
                self.close_connection = True  # the body ends early: the client sees a broken download
                return
            if stall is not None and self.served.bytes_sent >= stall:
                fault.release.wait(30)
                self.close_connection = True
                return
