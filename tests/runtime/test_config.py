"""Config: documented defaults, env precedence, one clear line for bad input, exit code 2 from the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import avatar_runtime
import pytest
import yaml
from avatar_runtime.config import ConfigError, RuntimeConfig, load_config

DEFAULT_FILE = Path(avatar_runtime.__file__).parent / "default_config.yaml"


def test_documented_file_matches_the_built_in_defaults():
    documented = RuntimeConfig.model_validate(yaml.safe_load(DEFAULT_FILE.read_text()))
    assert documented == RuntimeConfig()


def test_environment_wins_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("llm:\n  base_url: http://file:1/v1\n  model: from-file\n")
    config = load_config(path, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "AVATAR_LLM_MODEL": "env-model"})
    assert config.llm.base_url == "http://127.0.0.1:9/v1" and config.llm.model == "env-model"
    assert load_config(path, env={}).llm.model == "from-file"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("server:\n  concurrent_limit: 0\n", "server.concurrent_limit"),
        ("vad:\n  hangover_ms: 100\n  pause_ms: 200\n", "pause_ms"),
        ("tts:\n  engine: nonsense\n", "tts.engine"),
        ("sever:\n  port: 1\n", "sever"),
        ("server: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_cli_exits_2_on_bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", "avatar_runtime.cli", "serve", "--config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "server.port" in lines[0]


def test_production_preset_is_valid_and_selects_the_production_engines():
    config = load_config(DEFAULT_FILE.parent / "presets" / "production.yaml", env={})
    assert (config.asr.engine, config.tts.engine, config.a2e.engine) == ("sensevoice", "edge", "lam")
    assert config.tts.fallback == "piper" and config.a2e.slice_ms <= 200
    assert {m.name for m in config.models} >= {"sensevoice-small", "lam-audio2exp", "wav2vec2-base-960h"}


def test_secrets_come_from_the_environment_and_are_not_printed(tmp_path):
    secrets = {"AVATAR_TURN_SECRET": "turn-s3cret", "DASHSCOPE_API_KEY": "ds-key", "HF_TOKEN": "hf-x",
               "OPENAI_API_KEY": "sk-y"}  # fmt: skip
    config = load_config(env=secrets)
    assert config.turn.static_auth_secret == "turn-s3cret" and config.tts.cosyvoice.api_key == "ds-key"
    assert config.hub.token == "hf-x" and config.llm.api_key == "sk-y"
    path = tmp_path / "c.yaml"
    path.write_text("turn:\n  credential: static-pass\n")
    shown = subprocess.run(
        [sys.executable, "-m", "avatar_runtime.cli", "check-config", "--config", str(path)],
        capture_output=True, text=True, env={**os.environ, **secrets}, check=True,
    ).stdout  # fmt: skip
    assert "turn" in shown and not any(v in shown for v in [*secrets.values(), "static-pass"])
