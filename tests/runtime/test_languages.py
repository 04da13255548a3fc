"""Which languages a configuration hears and speaks, and the warning when they do not meet."""

from __future__ import annotations

import subprocess
import sys

import pytest
from avatar_runtime.config import load_config
from avatar_runtime.languages import languages_of, tts_languages


def config_with(**sections):
    config = load_config(env={})
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


def test_the_embedded_stack_is_english():
    languages = languages_of(load_config(env={}))
    assert languages.as_dict() == {"asr": ["en"], "tts": ["en"], "conversation": ["en"]}
    assert languages.problem() is None


@pytest.mark.parametrize(
    ("engine", "voice", "expected"),
    [
        ("edge", None, ("zh",)),
        ("edge", "ja-JP-NanamiNeural", ("ja",)),
        ("espeak", "en-us", ("en",)),
        ("espeak", "cmn", ("zh",)),
        ("espeak", "de", ("de",)),
        ("piper", "/voices/de_DE-thorsten-medium.onnx", ("de",)),
        ("cosyvoice", "longxiaochun", ("zh", "en", "ja", "ko", "yue")),
    ],
)
def test_tts_voice_languages(engine, voice, expected):
    assert tts_languages(engine, voice) == expected


def test_sensevoice_with_a_chinese_voice_converses_in_chinese():
    config = config_with(asr={"engine": "sensevoice", "language": "auto"}, tts={"engine": "edge"})
    languages = languages_of(config)
    assert languages.conversation == ("zh",) and languages.problem() is None
    config.asr.language = "ja"
    assert "ASR hears ja but the TTS voice speaks zh" in languages_of(config).problem()


def test_english_asr_with_a_chinese_voice_is_reported():
    config = config_with(tts={"engine": "edge", "voice": "zh-CN-YunxiNeural"})
    assert "no language is both heard and spoken" in languages_of(config).problem()


def test_check_config_warns_about_a_language_mismatch(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("tts:\n  engine: edge\n  voice: zh-CN-XiaoxiaoNeural\n")
    done = subprocess.run([sys.executable, "-m", "avatar_runtime.cli", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "no language is both heard and spoken" in done.stderr
