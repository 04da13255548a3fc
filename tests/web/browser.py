"""Run a Node browser script (playwright-core + Debian Chromium) and return the JSON it reports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

WEB_TESTS = Path(__file__).parent
REPO = WEB_TESTS.parents[1]
NODE_PATH = REPO / "web" / "node_modules"


def require_browser() -> None:
    """Fail (not skip) when the browser stack is missing: `make test` installs it, so absence is a bug."""
    missing = [tool for tool in ("node", "chromium") if shutil.which(tool) is None]
    if not (NODE_PATH / "playwright-core").is_dir():
        missing.append("web/node_modules/playwright-core")
    if missing:
        pytest.fail(f"browser test stack missing: {', '.join(missing)} (run `make test`, which installs it)")


def run_script(script: str, *args: str, timeout_s: float = 240) -> dict:
    """Run tests/web/<script> with args; its last stdout line is the JSON result."""
    require_browser()
    completed = subprocess.run(
        ["node", str(WEB_TESTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"NODE_PATH": str(NODE_PATH), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        cwd=REPO / "web",
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise AssertionError(f"{script} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    return json.loads(lines[-1])
