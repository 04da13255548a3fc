"""The parts of the coturn and model-cache children that run for real here, not just as manifests.

- coturn 4.6 (Debian's `turnserver`, the version of the default image `coturn/coturn:4.6`) is started with the very
  arguments `coturn.build_statefulset` produces (the kubelet's `$(TURN_SECRET)` expansion and the pod's mount paths
  applied, listening on 127.0.0.1), and a real TURN client (aioice) allocates with the runtime's own REST credentials
  (`avatar_runtime.ice.turn_rest_credentials`): authentication, peer filtering, no TCP relays, TURNS with the mounted
  certificate. Skipped where `turnserver` is not installed (`apt-get install coturn`).
- the avatar fetch script, exactly as the pull ConfigMap delivers it, downloads from a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aioice.turn import TCP_TRANSPORT, TurnClientTcpProtocol, TurnClientUdpProtocol
from avatar_operator.builders import coturn, model_cache
from avatar_runtime.config import TLSConfig
from avatar_runtime.ice import turn_rest_credentials
from avatar_runtime.tls import ensure_certificate

from tests.operator.test_builders_turn_cache import AMC, AVD, POD_NET, SECRET, cache, deployment
from tests.support.turnserver import Turnserver, needs_turnserver


# -- coturn: the real turnserver with our arguments ---------------------------------------------------------------
@pytest.fixture
def run_turnserver(tmp_path: Path) -> Iterator:
    servers: list[Turnserver] = []

    def start(sts: dict[str, Any], secret: str = SECRET) -> Turnserver:
        servers.append(Turnserver(sts, secret, tmp_path))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


async def _connect(protocol_cls, port: int, secret: str, **connect: Any):
    """A TURN client with the runtime's REST credentials (what a browser gets from /api/config), not allocated yet."""
    username, password = turn_rest_credentials(secret, 600)
    loop = asyncio.get_running_loop()

    def factory():
        return protocol_cls(("127.0.0.1", port), username=username, password=password, lifetime=600,
                            channel_refresh_time=300)  # fmt: skip

    if protocol_cls is TurnClientUdpProtocol:
        return await loop.create_datagram_endpoint(factory, remote_addr=("127.0.0.1", port))
    return await loop.create_connection(factory, "127.0.0.1", port, **connect)


async def _allocate(protocol_cls, port: int, secret: str, **connect: Any):
    """A UDP relay allocation: (transport, protocol, relayed address)."""
    transport, protocol = await _connect(protocol_cls, port, secret, **connect)
    try:
        relayed = await protocol.connect()
    except BaseException:
        transport.close()
        raise
    return transport, protocol, relayed


async def _peer_allowed(protocol, channel: int, ip: str) -> bool:
    try:
        await protocol.channel_bind(channel, (ip, 9))  # installs a permission: coturn checks the peer address here
        return True
    except stun.TransactionFailed as exc:
        assert exc.response.attributes["ERROR-CODE"][0] == 403, exc.response  # 403 Forbidden IP
        return False


@needs_turnserver
async def test_turnserver_accepts_our_arguments_and_filters_peers(run_turnserver):
    sts = coturn.build_statefulset(AVD, deployment(), secret=SECRET, allowed_peer_cidrs=POD_NET)
    server = run_turnserver(sts)
    transport, protocol, relayed = await _allocate(TurnClientUdpProtocol, server.port, SECRET)
    try:
        assert relayed[0] == "127.0.0.1" and 49152 <= relayed[1] <= 49252  # the relay range we configured
        peers = {
            "10.244.3.4": True,  # the pod network: the runtime pods the relay must reach
            "8.8.8.8": True, "1.1.1.1": True,  # the internet
            "10.1.2.3": False, "10.245.0.1": False,  # the rest of 10/8
            "192.168.1.1": False, "172.16.0.1": False, "172.31.255.254": False, "100.64.0.1": False,
            "169.254.169.254": False,  # the cloud metadata service, the classic TURN SSRF target
            "127.0.0.1": False, "0.0.0.0": False, "224.0.0.1": False, "198.18.0.1": False,
            "172.32.0.1": True, "100.128.0.1": True,  # just outside the private ranges
        }  # fmt: skip
        results = {ip: await _peer_allowed(protocol, 0x4000 + n, ip) for n, ip in enumerate(peers)}
        assert results == peers
    finally:
        transport.close()
    log = server.log.read_text()
    assert "Black listing: 10.0.0.0-10.255.255.255" in log
    assert "White listing: 10.244.0.0-10.244.255.255" in log
    assert "Default realm: avatar.example.com" in log
    # Nothing in our arguments is ignored or questioned (the only errors are the refused peers above).
    complaints = [line for line in log.splitlines() if ("ERROR" in line or "WARNING" in line) and "peer IP" not in line]
    assert complaints == []


