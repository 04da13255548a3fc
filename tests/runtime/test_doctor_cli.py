"""`avatar-runtime doctor` as a user runs it: a real process, its report, --json, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def avatars(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("avatars")
    script = REPO / "hack/make_default_avatar.py"
    subprocess.run([sys.executable, str(script), "--out", str(directory / "default.zip")], check=True, timeout=60)
    return directory


def doctor(tmp_path: Path, config_text: str, *args: str, command: str = "doctor") -> subprocess.CompletedProcess:
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AVATAR_", "NO_COLOR"))}
    return subprocess.run(
        [sys.executable, "-m", "avatar_runtime.cli", command, "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip


def base_config(avatars: Path, port: int) -> str:
    return (
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        "tls: {enabled: false}\n"
        f"avatar: {{dir: {avatars}}}\n"
        "turn: {urls: ['turn:127.0.0.1:9'], static_auth_secret: s3cret}\n"
    )


def test_a_healthy_setup_exits_0_with_a_json_report(tmp_path, avatars):
    done = doctor(tmp_path, base_config(avatars, free_port()), "--json", "--skip-network")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["exit_code"] == 0 and report["summary"]["fail"] == 0
    groups = [check["group"] for check in report["checks"]]
    assert list(dict.fromkeys(groups)) == ["python", "engines", "gpu", "models", "web", "tls", "network", "turn", "llm"]
    statuses = {(c["group"], c["name"]): c["status"] for c in report["checks"]}
    assert statuses[("turn", "turn:127.0.0.1:9")] == "skip"  # --skip-network
    assert statuses[("web", "avatar")] == "ok" and statuses[("network", "microphone")] == "ok"
    assert all(set(c) == {"group", "name", "status", "finding", "fix"} and c["finding"] for c in report["checks"])
    assert "s3cret" not in done.stdout


def test_problems_exit_1_and_print_their_fix(tmp_path, avatars):
    port = free_port()
    config = base_config(avatars, port) + f"asr: {{engine: sensevoice, device: cuda}}\nmodel_dir: {tmp_path}/models\n"
    done = doctor(tmp_path, config, "--skip-network", "--host", "0.0.0.0")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "\033[" not in out  # no colour when stdout is not a terminal
    assert "FAIL  asr.device: cuda is configured, but torch" in out
    assert f"FAIL  sensevoice-small (asr.model): missing {tmp_path}/models/sensevoice-small/model.pt" in out
    assert f"fix: avatar-runtime models pull --config {tmp_path}/config.yaml --model sensevoice-small" in out
    assert f"WARN  plain HTTP on every interface: only a browser on this machine (http://localhost:{port})" in out
    assert out.rstrip().splitlines()[-1].startswith("2 failed, ")


def test_a_bad_config_exits_2_with_the_line_serve_prints(tmp_path):
    bad = "server: {concurrent_limit: 0}\n"
    done = doctor(tmp_path, bad)
    assert done.returncode == 2 and done.stdout == ""
    serve = doctor(tmp_path, bad, command="serve")
    assert done.stderr == serve.stderr
    expected = "avatar-runtime: invalid config: server.concurrent_limit: Input should be greater than or equal to 1"
    assert done.stderr.strip() == expected
