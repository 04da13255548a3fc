"""One converter per OpenAvatarChat handler we have an equivalent for; the reasons for those we do not.

Facts the conversions rest on (OpenAvatarChat's handler sources, 2025 releases):
- SileroVad counts in *samples at 16 kHz* and feeds Silero 512-sample clips (32 ms), as our turn detector does:
  speech starts after `start_delay` samples of consecutive speech clips, ends after `end_delay` samples of
  silence clips, and `buffer_look_back + start_delay` samples (whole clips) are sent from before the start.
  So every duration becomes whole 32 ms chunks: ceil(samples / 512) * 32 ms, exactly what it waited.
- The OpenAI-compatible LLM's `history_length` counts *messages* (user and assistant each one); ours counts
  exchanges. Its key comes from `api_key`, else the variable named by `api_key_env`, else DASHSCOPE_API_KEY.
- LAM_Driver loads `<model_root>/<model_name>/lam_audio2exp_streaming.tar` and `<model_root>/wav2vec2-base-960h`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath, PurePosixPath
from typing import Any

from .result import Builder, default_at
from .source import Handler, env_reference, is_dynaconf_expression

MODULE_KINDS = {
    "llm_handler_openai_compatible": "llm",
    "vad_handler_silero": "vad",
    "duplex_vad_handler": "vad_duplex",
    "asr_handler_sensevoice": "sensevoice",
    "tts_handler_edgetts": "edge",
    "tts_handler_cosyvoice_bailian": "cosyvoice_dashscope",
    "tts_handler_cosyvoice": "cosyvoice_local",
    "tts_handler_cosyvoice_remote": "cosyvoice_server",
    "avatar_handler_lam_audio2expression": "lam_a2e",
    "client_handler_lam": "lam_client",
    "ws_lam_client_handler": "lam_client",
    "client_handler_rtc": "rtc_client",
}
# Only when a handler has no `module` (OpenAvatarChat itself needs one): its conventional name.
NAME_KINDS = (("silero", "vad"), ("sensevoice", "sensevoice"), ("edge", "edge"), ("lamclient", "lam_client"),
              ("lam_driver", "lam_a2e"), ("rtcclient", "rtc_client"), ("openai", "llm"))  # fmt: skip
STAGES = {
    "llm": "llm", "vad": "vad", "vad_duplex": "vad", "sensevoice": "asr", "edge": "tts",
    "cosyvoice_dashscope": "tts", "cosyvoice_local": "tts", "cosyvoice_server": "tts", "lam_a2e": "a2e",
    "lam_client": "client", "rtc_client": "client",
}  # fmt: skip

_VIDEO_AVATAR = (
    "renders a talking-head video on the server; Gaussian Avatar animates a LAM 3D Gaussian avatar in the "
    "browser (put a LAM avatar .zip in avatar.dir and set avatar.name)"
)
UNSUPPORTED = {  # module directory -> why there is no equivalent
    "avatar/liteavatar": "LiteAvatar " + _VIDEO_AVATAR,
    "avatar/musetalk": "MuseTalk " + _VIDEO_AVATAR,
    "avatar/flashhead": "FlashHead " + _VIDEO_AVATAR,
    "llm/minicpm": "MiniCPM-o (speech in, speech out, in-process) has no equivalent; our pipeline is ASR → "
    "OpenAI-compatible LLM → TTS: serve a text model behind an OpenAI-compatible API and set llm.base_url",
    "llm/qwen_omni": "Qwen-Omni realtime (speech in, speech out) has no equivalent; use an OpenAI-compatible "
    "text model (llm.base_url, llm.model) with ASR and TTS",
    "llm/dify": "Dify's chat-messages API is not OpenAI-compatible; point llm.base_url at an OpenAI-compatible "
    "endpoint instead",
    "llm/semantic_turn_detector": "an extra LLM judging interruptions has no equivalent; barge-in follows "
    "vad.min_speech_ms and the turn end vad.hangover_ms / vad.complete_end_ms",
    "vad/smart_turn_eou": "the Smart Turn end-of-utterance model has no equivalent; a turn ends after "
    "vad.hangover_ms of silence, or vad.complete_end_ms once the transcript is a complete sentence",
    "logic/interrupt": "barge-in is built in: speech longer than vad.min_speech_ms interrupts the avatar",
    "client/ws_client": "the WebSocket client protocol has no equivalent; our browser client uses WebRTC",
}

SAMPLE_RATE = 16000
CLIP = 512  # samples per Silero clip, in OpenAvatarChat and in our turn detector alike
CHUNK_MS = CLIP * 1000 // SAMPLE_RATE
OAC_START_DELAY = 2048  # SileroVADConfigModel's default, needed to place buffer_look_back
OAC_LAM_MODEL, OAC_LAM_ENCODER = "LAM_audio2exp", "wav2vec2-base-960h"
ONE_THRESHOLD = "OpenAvatarChat used one threshold; inside speech ours lets go 0.15 lower (Silero's hysteresis)"
DUPLEX_END = (
    "in duplex mode the turn end came from the end-of-utterance detectors and end_delay was only a backstop; "
    "ours: vad.hangover_ms / vad.complete_end_ms (defaults kept)"
)
EDGE_FORMATS = {"rate": r"^[+-]\d{1,3}%$", "volume": r"^[+-]\d{1,3}%$", "pitch": r"^[+-]\d{1,4}Hz$"}


@dataclass
class Context:
    """What converters share beyond one handler: paths, and values several places may set."""

    root: PurePath  # the OpenAvatarChat checkout relative paths are resolved against
    output: str  # how to name the converted file in advice
    limits: list[tuple[str, Any]] = field(default_factory=list)  # (source path, concurrent_limit)
    turns: list[tuple[str, Any]] = field(default_factory=list)  # (source path, turn_config)
    models: list[str] = field(default_factory=list)  # cache entries the converted engines need

    def resolve(self, path: str) -> str:
        return path if PurePath(path).is_absolute() else str(self.root / path)


def classify(name: str, settings: dict) -> tuple[str, str]:
    """(kind, module) of a handler; kind is "" when we have no converter for it."""
    module = str(settings.get("module") or "").strip().strip("/")
    if module:
        return MODULE_KINDS.get(module.rsplit("/", 1)[-1], ""), module
    lowered = name.lower()
    return next((kind for needle, kind in NAME_KINDS if needle in lowered), ""), module


def unsupported_reason(module: str) -> str:
    directory = "/".join(module.split("/")[:2])
    if directory in UNSUPPORTED:
        return UNSUPPORTED[directory]
    if module.startswith("agent/"):
        return "the chat agent (tool calling, memory) has no equivalent; llm.* talks to one OpenAI-compatible model"
    return f"no equivalent handler in Gaussian Avatar (module {module or 'not given'})"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _chunks_ms(samples: float) -> int:
    return max(1, math.ceil(samples / CLIP)) * CHUNK_MS


def _onset_chunks(start_delay: float) -> int:
    # OpenAvatarChat's first speech clip only moves it to "pre-start"; start_delay is checked from the next
    # clip on, so speech starts after at least two clips.
    return max(2, math.ceil(start_delay / CLIP))


def _clamped(value: int, low: int, high: int) -> tuple[int, str]:
    bounded = min(max(value, low), high)
    return bounded, "" if bounded == value else f" (clamped to our range {low}..{high})"


def convert_vad(h: Handler, b: Builder, _ctx: Context) -> None:
    threshold = _number(h.take("speaking_threshold"))
    if threshold is not None and 0 < threshold < 1:
        b.set("vad.threshold", threshold, h.src("speaking_threshold"))
        release = round(min(threshold, max(0.05, threshold - 0.15)), 2)
        b.set("vad.release_threshold", release, h.src("speaking_threshold"), ONE_THRESHOLD)
    elif h.has("speaking_threshold"):
        b.skip(h.src("speaking_threshold"), "expected a speech probability between 0 and 1")

    start = _number(h.take("start_delay"))
    if start is not None and start >= 0:
        ms, clamp = _clamped(_onset_chunks(start) * CHUNK_MS, 32, 2000)
        b.set("vad.min_speech_ms", ms, h.src("start_delay"),
              f"{start:g} samples at 16 kHz = {ms} ms of speech, in whole 32 ms chunks{clamp}")  # fmt: skip
    elif h.has("start_delay"):
        b.skip(h.src("start_delay"), "expected a number of samples at 16 kHz")

    look_back = _number(h.take("buffer_look_back"))
    if look_back is not None and look_back >= 0:
        onset = start if start is not None and start >= 0 else OAC_START_DELAY
        chunks = math.ceil((look_back + onset) / CLIP) - _onset_chunks(onset)
        ms, clamp = _clamped(max(0, chunks) * CHUNK_MS, 0, 2000)
        b.set("vad.preroll_ms", ms, h.src("buffer_look_back"),
              f"{look_back:g} samples looked back = {ms} ms kept before the speech onset{clamp}")  # fmt: skip
    elif h.has("buffer_look_back"):
        b.skip(h.src("buffer_look_back"), "expected a number of samples at 16 kHz")

    if h.kind == "vad_duplex":
        if h.take("end_delay") is not None:
            b.skip(h.src("end_delay"), DUPLEX_END)
    else:
        _convert_end_delay(h, b)
    if h.take("speech_padding") is not None:
        b.skip(h.src("speech_padding"), "zeros OpenAvatarChat padded around each utterance for ASR; ours hands "
               "ASR the real audio with up to 96 ms of its trailing silence (no setting)")  # fmt: skip


def _convert_end_delay(h: Handler, b: Builder) -> None:
    end = _number(h.take("end_delay"))
    if end is None or end < 0:
        if h.has("end_delay"):
            b.skip(h.src("end_delay"), "expected a number of samples at 16 kHz")
        return
    hangover, clamp = _clamped(_chunks_ms(end), 64, 5000)
    b.set("vad.hangover_ms", hangover, h.src("end_delay"),
          f"{end:g} samples of silence at 16 kHz = {hangover} ms{clamp}")  # fmt: skip
    # Ours may also end a turn earlier (complete sentence) and starts a speculative reply at the first pause;
    # both must stay within the hangover: pause_ms <= complete_end_ms <= hangover_ms.
    complete = min(default_at("vad.complete_end_ms"), hangover)
    pause = min(default_at("vad.pause_ms"), complete)
    fit = "lowered to fit hangover_ms (pause_ms <= complete_end_ms <= hangover_ms)"
    for target, value in (("vad.complete_end_ms", complete), ("vad.pause_ms", pause)):
        if value != default_at(target):
            b.set(target, value, h.src("end_delay"), fit)


def convert_llm(h: Handler, b: Builder, _ctx: Context) -> None:
    model = h.take("model_name")
    if isinstance(model, str) and env_reference(model):
        b.act(f'Set AVATAR_LLM_MODEL: export AVATAR_LLM_MODEL="${env_reference(model)}" ({h.src("model_name")})')
    elif isinstance(model, str) and not is_dynaconf_expression(model):
        b.set("llm.model", model, h.src("model_name"))
    elif model is not None:
        b.skip(h.src("model_name"), "expected a model name")
    _convert_llm_url(h, b)
    _convert_llm_key(h, b)
    prompt = h.take("system_prompt")
    if isinstance(prompt, str):
        b.set("llm.system_prompt", prompt, h.src("system_prompt"))
    history = _number(h.take("history_length"))
    if history is not None and history >= 0:
        turns = min(int(history) // 2, 100)
        b.set("llm.history_turns", turns, h.src("history_length"),
              f"{history:g} messages = {turns} user+assistant exchanges (ours counts exchanges)")  # fmt: skip
    elif h.has("history_length"):
        b.skip(h.src("history_length"), "expected a number of messages")
    if h.take("enable_video_input") in (True, "true", "True"):
        b.skip(h.src("enable_video_input"), "camera input is not supported: the LLM gets the user's speech and "
               "typed text only")  # fmt: skip
    for key, low, high in (("temperature", 0.0, 2.0), ("max_tokens", 1, 8192)):
        value = _number(h.take(key))
        if value is not None and low <= value <= high:
            b.set(f"llm.{key}", int(value) if key == "max_tokens" else value, h.src(key))
        elif h.has(key):
            b.skip(h.src(key), f"expected a number in {low}..{high}")


def _convert_llm_url(h: Handler, b: Builder) -> None:
    url = h.take("api_url")
    if url is None:
        return
    if env_reference(url):
        b.act(f'Set OPENAI_BASE_URL: export OPENAI_BASE_URL="${env_reference(url)}" ({h.src("api_url")})')
    elif isinstance(url, str) and url.startswith(("http://", "https://")):
        b.set("llm.base_url", url, h.src("api_url"))
    else:
        b.skip(h.src("api_url"), "not an http(s) URL; set llm.base_url yourself")


def _convert_llm_key(h: Handler, b: Builder) -> None:
    key, key_env = h.take("api_key"), h.take("api_key_env")
    variable = env_reference(key) or (key_env if key is None and isinstance(key_env, str) else None)
    if key is not None and variable is None:
        b.act(f"Set OPENAI_API_KEY in the environment: the LLM API key in {h.src('api_key')} was not copied")
        b.note("llm", "api_key: set OPENAI_API_KEY in the environment (the key in the source file was not copied)")
        return
    variable = variable or "DASHSCOPE_API_KEY"  # OpenAvatarChat's default
    origin = "" if key is not None or key_env is not None else " by default"
    b.note("llm", f"api_key: set OPENAI_API_KEY in the environment (OpenAvatarChat read {variable}{origin})")
    if variable == "OPENAI_API_KEY":
        b.act("Keep OPENAI_API_KEY set in the environment (the LLM key; OpenAvatarChat read the same variable)")
    else:
        b.act(f'Set OPENAI_API_KEY from {variable}: export OPENAI_API_KEY="${variable}" (OpenAvatarChat read '
              f"the LLM key from {variable}{origin}; Gaussian Avatar reads OPENAI_API_KEY)")  # fmt: skip


def convert_sensevoice(h: Handler, b: Builder, ctx: Context) -> None:
    b.set("asr.engine", "sensevoice", h.path, "SenseVoiceSmall from the model cache")
    b.set("asr.language", "auto", h.path, "OpenAvatarChat let SenseVoice detect the language")
    model = h.take("model_name")
    if model is None or str(model).rstrip("/").rsplit("/", 1)[-1].lower() == "sensevoicesmall":
        if model is not None:
            b.set("asr.model", "sensevoice-small", h.src("model_name"), f"the cache entry holding {model}")
        ctx.models.append("sensevoice-small")
    else:
        b.skip(h.src("model_name"), "only SenseVoiceSmall is in the model cache (models: sensevoice-small); "
               "for another FunASR model change that models: entry")  # fmt: skip
        ctx.models.append("sensevoice-small")
    for key in ("input_type_override", "output_type_override"):
        if h.take(key) is not None:
            b.skip(h.src(key), "duplex pipeline wiring; ours is always full duplex (no setting)")


def _tts_engine(h: Handler, b: Builder, engine: str, mode: str | None = None, note: str | None = None) -> None:
    b.set("tts.engine", engine, h.path)
    if mode:
        b.set("tts.cosyvoice.mode", mode, h.path, note)
    voice_key = next((key for key in ("voice", "spk_id") if h.has(key)), None)  # spk_id: CosyVoice SFT speaker
    if voice_key and isinstance(h.settings[voice_key], str):
        b.set("tts.voice", h.take(voice_key), h.src(voice_key))
    for key in ("ref_audio_path", "ref_audio_text") if engine == "edge" or mode == "dashscope" else ():
        if h.take(key) is not None:
            b.skip(h.src(key), f"not used by {'Edge TTS' if engine == 'edge' else 'DashScope CosyVoice'}")


def convert_edge(h: Handler, b: Builder, _ctx: Context) -> None:
    _tts_engine(h, b, "edge")
    for key, pattern in EDGE_FORMATS.items():
        value = h.take(key)
        if isinstance(value, str) and re.match(pattern, value):
            b.set(f"tts.edge.{key}", value, h.src(key))
        elif value is not None:
            b.skip(h.src(key), f"expected the edge-tts format {pattern}")
    if h.take("sample_rate") is not None:
        b.skip(h.src("sample_rate"), "Edge voices are decoded and resampled by the runtime (no setting)")


def convert_cosyvoice_dashscope(h: Handler, b: Builder, _ctx: Context) -> None:
    _tts_engine(h, b, "cosyvoice", "dashscope", "Alibaba Cloud Bailian (DashScope) CosyVoice API")
    model = h.take("model_name")
    if isinstance(model, str):
        b.set("tts.cosyvoice.model", model, h.src("model_name"))
    if h.take("sample_rate") is not None:
        b.skip(h.src("sample_rate"), "OpenAvatarChat always asked DashScope for 24 kHz; ours asks for "
               "tts.cosyvoice.sample_rate (22050 by default, any DashScope rate)")  # fmt: skip
    key = h.take("api_key")
    variable = env_reference(key)
    if key is not None and variable is None:
        b.act(f"Set DASHSCOPE_API_KEY in the environment: the DashScope key in {h.src('api_key')} was not copied")
        b.note("tts", "cosyvoice.api_key: set DASHSCOPE_API_KEY in the environment (not copied from the source)")
    elif variable and variable != "DASHSCOPE_API_KEY":
        b.act(f'Set DASHSCOPE_API_KEY from {variable}: export DASHSCOPE_API_KEY="${variable}" (CosyVoice TTS)')
    else:
        b.act("Keep DASHSCOPE_API_KEY set in the environment (CosyVoice TTS reads it, as OpenAvatarChat did)")


def convert_cosyvoice_server(h: Handler, b: Builder, ctx: Context) -> None:
    in_process = h.kind == "cosyvoice_local"
    note = "OpenAvatarChat ran CosyVoice in its own process; we call a CosyVoice server" if in_process else None
    _tts_engine(h, b, "cosyvoice", "server", note)
    url, model = h.take("api_url"), h.take("model_name")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        b.set("tts.cosyvoice.url", url, h.src("api_url"))
    else:
        if url is not None:
            b.skip(h.src("api_url"), "not an http(s) URL")
        shown = f" --model_dir {model}" if isinstance(model, str) else ""
        b.act(f"Start a CosyVoice server (CosyVoice's runtime/python/fastapi/server.py{shown}) and set "
              "tts.cosyvoice.url to it, e.g. http://127.0.0.1:50000")  # fmt: skip
    rate = _number(h.take("sample_rate"))
    if isinstance(model, str) and in_process:
        rate24 = "cosyvoice2" in model.lower().replace("-", "").replace("_", "")
        b.set("tts.cosyvoice.sample_rate", 24000 if rate24 else 22050, h.src("model_name"),
              "the server's PCM rate: 24 kHz for CosyVoice2 models, 22.05 kHz for CosyVoice-300M")  # fmt: skip
        if rate is not None:
            b.skip(h.src("sample_rate"), "the server's rate follows the model (set from model_name)")
    elif rate is not None and 8000 <= rate <= 48000:
        b.set("tts.cosyvoice.sample_rate", int(rate), h.src("sample_rate"))
    elif rate is not None:
        b.skip(h.src("sample_rate"), "expected a sample rate in 8000..48000")
    elif model is not None:
        b.skip(h.src("model_name"), "the CosyVoice server chooses the model")
    _prompt_pair(h, b, ctx)
    if h.take("process_num") is not None:
        b.skip(h.src("process_num"), "worker processes are the CosyVoice server's business now")
    if h.take("api_key") is not None:
        b.skip(h.src("api_key"), "not used by a self-hosted CosyVoice server (value not copied)")


def _prompt_pair(h: Handler, b: Builder, ctx: Context) -> None:
    wav, text = h.take("ref_audio_path"), h.take("ref_audio_text")
    if isinstance(wav, str) and isinstance(text, str):
        resolved = ctx.resolve(wav)
        note = None if resolved == wav else "resolved against the OpenAvatarChat directory"
        b.set("tts.cosyvoice.prompt_wav", resolved, h.src("ref_audio_path"), note)
        b.set("tts.cosyvoice.prompt_text", text, h.src("ref_audio_text"))
    else:
        for key, value in (("ref_audio_path", wav), ("ref_audio_text", text)):
            if value is not None:
                b.skip(h.src(key), "ref_audio_path and ref_audio_text go together (zero-shot voice cloning)")


def convert_lam_a2e(h: Handler, b: Builder, ctx: Context) -> None:
    b.set("a2e.engine", "lam", h.path, "LAM Audio2Expression from the model cache")
    for key, theirs, target in (("model_name", OAC_LAM_MODEL, "a2e.model"),
                                ("feature_extractor_model_name", OAC_LAM_ENCODER, "a2e.encoder")):  # fmt: skip
        value = h.take(key)
        if value is None or value == theirs:
            if value is not None:
                b.set(target, default_at(target), h.src(key), f"the cache entry holding OpenAvatarChat's {value}")
        else:
            b.skip(h.src(key), f"our cache holds the released {theirs} as {default_at(target)}; another "
                   "checkpoint needs its own models: entry")  # fmt: skip
    ctx.models += ["lam-audio2exp", "wav2vec2-base-960h"]
    if h.take("audio_sample_rate") is not None:
        b.skip(h.src("audio_sample_rate"), "the runtime resamples the reply audio for LAM itself (no setting)")


def convert_client(h: Handler, b: Builder, ctx: Context) -> None:
    if h.kind == "lam_client":
        _convert_asset(h, b, ctx)
    if h.settings.get("concurrent_limit") is not None:
        ctx.limits.append((h.src("concurrent_limit"), h.take("concurrent_limit")))
    if h.settings.get("turn_config") is not None:
        ctx.turns.append((h.src("turn_config"), h.take("turn_config")))
    if h.take("connection_ttl") is not None:
        b.skip(h.src("connection_ttl"), "sessions have no maximum length (they end when the browser leaves; "
               "server.session_idle_timeout_s closes those that never connect)")  # fmt: skip


def _convert_asset(h: Handler, b: Builder, ctx: Context) -> None:
    asset = h.take("asset_path")
    if not isinstance(asset, str) or not asset.lower().endswith(".zip"):
        if asset is not None:
            b.skip(h.src("asset_path"), "expected the path of a LAM avatar .zip")
        return
    stem = PurePosixPath(asset.replace("\\", "/")).stem
    directory = default_at("avatar.dir")
    b.set("avatar.name", stem, h.src("asset_path"), f"served as /avatars/{stem}.zip from avatar.dir ({directory})")
    b.act(f"Copy the LAM avatar {ctx.resolve(asset)} to {directory}/{stem}.zip (nothing was copied)")


CONVERTERS: dict[str, Callable[[Handler, Builder, Context], None]] = {
    "llm": convert_llm,
    "vad": convert_vad,
    "vad_duplex": convert_vad,
    "sensevoice": convert_sensevoice,
    "edge": convert_edge,
    "cosyvoice_dashscope": convert_cosyvoice_dashscope,
    "cosyvoice_local": convert_cosyvoice_server,
    "cosyvoice_server": convert_cosyvoice_server,
    "lam_a2e": convert_lam_a2e,
    "lam_client": convert_client,
    "rtc_client": convert_client,
}