@needs_turnserver
async def test_turnserver_rejects_other_secrets_and_tcp_relays(run_turnserver):
    server = run_turnserver(coturn.build_statefulset(AVD, deployment(), secret=SECRET, allowed_peer_cidrs=POD_NET))
    with pytest.raises(stun.TransactionFailed) as failed:
        await _allocate(TurnClientUdpProtocol, server.port, SECRET[::-1])
    assert failed.value.response.attributes["ERROR-CODE"][0] == 401
    transport, _, relayed = await _allocate(TurnClientTcpProtocol, server.port, SECRET)  # TURN over TCP 3478 works
    transport.close()
    assert relayed[0] == "127.0.0.1"
    transport, protocol = await _connect(TurnClientTcpProtocol, server.port, SECRET)
    try:
        request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
        request.attributes["REQUESTED-TRANSPORT"] = TCP_TRANSPORT  # a TCP relay (RFC 6062): --no-tcp-relay refuses it
        with pytest.raises(stun.TransactionFailed) as refused:
            await protocol.request_with_retry(request)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 442  # Unsupported Transport Protocol
    finally:
        transport.close()


@needs_turnserver
async def test_turnserver_serves_turns_with_the_mounted_certificate(run_turnserver, tmp_path):
    cert, key = ensure_certificate(TLSConfig(self_signed_dir=str(tmp_path / "issued")))
    shutil.copy(cert, tmp_path / "tls.crt")  # the kubernetes.io/tls Secret's keys, as mounted
    shutil.copy(key, tmp_path / "tls.key")
    sts = coturn.build_statefulset(AVD, deployment(tls={"secretName": "mine"}), secret=SECRET, allowed_peer_cidrs=[])
    server = run_turnserver(sts)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the self-signed certificate names localhost, not the test's host
    transport, protocol, relayed = await _allocate(TurnClientTcpProtocol, server.tls_port, SECRET, ssl=context)
    try:
        assert transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        assert relayed[0] == "127.0.0.1"
        assert not await _peer_allowed(protocol, 0x4000, "10.244.3.4")  # no allowed CIDRs: the pod net is denied too
    finally:
        transport.close()


