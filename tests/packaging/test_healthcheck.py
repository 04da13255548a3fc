"""hack/healthcheck.py, the runtime image's HEALTHCHECK, against real loopback servers (HTTPS against the runtime
itself is in test_install.py): plain HTTP (a `--no-tls` runtime), an unhealthy answer, nothing listening."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.packaging.images import REPO
from tests.support.net import free_port

SCRIPT = REPO / "hack" / "healthcheck.py"


@pytest.fixture
def http_server() -> Iterator:
    """start(status) → port of a plain-HTTP server answering GET /healthz with `status` (404 elsewhere)."""
    servers = []

    def start(status: int) -> int:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(status if self.path == "/healthz" else 404)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The system's python3, as in the image: the script needs nothing but the standard library.
    return subprocess.run(["python3", SCRIPT, *args], capture_output=True, text=True, timeout=30, env=env)


def test_plain_http_runtime_is_healthy_after_the_https_attempt_fails(http_server):
    port = http_server(200)
    result = check(str(port))
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == f"healthy: http://127.0.0.1:{port}/healthz: 200"


def test_port_comes_from_the_environment_when_not_given(http_server):
    port = http_server(200)
    result = check(env={"AVATAR_HEALTHCHECK_PORT": str(port), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout


def test_an_error_answer_is_unhealthy(http_server):
    port = http_server(503)
    result = check(str(port))
    assert result.returncode == 1
    assert result.stdout.strip() == f"unhealthy: http://127.0.0.1:{port}/healthz: 503"


def test_nothing_listening_is_unhealthy():
    port = free_port()
    result = check(str(port))
    assert result.returncode == 1
    assert result.stdout.startswith(f"unhealthy: https://127.0.0.1:{port}/healthz: ")
    assert f"http://127.0.0.1:{port}/healthz: " in result.stdout  # both schemes were tried
