"""Debian's coturn `turnserver`, started with the arguments the operator builds, on loopback (tests only)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from avatar_operator.builders import coturn

needs_turnserver = pytest.mark.skipif(
    shutil.which("turnserver") is None, reason="coturn's turnserver is not installed (apt-get install coturn)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Turnserver:
    """turnserver started with a built StatefulSet's args, as the kubelet would (env expanded), on loopback ports.

    `extra` arguments come last (coturn: a later option wins), e.g. another --allowed-peer-ip."""

    def __init__(self, sts: dict[str, Any], secret: str, tmp: Path, extra: list[str] | None = None) -> None:
        container = sts["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["turnserver"]
        self.port, self.tls_port = free_port(), free_port()
        args = []
        for arg in container["args"]:
            arg = arg.replace("$(TURN_SECRET)", secret)  # Kubernetes' $(VAR) expansion from the container env
            arg = arg.replace(coturn.STATE_DIR, str(tmp)).replace(coturn.TLS_DIR, str(tmp))  # the pod's mounts
            arg = arg.replace("--listening-port=3478", f"--listening-port={self.port}")
            arg = arg.replace("--tls-listening-port=5349", f"--tls-listening-port={self.tls_port}")
            args.append(arg)
        # Only loopback here: listen and relay on 127.0.0.1 (a pod listens on its own interfaces).
        args += ["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", *(extra or [])]
        self.log = tmp / "turnserver.log"
        self.process = subprocess.Popen(["turnserver", *args], stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready = the TCP listener answers (the pod's readiness probe)
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"turnserver did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