# -- the avatar fetch script, run for real against 127.0.0.1 ------------------------------------------------------
class Files(http.server.ThreadingHTTPServer):
    """Serves `files` (path → bytes); `fail_first` paths answer 503 once; `hold` paths stop halfway until released."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.fail_first: set[str] = set()
        self.hold: dict[str, threading.Event] = {}
        super().__init__(("127.0.0.1", 0), FileHandler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class FileHandler(http.server.BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)
        if self.path in self.server.fail_first:
            self.server.fail_first.discard(self.path)
            self.send_error(503)
            return
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        half = len(body) // 2
        self.wfile.write(body[:half])
        self.wfile.flush()
        if self.path in self.server.hold:
            self.server.hold[self.path].wait(10)
        self.wfile.write(body[half:])

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    for event in server.hold.values():
        event.set()
    server.shutdown()
    server.server_close()


def fetch_command(tmp_path: Path, avatars: list[dict[str, str]]) -> list[str]:
    """The Job's avatar step with the files exactly as the ConfigMap delivers them to /etc/avatar."""
    data = model_cache.build_config_map(AMC, cache(avatars=avatars))["data"]
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    for key in ("fetch_avatars.py", "avatars.json"):
        (etc / key).write_text(data[key])
    return [sys.executable, str(etc / "fetch_avatars.py"), str(etc / "avatars.json"), str(tmp_path / "models/avatars")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_avatars_verifies_places_and_skips_what_is_there(files, tmp_path):
    alice, bob = b"PK alice " * 5000, b"PK bob " * 300
    files.files |= {"/a/alice.zip": alice, "/bob.zip": bob}
    avatars = [
        {"name": "alice", "url": files.url("/a/alice.zip"), "sha256": sha(alice)},
        {"name": "bob", "url": files.url("/bob.zip"), "sha256": sha(bob)},
    ]
    command = fetch_command(tmp_path, avatars)
    dest = tmp_path / "models/avatars"
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (dest / "alice.zip").read_bytes() == alice and (dest / "bob.zip").read_bytes() == bob
    assert sorted(p.name for p in dest.iterdir()) == ["alice.zip", "bob.zip"]  # no .part left behind
    assert files.requests == ["/a/alice.zip", "/bob.zip"]
    # A Job re-run (or retry) fetches nothing already verified; a damaged file is fetched again.
    (dest / "bob.zip").write_bytes(b"damaged")
    again = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert again.returncode == 0, again.stderr
    assert files.requests == ["/a/alice.zip", "/bob.zip", "/bob.zip"]
    assert (dest / "bob.zip").read_bytes() == bob
    assert "alice: already present" in again.stdout


def test_fetch_avatars_never_places_a_mismatch_and_reports_every_failure(files, tmp_path):
    good, served, old = b"PK good", b"PK swapped by someone", b"PK previous version"
    files.files |= {"/good.zip": good, "/changed.zip": served}
    dest = tmp_path / "models/avatars"
    dest.mkdir(parents=True)
    (dest / "changed.zip").write_bytes(old)
    avatars = [
        {"name": "changed", "url": files.url("/changed.zip"), "sha256": sha(b"PK what the spec pins")},
        {"name": "missing", "url": files.url("/missing.zip"), "sha256": sha(b"x")},
        {"name": "good", "url": files.url("/good.zip"), "sha256": sha(good)},
    ]
    done = subprocess.run(fetch_command(tmp_path, avatars), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "changed: sha256 of" in done.stderr and "missing: download of" in done.stderr
    assert (dest / "changed.zip").read_bytes() == old  # the previous file stays; the bad bytes never land
    assert (dest / "good.zip").read_bytes() == good  # one failure does not stop the others
    assert sorted(p.name for p in dest.iterdir()) == ["changed.zip", "good.zip"]
    assert files.requests.count("/missing.zip") == 1  # a 404 is not retried
    assert files.requests.count("/changed.zip") == 1  # nor is a checksum mismatch


def test_fetch_avatars_retries_a_server_error_and_places_atomically(files, tmp_path):
    body = b"PK big avatar " * 20000
    files.files["/big.zip"] = body
    files.fail_first.add("/big.zip")
    files.hold["/big.zip"] = threading.Event()
    avatars = [{"name": "big", "url": files.url("/big.zip"), "sha256": sha(body)}]
    dest = tmp_path / "models/avatars"
    process = subprocess.Popen(fetch_command(tmp_path, avatars), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        part = dest / ".big.zip.part"
        deadline = time.monotonic() + 20
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        # Halfway through the download: the bytes are in the hidden part file, the final name does not exist yet.
        assert part.exists() and 0 < part.stat().st_size < len(body)
        assert not (dest / "big.zip").exists()
        files.hold["/big.zip"].set()
        assert process.wait(timeout=20) == 0, process.stderr.read() if process.stderr else ""
    finally:
        process.kill()
        process.wait()
    assert files.requests == ["/big.zip", "/big.zip"]  # a 503, retried
    assert (dest / "big.zip").read_bytes() == body and not part.exists()
