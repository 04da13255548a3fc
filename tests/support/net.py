"""Loopback networking helpers for tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released): to serve on, or to be refused by."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
