"""Runtime configuration: one YAML file, every key documented in `default_config.yaml`, validated at start.

Precedence: built-in defaults < config file < environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`,
`AVATAR_LLM_MODEL`, `AVATAR_MODEL_DIR`, `AVATAR_TURN_SECRET`, `AVATAR_SESSION_TOKEN_SECRET`, `DASHSCOPE_API_KEY`,
hub variables). A bad file raises `ConfigError` with one line naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .access import parse_networks
from .models.specs import HubSettings, ModelSpecList, default_models


class ConfigError(ValueError):
    """The configuration cannot be used; the message is one line that names the offending key."""


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class VADConfig(_Section):
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="speech probability that starts speech")
    release_threshold: float = Field(0.35, gt=0.0, lt=1.0, description="probability below which a chunk is silence")
    min_speech_ms: int = Field(96, ge=32, le=2000, description="speech needed before a turn (and barge-in) starts")
    pause_ms: int = Field(128, ge=32, le=5000, description="silence that starts speculative transcription")
    hangover_ms: int = Field(448, ge=64, le=5000, description="silence that ends the user's turn")
    complete_end_ms: int = Field(
        224, ge=32, le=5000, description="silence that ends it when the transcript is already a complete sentence"
    )
    preroll_ms: int = Field(320, ge=0, le=2000, description="audio kept before speech onset for ASR")
    max_utterance_s: float = Field(20.0, gt=1.0, le=120.0, description="force the end of a turn after this long")

    @model_validator(mode="after")
    def _ordered(self) -> VADConfig:
        if self.release_threshold > self.threshold:
            raise ValueError("vad.release_threshold must not exceed vad.threshold")
        if not self.pause_ms <= self.complete_end_ms <= self.hangover_ms:
            raise ValueError("vad.pause_ms <= vad.complete_end_ms <= vad.hangover_ms must hold")
        return self


Device = Literal["auto", "cpu", "cuda"]


class ASRConfig(_Section):
    engine: Literal["whisper", "sensevoice"] = Field(
        "whisper", description="whisper: embedded tiny.en; sensevoice: SenseVoiceSmall (funasr) from the model cache"
    )
    model_path: str | None = Field(None, description="CTranslate2 Whisper dir; default: the wheel-shipped tiny.en")
    language: str = Field("en", description="whisper: en; sensevoice: auto | zh | en | ja | ko | yue")
    threads: int = Field(2, ge=1, le=64)
    short_window: bool = Field(True, description="encode utterance + 2 s, not Whisper's fixed 30 s (~5x faster)")
    model: str = Field("sensevoice-small", description="sensevoice: name of the model in the cache (models:)")
    device: Device = Field("auto", description="sensevoice: auto = cuda when available, else cpu")
    use_itn: bool = Field(True, description="sensevoice: inverse text normalisation (punctuation, digits)")
    max_batch: int = Field(8, ge=1, le=256, description="sensevoice: utterances of all sessions decoded together")
    max_wait_ms: float = Field(5.0, ge=0, le=100, description="sensevoice: wait this long to fill a batch")
    tags: Literal["strip", "expose"] = Field(
        "expose", description="sensevoice: expose language/emotion/events in transcript events, or only strip them"
    )

    @model_validator(mode="after")
    def _language_fits_engine(self) -> ASRConfig:
        allowed = {"whisper": {"en"}, "sensevoice": {"auto", "zh", "en", "ja", "ko", "yue"}}[self.engine]
        if self.language not in allowed and not (self.engine == "whisper" and self.model_path):
            raise ValueError(f"asr.language {self.language!r} must be one of {sorted(allowed)} for {self.engine}")
        return self


class LLMConfig(_Section):
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; env OPENAI_BASE_URL wins")
    api_key: str | None = Field(None, description="env OPENAI_API_KEY wins")
    model: str = Field("gpt-4o-mini", description="env AVATAR_LLM_MODEL wins")
    system_prompt: str = (
        "You are a friendly talking avatar. Your replies are spoken aloud, so answer in one to three short "
        "sentences of plain text, without lists, markdown or emoji."
    )
    history_turns: int = Field(8, ge=0, le=100, description="user+assistant exchanges kept as context")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, le=8192)
    timeout_s: float = Field(30.0, gt=0.0)


class EdgeTTSConfig(_Section):
    rate: str = Field("+0%", pattern=r"^[+-]\d{1,3}%$", description="speaking rate change, e.g. +10%")
    volume: str = Field("+0%", pattern=r"^[+-]\d{1,3}%$")
    pitch: str = Field("+0Hz", pattern=r"^[+-]\d{1,4}Hz$")
    proxy: str | None = Field(None, description="HTTP proxy for the Edge service, e.g. http://proxy:3128")


class CosyVoiceConfig(_Section):
    mode: Literal["dashscope", "server"] = Field(
        "dashscope", description="dashscope: Alibaba Cloud's CosyVoice API; server: a self-hosted CosyVoice server"
    )
    url: str | None = Field(None, description="dashscope WebSocket URL (default: the public one) or the server's URL")
    api_key: str | None = Field(None, description="DashScope API key; env DASHSCOPE_API_KEY wins")
    model: str = Field("cosyvoice-v1", description="dashscope model")
    sample_rate: int = Field(22050, ge=8000, le=48000, description="22050 (CosyVoice-300M) or 24000 (CosyVoice2)")
    workspace: str | None = Field(None, description="dashscope: workspace id (X-DashScope-WorkSpace), if any")
    prompt_wav: str | None = Field(None, description="server: voice-cloning prompt audio (zero-shot mode)")
    prompt_text: str | None = Field(None, description="server: transcript of prompt_wav")

    @model_validator(mode="after")
    def _prompt_pair(self) -> CosyVoiceConfig:
        if bool(self.prompt_wav) != bool(self.prompt_text):
            raise ValueError("tts.cosyvoice.prompt_wav and prompt_text go together (zero-shot voice cloning)")
        return self


class TTSConfig(_Section):
    engine: Literal["piper", "espeak", "edge", "cosyvoice"] = Field(
        "piper", description="piper/espeak: embedded; edge: Microsoft Edge online voices; cosyvoice: CosyVoice"
    )
    voice: str | None = Field(
        None, description="espeak voice (en-us), edge voice (default zh-CN-XiaoxiaoNeural), cosyvoice voice/speaker"
    )
    rate_wpm: int = Field(165, ge=80, le=400, description="espeak speaking rate")
    fallback: Literal["piper", "espeak", "none"] = Field(
        "piper", description="embedded engine that speaks when an online engine fails (with a logged warning)"
    )
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="online engines: connection timeout")
    first_audio_timeout_s: float = Field(8.0, gt=0, le=120, description="online engines: wait for the first audio")
    stall_timeout_s: float = Field(5.0, gt=0, le=120, description="online engines: longest gap between audio pieces")
    retry_after_s: float = Field(30.0, ge=0, description="after a failure, use the fallback this long")
    edge: EdgeTTSConfig = Field(default_factory=EdgeTTSConfig)
    cosyvoice: CosyVoiceConfig = Field(default_factory=CosyVoiceConfig)


class A2EConfig(_Section):
    engine: Literal["audio", "lam"] = Field(
        "audio", description="audio: embedded signal-driven; lam: LAM Audio2Expression (wav2vec2) from the model cache"
    )
    model: str = Field("lam-audio2exp", description="lam: cache name of the LAM checkpoint")
    encoder: str = Field("wav2vec2-base-960h", description="lam: cache name of the wav2vec2 config")
    device: Device = Field("auto", description="lam: auto = cuda when available, else cpu")
    slice_ms: int = Field(200, ge=34, le=200, description="lam: frames leave every this much audio (<= 200 ms)")
    context_frames: int = Field(64, ge=8, le=300, description="lam: rolling audio context, in 30 fps frames")
    identity: int = Field(0, ge=0, le=11, description="lam: speaking-style identity of the checkpoint (0-11)")
    max_batch: int = Field(16, ge=1, le=256, description="lam: windows from all sessions run together")
    max_wait_ms: float = Field(4.0, ge=0, le=100, description="lam: wait this long to fill a batch")


class TurnConfig(_Section):
    """TURN relay offered to browsers; `static_auth_secret` gives coturn REST-API ephemeral credentials."""

    urls: list[str] = Field(default_factory=list)
    username: str | None = None
    credential: str | None = None
    static_auth_secret: str | None = None
    ttl_s: int = Field(3600, ge=60)
    stun_urls: list[str] = Field(default_factory=list, description="extra STUN servers for browsers")


class TLSConfig(_Section):
    enabled: bool = True
    cert_file: str | None = Field(None, description="PEM certificate; default: self-signed, generated on first run")
    key_file: str | None = None
    self_signed_dir: str = "./certs"


class ExpressionConfig(_Section):
    ambient_fps: int = Field(
        15, ge=0, le=30, description="idle/listening frames per second while the avatar is silent (0 = a still face)"
    )
    llm_control: Literal["tools", "tags", "off"] = Field(
        "tools", description="how the LLM sets mood and gestures: tool calls | inline [mood:happy] tags | not at all"
    )
    voice_cues: bool = Field(True, description="tell the LLM the emotion and sounds ASR heard in the user's voice")
    react_to_user: bool = Field(True, description="the face mirrors the user's detected emotion for a moment")
    greet: bool = Field(True, description="a hello gesture (smile, the body's hello clip) when a session connects")
    strength: float = Field(1.0, ge=0.0, le=2.0, description="scale of every mood and gesture (0 = lip-sync only)")
    seed: int | None = Field(None, description="random seed of the idle motion (null: differs per session)")


class AvatarConfig(_Section):
    name: str = "default"
    dir: str = Field("./avatars", description="directory of LAM avatar .zip files served at /avatars/")


class ServerConfig(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8282, ge=1, le=65535)
    concurrent_limit: int = Field(4, ge=1, le=10000)
    retry_after_s: int = Field(10, ge=1, description="Retry-After of a 503 (full, or draining)")
    drain_timeout_s: float = Field(
        300.0, ge=0, le=86400, description="after SIGTERM/Ctrl-C, how long live sessions may go on (0 = close now)"
    )
    max_body_bytes: int = Field(65536, ge=1024)
    session_idle_timeout_s: float = Field(30.0, gt=0, description="close a session whose WebRTC never connects")
    opus_bitrate: int = Field(32000, ge=6000, le=510000, description="reply audio bitrate (aiortc default: 96k)")
    mic_jitter_packets: int = Field(
        0, ge=0, le=16, description="microphone packets buffered before decoding (0: each as soon as it is in order)"
    )
    inference_nice: int = Field(
        10, ge=0, le=19, description="nice value of model threads, so the audio-pacing event loop gets the CPU first"
    )
    web_dir: str | None = Field(None, description="built web client; default: <repo>/web/dist, else a minimal page")
    auth_token: str | None = Field(None, description="if set, POST /api/sessions needs 'Authorization: Bearer ...'")
    session_token_secret: str | None = Field(
        None, min_length=32, description="HMAC key of signed one-use session tokens (env AVATAR_SESSION_TOKEN_SECRET)"
    )
    token_url: str | None = Field(
        None, description="where the page fetches a fresh session token before each session (your backend)"
    )
    session_token_max_ttl_s: float = Field(300.0, gt=0, le=86400, description="longest lifetime a token may have")
    sessions_per_minute: float = Field(12.0, ge=0, description="POST /api/sessions per client address (0 = no limit)")
    sessions_burst: int = Field(4, ge=1, description="... of which at once")
    trusted_proxies: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRUSTED_PROXIES),
        description="peers whose X-Forwarded-For names the client (ingress, load balancer)",
    )
    max_session_s: float = Field(3600.0, ge=0, description="a session ends after this long (0 = never)")
    session_warning_s: float = Field(60.0, ge=0, description="event session_ending this long before that end")
    client_messages_per_s: float = Field(10.0, gt=0, description="data-channel messages a browser may send per second")
    client_messages_burst: int = Field(30, ge=1, description="... of which at once")
    max_channel_backlog_bytes: int = Field(
        262144, ge=4096, description="data not yet taken by the browser above which expression frames are dropped"
    )
    slow_client_timeout_s: float = Field(15.0, gt=0, description="a browser that stays that far behind is dropped")
    public_hosts: list[str] = Field(
        default_factory=list, description="names users reach this server by: /metrics answers 404 under them"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="other origins whose pages may call the API (default: same origin only)"
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value


DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


class RuntimeConfig(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    vad: VADConfig = Field(default_factory=VADConfig)
    asr: ASRConfig = Field(default_factory=ASRConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    tts: TTSConfig = Field(default_factory=TTSConfig)
    a2e: A2EConfig = Field(default_factory=A2EConfig)
    turn: TurnConfig = Field(default_factory=TurnConfig)
    tls: TLSConfig = Field(default_factory=TLSConfig)
    avatar: AvatarConfig = Field(default_factory=AvatarConfig)
    expression: ExpressionConfig = Field(default_factory=ExpressionConfig)
    model_dir: str = Field("./models", description="model cache (env AVATAR_MODEL_DIR wins)")
    models: ModelSpecList = Field(default_factory=default_models, description="what `models pull` fetches")
    hub: HubSettings = Field(default_factory=HubSettings)


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    # A key may hold anything YAML allows, newlines included: show such a key quoted, so the message stays one line.
    where = ".".join(str(p) if str(p).isprintable() else repr(p) for p in first["loc"]) or "config"
    return f"{where}: {' '.join(str(first['msg']).split())}"


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> RuntimeConfig:
    """Read, merge and validate the configuration; raise ConfigError with one clear line on any problem."""
    env = dict(os.environ) if env is None else env
    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except RecursionError:
            raise ConfigError(f"config file {path} nests too deeply to be a config") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config file {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(loaded).__name__}")
        raw = loaded or {}
    try:
        config = RuntimeConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_one_line(exc)}") from None
    return _apply_env(config, env)


def _apply_env(config: RuntimeConfig, env: dict[str, str]) -> RuntimeConfig:
    llm = config.llm
    if env.get("OPENAI_BASE_URL"):
        llm.base_url = env["OPENAI_BASE_URL"]
    if env.get("OPENAI_API_KEY"):
        llm.api_key = env["OPENAI_API_KEY"]
    if env.get("AVATAR_LLM_MODEL"):
        llm.model = env["AVATAR_LLM_MODEL"]
    if env.get("AVATAR_MODEL_DIR"):
        config.model_dir = env["AVATAR_MODEL_DIR"]
    config.hub = config.hub.with_env(env)
    if env.get("AVATAR_TURN_SECRET"):  # coturn use-auth-secret, from a Kubernetes Secret rather than the file
        config.turn.static_auth_secret = env["AVATAR_TURN_SECRET"]
    if env.get("DASHSCOPE_API_KEY"):
        config.tts.cosyvoice.api_key = env["DASHSCOPE_API_KEY"]
    if env.get("AVATAR_SESSION_TOKEN_SECRET"):
        secret = env["AVATAR_SESSION_TOKEN_SECRET"]
        if len(secret) < 32:  # same rule as the file's key: a short HMAC key can be guessed offline
            raise ConfigError(
                "AVATAR_SESSION_TOKEN_SECRET: must be at least 32 characters (e.g. `openssl rand -hex 32`)"
            )
        config.server.session_token_secret = secret
    if llm.base_url and not llm.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"llm.base_url must start with http:// or https://, got {llm.base_url!r}")
    return config
