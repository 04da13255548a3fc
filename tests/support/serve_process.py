"""`avatar-runtime serve` as a user starts it: a real process on a free loopback port, clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.net import free_port


def start_serve(config: Path, cwd: Path, *, tls: bool = True) -> tuple[subprocess.Popen, str]:
    """The process (stdout and stderr merged, text) and its base URL; the caller terminates it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AVATAR_"))}
    args = [sys.executable, "-m", "avatar_runtime.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), *([] if tls else ["--no-tls"])]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    return process, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
