"""`avatar-runtime models pull|verify|list` as a process: exit codes, messages, Ctrl-C and resume.

The production default models are pulled from a fake hub on loopback (HF_ENDPOINT / MODELSCOPE_ENDPOINT point
at it), with tiny stand-ins for the real files, so the default specs' repos, file names and the LAM archive
layout are exercised end to end.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from avatar_runtime.config import RuntimeConfig

from tests.support.fake_hub import FakeHub

CHECKPOINT = random.Random(7).randbytes(200_000)


def _lam_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("pretrained_models/lam_audio2exp_streaming.tar")
        info.size = len(CHECKPOINT)
        tar.addfile(info, io.BytesIO(CHECKPOINT))
    return buffer.getvalue()


WAV2VEC2 = {
    "config.json": b'{"hidden_size": 768}',
    "preprocessor_config.json": b'{"sampling_rate": 16000}',
    "model.safetensors": random.Random(8).randbytes(400_000),
    "pytorch_model.bin": b"not selected",
}
SENSEVOICE = {
    "model.pt": random.Random(9).randbytes(100_000),
    "config.yaml": b"encoder: SenseVoiceEncoderSmall\n",
    "am.mvn": b"<Nnet>\n",
    "chn_jpn_yue_eng_ko_spectok.bpe.model": b"bpe",
    "configuration.json": b'{"framework": "pytorch"}',
    "README.md": b"not selected",
}


@pytest.fixture
def hub():
    with FakeHub() as server:
        server.add_hf("facebook/wav2vec2-base-960h", WAV2VEC2)
        server.add_hf("3DAIGC/LAM_audio2exp", {"LAM_audio2exp_streaming.tar": _lam_archive()})
        server.add_modelscope("iic/SenseVoiceSmall", SENSEVOICE)
        yield server


def cli(tmp_path: Path, hub_url: str, *args: str, config_text: str | None = None, popen: bool = False):
    config = tmp_path / "config.yaml"
    config.write_text(config_text or f"model_dir: {tmp_path / 'models'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATAR_", "HF_", "MODELSCOPE_", "OPENAI_"))}
    env |= {"HF_ENDPOINT": hub_url, "MODELSCOPE_ENDPOINT": hub_url}  # never the real hubs
    command = [sys.executable, "-m", "avatar_runtime.cli", "models", *args, "--config", str(config)]
    if popen:
        return subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_pull_verify_list_the_production_defaults(hub, tmp_path):
    models = tmp_path / "models"

    pulled = cli(tmp_path, hub.url, "pull")

    assert pulled.returncode == 0, pulled.stderr
    for name, data in WAV2VEC2.items():
        path = models / "wav2vec2-base-960h" / name
        assert path.read_bytes() == data if name != "pytorch_model.bin" else not path.exists()
    assert (models / "lam-audio2exp" / "pretrained_models" / "lam_audio2exp_streaming.tar").read_bytes() == CHECKPOINT
    assert sorted(p.name for p in (models / "sensevoice-small").iterdir()) == sorted(set(SENSEVOICE) - {"README.md"})
    assert "wav2vec2-base-960h/model.safetensors: 100%" in pulled.stderr  # log-line progress: stderr is no TTY
    assert "lam-audio2exp: unpacking LAM_audio2exp_streaming.tar" in pulled.stdout

    verified = cli(tmp_path, hub.url, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert [line.split()[:2] for line in verified.stdout.splitlines()] == [
        ["ok", "wav2vec2-base-960h:"],
        ["ok", "lam-audio2exp:"],
        ["ok", "sensevoice-small:"],
    ]

    listed = cli(tmp_path, hub.url, "list")
    assert listed.returncode == 0
    rows = {line.split()[0]: line.split()[-1] for line in listed.stdout.splitlines()[1:4]}
    assert rows == {"wav2vec2-base-960h": "ok", "lam-audio2exp": "ok", "sensevoice-small": "ok"}

    (models / "sensevoice-small" / "am.mvn").write_bytes(b"<Nnet>\r")
    verified = cli(tmp_path, hub.url, "verify", "--model", "sensevoice-small")
    assert verified.returncode == 1 and "CORRUPT  sensevoice-small:" in verified.stdout
    assert "am.mvn" in verified.stdout and len(verified.stdout.splitlines()) == 1


def test_bad_input_is_one_line_and_exit_2(hub, tmp_path):
    unknown = cli(tmp_path, hub.url, "pull", "--model", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "avatar-runtime models: unknown model 'nope' (configured: lam-audio2exp, sensevoice-small, wav2vec2-base-960h)"
    ]
    bad_config = cli(tmp_path, hub.url, "pull", config_text="model_dir: [1, 2]\n")
    assert bad_config.returncode == 2 and len(bad_config.stderr.strip().splitlines()) == 1
    assert "model_dir" in bad_config.stderr
    assert hub.requests == []


def test_hub_errors_exit_1_naming_host_and_repo(hub, tmp_path):
    hub.token = "required"  # every Hugging Face request is now refused
    result = cli(tmp_path, hub.url, "pull", "--model", "wav2vec2-base-960h")
    assert result.returncode == 1
    host = hub.url.removeprefix("http://")
    assert f"{host}: listing facebook/wav2vec2-base-960h@main: HTTP 401" in result.stderr


def test_offline_pull_names_missing_files_and_sends_nothing(hub, tmp_path):
    result = cli(tmp_path, hub.url, "pull", "--offline")
    assert result.returncode == 1
    for path in (
        "wav2vec2-base-960h/model.safetensors",
        "lam-audio2exp/LAM_audio2exp_streaming.tar",
        "sensevoice-small/model.pt",
    ):  # noqa: E501
        assert str(tmp_path / "models" / path) in result.stderr
    assert hub.requests == []


def test_ctrl_c_keeps_the_part_file_and_the_next_pull_resumes(hub, tmp_path):
    key = "facebook/wav2vec2-base-960h/model.safetensors"
    release = hub.stall(key, after=150_000)
    process = cli(tmp_path, hub.url, "pull", "--model", "wav2vec2-base-960h", popen=True)
    try:
        deadline = time.monotonic() + 30
        while hub.bytes_served(key) < 150_000:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        time.sleep(0.2)  # let the client write what it received
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "partial downloads (*.part) are kept" in stderr
    part = tmp_path / "models" / "wav2vec2-base-960h" / "model.safetensors.part"
    assert part.stat().st_size == 150_000

    resumed = cli(tmp_path, hub.url, "pull", "--model", "wav2vec2-base-960h")

    assert resumed.returncode == 0, resumed.stderr
    assert hub.downloads(key)[-1].headers["range"] == "bytes=150000-"
    assert (tmp_path / "models" / "wav2vec2-base-960h" / "model.safetensors").read_bytes() == WAV2VEC2[
        "model.safetensors"
    ]
    assert "resuming at 150.0 KB" in resumed.stderr and not part.exists()


@pytest.mark.skipif("models" not in RuntimeConfig.model_fields, reason="config.py does not carry `models:` yet")
def test_models_and_hub_from_the_config_file(hub, tmp_path):
    data = random.Random(10).randbytes(10_000)
    url = hub.add_url("extra.bin", data)
    config = (
        f"model_dir: {tmp_path / 'models'}\n"
        f"hub:\n  huggingface_endpoint: {hub.url}\n  retries: 1\n"
        "models:\n"
        f"  - {{name: extra, source: url, url: '{url}', sha256: {hashlib.sha256(data).hexdigest()}}}\n"
    )
    pulled = cli(tmp_path, hub.url, "pull", config_text=config)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "models" / "extra" / "extra.bin").read_bytes() == data
    assert [r.file for r in hub.requests] == ["files/extra.bin"]  # only the configured model, not the defaults
