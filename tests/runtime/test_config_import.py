"""`avatar-runtime config import`: OpenAvatarChat configs converted into ours, exactly, with nothing secret copied.

The fixtures follow upstream OpenAvatarChat files (each names its file and commit). Expected values are worked
out from OpenAvatarChat's semantics (samples at 16 kHz in 512-sample clips, history counted in messages), and
the VAD conversion is checked against a model of OpenAvatarChat's own start/end counting fed the same clips.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import httpx
import numpy as np
import pytest
import yaml
from avatar_runtime.config import VADConfig, load_config
from avatar_runtime.engines.lam.network import RELEASED_DIMS
from avatar_runtime.migrate.openavatarchat import _drop_rejected, convert
from avatar_runtime.migrate.result import Builder
from avatar_runtime.migrate.source import SourceError, parse_source
from avatar_runtime.pipeline.turn_detector import SpeechEnded, SpeechStarted, TurnDetector

from tests.support.net import free_port
from tests.support.tiny_lam import tiny_network, write_lam_cache
from tests.support.tiny_sensevoice import build_tiny_sensevoice

FIXTURES = Path(__file__).parent / "fixtures" / "openavatarchat"
LAM, BAILIAN, EDGE = (
    FIXTURES / f"{n}.yaml"
    for n in ("chat_with_lam", "chat_with_openai_compatible_bailian_cosyvoice", "chat_with_edge_tts")
)
PROMPT_TEXT = "希望你以后能够做的比我还好呦。"  # CosyVoice's zero-shot sample sentence
P21 = Path(__file__).resolve().parents[3] / "shared/fixtures/lam/p2-1.zip"  # a real LAM export
HANDLERS = "default.chat_engine.handler_configs"
ROOT = PurePosixPath("/srv/OpenAvatarChat")
FIXTURE_SECRETS = ("fixture-turn-password-7f3a", "sk-fixture-dashscope-tts-0d9e", "sk-fixture-llm-secret-4b1c")
LAM_PROMPT = (  # the upstream file's system prompt
    "请你扮演一个 AI 助手，用简短的两三句对话来回答用户的问题，"
    "并在对话内容中加入合适的标点符号，不需要讨论标点符号相关的内容"
)


def clean_env() -> dict[str, str]:
    drop = ("OPENAI_", "AVATAR_", "DASHSCOPE_", "HF_", "MODELSCOPE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "avatar_runtime.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=cwd,
        timeout=60,
    )


def converted(path: Path, root: PurePosixPath = ROOT):
    return convert(parse_source(path.read_text(encoding="utf-8"), str(path)), root=root, output="out.yaml")


def from_handlers(**handlers) -> dict:
    """A minimal OpenAvatarChat document holding these handler_configs."""
    return {"default": {"chat_engine": {"handler_configs": handlers}}}


def not_mapped(conversion) -> dict[str, str]:
    return {entry.source: entry.reason for entry in conversion.not_mapped}


def assert_no_secret(*texts: str, secrets=FIXTURE_SECRETS) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


# --- the three upstream-shaped fixtures, end to end through the CLI -------------------------------------------


def test_chat_with_lam_converts_to_exact_values_and_starts_check_config(tmp_path):
    out = tmp_path / "lam.yaml"
    result = cli("config", "import", str(LAM), "-o", str(out), "--oac-root", str(ROOT))
    assert result.returncode == 0, result.stderr
    written = out.read_text(encoding="utf-8")
    assert yaml.safe_load(written) == {
        "server": {"concurrent_limit": 5},
        "vad": {"min_speech_ms": 128, "hangover_ms": 320},  # 2048 and 5000 samples at 16 kHz, whole 32 ms clips
        "asr": {"engine": "sensevoice", "language": "auto"},
        "llm": {
            "base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "model": "qwen-plus",
            "system_prompt": LAM_PROMPT,
        },
        "tts": {"engine": "cosyvoice", "voice": "longxiaocheng"},
        "a2e": {"engine": "lam"},
        "turn": {
            "urls": ["turn:turn.example.com:3478", "turns:turn.example.com:5349"],
            "username": "avatar",
            "stun_urls": ["stun:stun.example.com:3478"],
        },
        "avatar": {"name": "barbara"},
    }
    header = written.splitlines()[:2]
    assert str(LAM.absolute()) in header[0] and dt.date.today().isoformat() in header[1]
    assert "# SileroVad.end_delay: 5000 samples of silence at 16 kHz = 320 ms" in written
    assert "# api_key: set OPENAI_API_KEY in the environment" in written
    assert_no_secret(written, result.stderr)

    report = result.stderr
    assert "Mapped (" in report and "Needs your action (5):" in report and "Not mapped (7):" in report
    for path in (
        "default.logger.log_level",
        "default.service.cert_file",
        "default.service.cert_key",
        "default.chat_engine.model_root",
        "default.chat_engine.handler_search_path",
        f"{HANDLERS}.SileroVad.speech_padding",
        f"{HANDLERS}.LLMOpenaiCompatible.enable_video_input",
    ):
        assert f"  {path}: " in report
    assert f"Copy the LAM avatar {ROOT}/lam_samples/barbara.zip to ./avatars/barbara.zip" in report
    assert 'export OPENAI_API_KEY="$DASHSCOPE_API_KEY"' in report
    assert f"avatar-runtime models pull --config {out}" in report

    checked = cli("check-config", "--config", str(out))
    assert checked.returncode == 0, checked.stderr
    merged = json.loads(checked.stdout)
    assert merged["vad"]["hangover_ms"] == 320 and merged["a2e"]["engine"] == "lam"
    assert merged["server"]["concurrent_limit"] == 5 and merged["avatar"]["name"] == "barbara"


def test_bailian_cosyvoice_keys_are_never_copied_and_the_report_says_which_variables_to_set(tmp_path):
    out = tmp_path / "bailian.yaml"
    result = cli("config", "import", str(BAILIAN), "-o", str(out))
    assert result.returncode == 0, result.stderr
    written = out.read_text(encoding="utf-8")
    assert_no_secret(written, result.stderr)
    config = yaml.safe_load(written)
    assert config["llm"] == {
        "base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "model": "qwen-plus",
        "system_prompt": "You are a helpful avatar. Answer in two or three short sentences.",
        "history_turns": 10,
    }  # 20 messages = 10 exchanges
    assert config["tts"] == {"engine": "cosyvoice", "voice": "longxiaochun", "cosyvoice": {"model": "cosyvoice-v2"}}
    assert config["server"] == {"concurrent_limit": 5} and "api_key" not in json.dumps(config)
    assert f"the LLM API key in {HANDLERS}.LLMOpenAICompatible.api_key was not copied" in result.stderr
    assert f"the DashScope key in {HANDLERS}.CosyVoice.api_key was not copied" in result.stderr
    assert f"  {HANDLERS}.LiteAvatar: LiteAvatar renders a talking-head video" in result.stderr
    assert cli("check-config", "--config", str(out)).returncode == 0


def test_edge_tts_variant_with_api_key_env_turn_in_chat_engine_and_a_real_certificate():
    conversion = converted(EDGE)
    assert conversion.values == {
        "server": {"port": 8443, "concurrent_limit": 1},
        # threshold 0.6; 1024 samples = 2 clips; 2048 = 4 clips; look-back (2048 + 1024) / 512 = 6 clips, 2 of
        # them the onset itself; complete_end lowered to the 128 ms hangover (pause_ms is 128 by default already).
        "vad": {
            "threshold": 0.6,
            "release_threshold": 0.45,
            "min_speech_ms": 64,
            "hangover_ms": 128,
            "complete_end_ms": 128,
            "preroll_ms": 128,
        },
        "asr": {"engine": "sensevoice", "language": "auto"},
        "llm": {
            "base_url": "https://api.atlascloud.ai/v1",
            "model": "qwen/qwen3.5-flash",
            "system_prompt": "You are a friendly assistant.\nKeep answers short.",
            "history_turns": 10,
        },
        "tts": {"engine": "edge", "voice": "en-US-AvaMultilingualNeural"},
        "turn": {
            "urls": ["turn:203.0.113.7:3478?transport=udp"],
            "stun_urls": ["stun:stun.l.google.com:19302"],
            "username": "oac",
        },
        "tls": {
            "cert_file": f"{ROOT}/certs/avatar.example.com.crt",
            "key_file": "/etc/ssl/private/avatar.example.com.key",
        },
    }
    actions = "\n".join(conversion.actions)
    assert 'export OPENAI_API_KEY="$ATLASCLOUD_API_KEY"' in actions
    assert "came from $TURN_PASSWORD and was not copied" in actions
    skipped = not_mapped(conversion)
    assert set(skipped) >= {
        f"{HANDLERS}.InterruptHandler",
        f"{HANDLERS}.LiteAvatar",
        f"{HANDLERS}.RtcClient.connection_ttl",
    }
    assert "barge-in is built in" in skipped[f"{HANDLERS}.InterruptHandler"]


# --- the VAD: same start, end and look-back as OpenAvatarChat, fed the same 512-sample clips ------------------


def openavatarchat_vad(probabilities, threshold, start_delay, end_delay, look_back):
    """OpenAvatarChat's SileroVad counting (its handler's states END → PRE_START → START), modelled from its
    source: returns (clip index of the start, first clip index it sends, clip index of the end), 0-based."""
    state, speech, silence, start_at, first_sent = "END", 0, 0, None, None
    for i, p in enumerate(probabilities):
        speech, silence = (speech + 512, 0) if p > threshold else (0, silence + 512)
        if state == "PRE_START":
            if speech >= start_delay:
                state, start_at = "START", i
                first_sent = i - math.ceil((look_back + start_delay) / 512) + 1
            elif silence > 0:
                state = "END"
        elif state == "START" and silence >= end_delay:
            return start_at, first_sent, i
        elif state == "END" and speech > 0:
            state = "PRE_START"
    raise AssertionError("OpenAvatarChat's model never ended the turn")


@pytest.mark.parametrize(
    ("start_delay", "end_delay", "look_back"),
    [(2048, 5000, 5000), (1024, 2048, 2048), (512, 8000, 0), (3000, 700, 1000), (1100, 3000, 100), (5000, 20000, 6000)],
)
def test_converted_vad_starts_ends_and_looks_back_where_openavatarchat_did(start_delay, end_delay, look_back):
    settings = {
        "module": "vad/silerovad/vad_handler_silero",
        "speaking_threshold": 0.5,
        "start_delay": start_delay,
        "end_delay": end_delay,
        "buffer_look_back": look_back,
    }
    vad = VADConfig(**convert(from_handlers(SileroVad=settings), root=ROOT).values.get("vad", {}))
    probabilities = [0.05] * 40 + [0.95] * 30 + [0.05] * 60  # silence, speech, silence
    start, first_sent, end = openavatarchat_vad(probabilities, 0.5, start_delay, end_delay, look_back)

    detector, started, ended = TurnDetector(vad), None, None
    for i, p in enumerate(probabilities):
        chunk = np.full(512, i, dtype=np.float32)  # each chunk carries its index
        for event in detector.push(chunk, p):
            if isinstance(event, SpeechStarted):
                started = i
            if isinstance(event, SpeechEnded):
                ended, utterance = i, event.utterance
    assert (started, ended) == (start, end)
    # The same audio from before the onset reaches ASR. One exception, in our favour: with look-back + start
    # delay <= 512 samples OpenAvatarChat sends only the current clip, dropping the first speech clip; ours
    # always keeps the onset itself (the speech starts at clip 40).
    assert int(utterance[0]) == min(first_sent, 40)


# --- the LLM, TTS, TURN and handler variants found upstream ----------------------------------------------------

LLM = "llm/openai_compatible/llm_handler_openai_compatible"


@pytest.mark.parametrize(
    ("settings", "expected_action"),
    [
        ({"api_key": "sk-literal-9"}, "Set OPENAI_API_KEY in the environment: the LLM API key in"),
        ({"api_key": "@format {env[MY_LLM_KEY]}"}, 'export OPENAI_API_KEY="$MY_LLM_KEY"'),
        ({"api_key": "${MY_LLM_KEY}"}, 'export OPENAI_API_KEY="$MY_LLM_KEY"'),
        ({"api_key_env": "ATLASCLOUD_API_KEY"}, 'export OPENAI_API_KEY="$ATLASCLOUD_API_KEY"'),
        ({}, 'export OPENAI_API_KEY="$DASHSCOPE_API_KEY" (OpenAvatarChat read the LLM key from DASHSCOPE_API_KEY by'),
        ({"api_key": "@jinja {{ env.OPENAI_API_KEY }}"}, "Keep OPENAI_API_KEY set"),
    ],
)
def test_llm_keys_become_environment_advice_never_values(settings, expected_action):
    conversion = convert(from_handlers(LLM={"module": LLM, "model_name": "m", **settings}), root=ROOT)
    assert any(expected_action in action for action in conversion.actions), conversion.actions
    assert "api_key" not in conversion.values.get("llm", {})
    assert any("set OPENAI_API_KEY in the environment" in line for line in conversion.notes["llm"])
    assert_no_secret(json.dumps(conversion.values), *conversion.actions, secrets=("sk-literal-9",))


def test_llm_url_history_and_video_variants():
    conversion = convert(
        from_handlers(
            A={
                "module": LLM,
                "api_url": "${LLM_URL}",
                "history_length": 7,
                "enable_video_input": True,
                "temperature": 0.2,
                "max_tokens": 9999,
            },
            B={"module": LLM, "model_name": "second"},
        ),
        root=ROOT,
    )
    assert conversion.values["llm"] == {"history_turns": 3, "temperature": 0.2}  # 7 messages = 3 whole exchanges
    assert any('export OPENAI_BASE_URL="$LLM_URL"' in action for action in conversion.actions)
    skipped = not_mapped(conversion)
    assert "camera input is not supported" in skipped[f"{HANDLERS}.A.enable_video_input"]
    assert "1..8192" in skipped[f"{HANDLERS}.A.max_tokens"]
    assert skipped[f"{HANDLERS}.B"].startswith("a second llm handler: Gaussian Avatar runs one (A was converted)")
    ftp = convert(from_handlers(A={"module": LLM, "api_url": "ftp://x"}), root=ROOT)
    assert "not an http(s) URL" in not_mapped(ftp)[f"{HANDLERS}.A.api_url"] and "llm" not in ftp.values


def test_in_process_cosyvoice_becomes_a_cosyvoice_server_with_the_models_rate():
    conversion = convert(
        from_handlers(
            CosyVoice={
                "module": "tts/cosyvoice/tts_handler_cosyvoice",
                "model_name": "iic/CosyVoice-300M-SFT",
                "spk_id": "中文女",
                "sample_rate": 24000,
                "process_num": 2,
            }
        ),
        root=ROOT,
    )
    assert conversion.values["tts"] == {"engine": "cosyvoice", "voice": "中文女", "cosyvoice": {"mode": "server"}}
    rate = next(m for m in conversion.mapped if m.target == "tts.cosyvoice.sample_rate")
    assert (rate.value, rate.written, rate.source) == (22050, False, f"{HANDLERS}.CosyVoice.model_name")  # default
    assert any(
        "Start a CosyVoice server" in a and "--model_dir iic/CosyVoice-300M-SFT" in a for a in conversion.actions
    )
    skipped = not_mapped(conversion)
    assert {f"{HANDLERS}.CosyVoice.sample_rate", f"{HANDLERS}.CosyVoice.process_num"} <= set(skipped)
    v2 = convert(
        from_handlers(
            C={
                "module": "tts/cosyvoice/tts_handler_cosyvoice",
                "model_name": "iic/CosyVoice2-0.5B",
                "api_url": "http://cosy:50000",
            }
        ),
        root=ROOT,
    )
    assert v2.values["tts"]["cosyvoice"] == {"mode": "server", "url": "http://cosy:50000", "sample_rate": 24000}


def test_remote_cosyvoice_zero_shot_prompt_is_resolved_against_the_checkout():
    conversion = convert(
        from_handlers(
            CosyVoice={
                "module": "tts/cosyvoice/tts_handler_cosyvoice_remote",
                "api_url": "http://127.0.0.1:50000/inference_zero_shot",
                "ref_audio_path": "assets/zero_shot_prompt.wav",
                "ref_audio_text": PROMPT_TEXT,
            }
        ),
        root=ROOT,
    )
    assert conversion.values["tts"]["cosyvoice"] == {
        "mode": "server",
        "url": "http://127.0.0.1:50000/inference_zero_shot",
        "prompt_wav": f"{ROOT}/assets/zero_shot_prompt.wav",
        "prompt_text": PROMPT_TEXT,
    }
    alone = convert(
        from_handlers(
            C={"module": "tts/cosyvoice/tts_handler_cosyvoice_remote", "api_url": "http://c", "ref_audio_path": "a.wav"}
        ),
        root=ROOT,
    )
    assert "go together" in not_mapped(alone)[f"{HANDLERS}.C.ref_audio_path"]


def test_turn_precedence_twilio_and_static_secrets():
    handler_turn = {"urls": "turn:h:3478", "username": "u", "credential": "pw-1"}
    engine_turn = {"urls": ["turn:e:3478"]}
    document = {
        "default": {
            "chat_engine": {
                "turn_config": engine_turn,
                "handler_configs": {
                    "RtcClient": {"module": "client/rtc_client/client_handler_rtc", "turn_config": handler_turn}
                },
            }
        }
    }
    conversion = convert(document, root=ROOT)
    assert conversion.values["turn"] == {"urls": ["turn:h:3478"], "username": "u"}  # the handler's, as OAC did
    assert (
        "OpenAvatarChat took RtcClient.turn_config first" in not_mapped(conversion)["default.chat_engine.turn_config"]
    )
    assert_no_secret(json.dumps(conversion.values), secrets=("pw-1",))

    twilio = {"turn_provider": "twilio", "twilio_account_sid": "AC-sid-1", "twilio_auth_token": "tok-secret-1"}
    conversion = convert({"default": {"chat_engine": {"turn_config": twilio}}}, root=ROOT)
    assert "turn" not in conversion.values and "Twilio" in not_mapped(conversion)["default.chat_engine.turn_config"]
    assert_no_secret(*conversion.actions, *not_mapped(conversion).values(), secrets=("tok-secret-1", "AC-sid-1"))

    secret = convert(
        {"default": {"chat_engine": {"rtc_config": {"urls": ["turns:t:5349"], "static_auth_secret": "s3"}}}}, root=ROOT
    )
    assert secret.values == {"turn": {"urls": ["turns:t:5349"]}}
    assert any("Set AVATAR_TURN_SECRET to coturn's static-auth-secret" in a for a in secret.actions)


def test_handler_kinds_disabled_unknown_and_nameless_modules():
    conversion = convert(
        from_handlers(
            SileroVad={"start_delay": 4096},  # no module: recognised by its conventional name
            MiniCPM={"module": "llm/minicpm/llm_handler_minicpm", "model_name": "MiniCPM-o-2_6"},
            Dify={"module": "llm/dify/llm_handler_dify", "api_key": "app-dify-secret-1"},
            Edge={"module": "tts/edgetts/tts_handler_edgetts", "enabled": False, "voice": "x"},
            Mystery={"module": "foo/bar/baz_handler", "x": 1},
            Duplex={"module": "vad/silerovad/duplex_vad_handler", "end_delay": 32000, "volume_threshold": -50},
        ),
        root=ROOT,
    )
    skipped = not_mapped(conversion)
    assert conversion.values.get("vad") == {"min_speech_ms": 256} and "tts" not in conversion.values
    assert "MiniCPM-o" in skipped[f"{HANDLERS}.MiniCPM"] and "not OpenAI-compatible" in skipped[f"{HANDLERS}.Dify"]
    assert skipped[f"{HANDLERS}.Edge"] == "disabled in the source (enabled: false)"
    assert "module foo/bar/baz_handler" in skipped[f"{HANDLERS}.Mystery"]
    assert skipped[f"{HANDLERS}.Duplex"].startswith("a second vad handler")
    assert_no_secret(*skipped.values(), *conversion.actions, secrets=("app-dify-secret-1",))
    duplex = convert(
        from_handlers(
            Duplex={
                "module": "vad/silerovad/duplex_vad_handler",
                "speaking_threshold": 0.25,
                "end_delay": 32000,
                "volume_threshold": -50,
            }
        ),
        root=ROOT,
    )
    assert duplex.values["vad"] == {"threshold": 0.25, "release_threshold": 0.1}
    assert "backstop" in not_mapped(duplex)[f"{HANDLERS}.Duplex.end_delay"]
    assert not_mapped(duplex)[f"{HANDLERS}.Duplex.volume_threshold"] == "no equivalent setting"


def test_the_lowest_concurrent_limit_wins_and_bad_values_are_reported():
    document = {
        "default": {
            "chat_engine": {
                "concurrent_limit": 5,
                "handler_configs": {
                    "LamClient": {
                        "module": "client/h5_rendering_client/client_handler_lam",
                        "concurrent_limit": 3,
                        "asset_path": "lam_samples/p2-1.zip",
                    }
                },
            }
        }
    }
    conversion = convert(document, root=ROOT)
    assert conversion.values["server"] == {"concurrent_limit": 3} and conversion.values["avatar"] == {"name": "p2-1"}
    assert (
        "the lower limit in LamClient.concurrent_limit"
        in not_mapped(conversion)["default.chat_engine.concurrent_limit"]
    )
    bad = convert({"default": {"chat_engine": {"concurrent_limit": 0}, "service": {"port": 99999}}}, root=ROOT)
    assert "server" not in bad.values
    assert set(not_mapped(bad)) >= {"default.chat_engine.concurrent_limit", "default.service.port"}


def test_a_value_our_schema_rejects_is_taken_out_and_reported():
    builder = Builder()
    builder.set("server.port", 0, "default.service.port")
    builder.set("llm.model", "qwen-plus", "default.x.model_name")
    _drop_rejected(builder)
    assert builder.result.values == {"llm": {"model": "qwen-plus"}}
    assert builder.result.not_mapped[0].source == "default.service.port"
    assert "rejected by our config" in builder.result.not_mapped[0].reason
    assert [m.target for m in builder.result.mapped] == ["llm.model"]


def test_other_dynaconf_environments_and_unknown_sections_are_reported():
    conversion = convert(
        {
            "default": {"service": {"host": "127.0.0.1", "workers": 2}, "extra": {}},
            "production": {"service": {"port": 1}},
        },
        root=ROOT,
    )
    assert conversion.values == {"server": {"host": "127.0.0.1"}}
    skipped = not_mapped(conversion)
    assert "only `default` is converted" in skipped["production"]
    assert set(skipped) >= {"default.service.workers", "default.extra"}


# --- bad input, existing output, stdout, --strict --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("default:\n  chat_engine: [1, 2\n", ["line 3", "not valid YAML"]),
        ("- default\n- chat_engine\n", ["not an OpenAvatarChat config", "found a list"]),
        ("chat_engine:\n  handler_configs: {}\n", ["must be inside the top-level `default:`"]),
        ("server:\n  port: 1\nvad:\n  threshold: 0.5\n", ["looks like a Gaussian Avatar config already"]),
        ("title: my notes\n", ["no top-level `default:` section"]),
        ("default:\n  logger:\n    log_level: INFO\n", ["neither `chat_engine:` nor `service:`"]),
        ("default:\n  chat_engine:\n    handler_configs: [a]\n", ["handler_configs must be a mapping"]),
        ("", ["is empty"]),
    ],
)
def test_bad_sources_exit_2_with_one_line_naming_the_file(tmp_path, content, needles):
    source, out = tmp_path / "bad.yaml", tmp_path / "out.yaml"
    source.write_text(content, encoding="utf-8")
    result = cli("config", "import", str(source), "-o", str(out))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(source) in lines[0], result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_unreadable_sources_exit_2(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x80\x81\xfe\xff" * 8)
    for source, needle in ((tmp_path / "missing.yaml", "cannot read"), (binary, "not UTF-8")):
        result = cli("config", "import", str(source))
        assert result.returncode == 2 and needle in result.stderr and result.stdout == ""
    with pytest.raises(SourceError, match="not valid YAML"):
        parse_source("a: [", "x.yaml")


def test_existing_output_needs_force_and_the_source_is_never_overwritten(tmp_path):
    out = tmp_path / "ours.yaml"
    out.write_text("keep: me\n")
    refused = cli("config", "import", str(LAM), "-o", str(out))
    assert refused.returncode == 2 and "exists; use --force" in refused.stderr and out.read_text() == "keep: me\n"
    forced = cli("config", "import", str(LAM), "-o", str(out), "--force")
    assert forced.returncode == 0 and yaml.safe_load(out.read_text())["a2e"] == {"engine": "lam"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.yaml"]  # no temporary file left behind
    copy = tmp_path / "chat_with_lam.yaml"
    copy.write_bytes(LAM.read_bytes())
    onto_itself = cli("config", "import", str(copy), "-o", str(copy), "--force")
    assert onto_itself.returncode == 2 and "is the source file" in onto_itself.stderr
    assert copy.read_bytes() == LAM.read_bytes()


def test_stdout_output_and_strict_mode(tmp_path):
    printed = cli("config", "import", str(BAILIAN), "-o", "-")
    assert printed.returncode == 0 and printed.stdout.startswith("# Gaussian Avatar runtime config")
    assert yaml.safe_load(printed.stdout)["llm"]["history_turns"] == 10 and "Not mapped (" in printed.stderr
    assert cli("config", "import", str(BAILIAN)).stdout == printed.stdout  # no -o: stdout too
    out = tmp_path / "strict.yaml"
    strict = cli("config", "import", str(BAILIAN), "-o", str(out), "--strict")
    assert strict.returncode == 1 and out.is_file()  # written, but some keys were not mapped
    help_text = cli("config", "import", "--help").stdout
    assert "exit codes:" in help_text and "--strict" in help_text and "--force" in help_text


def test_awkward_strings_survive_the_round_trip(tmp_path):
    prompt = 'yes: "quoted" # not a comment\n@format {x}\tand \\ backslash \u2028 separator — 你好'
    source = tmp_path / "config" / "odd.yaml"
    source.parent.mkdir()
    source.write_text(
        yaml.safe_dump(
            from_handlers(LLM={"module": LLM, "system_prompt": prompt, "model_name": "no"}), allow_unicode=True
        ),
        encoding="utf-8",
    )
    out = tmp_path / "odd-out.yaml"
    assert cli("config", "import", str(source), "-o", str(out)).returncode == 0
    config = load_config(out, env={})
    assert config.llm.system_prompt == prompt and config.llm.model == "no"


# --- following the advice gets a running runtime -----------------------------------------------------------------


@pytest.mark.skipif(not P21.is_file(), reason=f"the real LAM export fixture {P21} is absent")
def test_following_the_report_gets_the_converted_lam_config_ready(tmp_path):
    """Convert chat_with_lam.yaml, do what the report asks (avatar zip, models, keys), and serve it: /readyz
    turns 200 with the production engines (tiny stand-in weights) and /api/config shows the converted values."""
    out = tmp_path / "lam.yaml"
    assert cli("config", "import", str(LAM), "-o", str(out), cwd=tmp_path).returncode == 0
    (tmp_path / "avatars").mkdir()
    (tmp_path / "avatars" / "barbara.zip").write_bytes(P21.read_bytes())  # "Copy the LAM avatar ..."
    build_tiny_sensevoice(tmp_path / "models" / "sensevoice-small")  # "avatar-runtime models pull ..."
    write_lam_cache(tmp_path / "models", tiny_network(0, RELEASED_DIMS))  # tiny encoder, the released head
    # "Set ... in the environment", and for TURN the better of the two options the report gives.
    env = {**clean_env(), "OPENAI_API_KEY": "sk-test", "DASHSCOPE_API_KEY": "ds-test", "AVATAR_TURN_SECRET": "t"}
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "avatar_runtime.cli",
            "serve",
            "--config",
            str(out),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-tls",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
                assert "loading" in ready.json()["message"], ready.json()["message"]
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the converted config never got ready"
            time.sleep(0.3)
        api = httpx.get(f"http://127.0.0.1:{port}/api/config", timeout=5).json()
        assert api["sessions"]["limit"] == 5 and api["avatar"]["url"].endswith("/barbara.zip") and api["avatar"]["ok"]
        stun, turn = api["iceServers"]
        assert stun == {"urls": "stun:stun.example.com:3478"}
        assert turn["urls"] == ["turn:turn.example.com:3478", "turns:turn.example.com:5349"]
        expiry, _, user = turn["username"].partition(":")
        assert expiry.isdigit() and user and turn["credential"]  # ephemeral credentials from AVATAR_TURN_SECRET
    finally:
        process.terminate()
        process.communicate(timeout=20)
