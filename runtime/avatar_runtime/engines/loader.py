"""Build the process-wide engines from the configuration, once, and say plainly what was chosen."""

from __future__ import annotations

import logging

from ..config import RuntimeConfig
from ..pipeline.reply import Engines
from .base import ASREngine, EngineUnavailable, ExpressionEngine, LLMEngine, TTSEngine

log = logging.getLogger(__name__)

OFFLINE_LLM_NOTICE = (
    "no LLM endpoint configured: replies come from the embedded offline responder (rule-based, no language "
    "model). Set OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama) and AVATAR_LLM_MODEL for real answers."
)


def build_llm(config: RuntimeConfig) -> LLMEngine:
    llm = config.llm
    if llm.base_url or llm.api_key:
        from ..expression.cues import TOOLS
        from .llm_openai import OpenAILLM

        log.info("LLM: %s at %s", llm.model, llm.base_url or "the OpenAI API")
        return OpenAILLM(
            base_url=llm.base_url, api_key=llm.api_key, model=llm.model, temperature=llm.temperature,
            max_tokens=llm.max_tokens, timeout_s=llm.timeout_s,
            tools=TOOLS if config.expression.llm_control == "tools" else None,
        )  # fmt: skip
    from .llm_embedded import EmbeddedLLM

    log.warning(OFFLINE_LLM_NOTICE)
    return EmbeddedLLM()


def _embedded_tts(config: RuntimeConfig, engine: str) -> TTSEngine:
    from .tts_espeak import EspeakTTS

    if engine == "piper":
        try:
            from .tts_piper import PiperTTS

            return PiperTTS()
        except (EngineUnavailable, ImportError) as exc:
            log.warning("TTS: piper unavailable (%s); falling back to espeak-ng", exc)
    voice = config.tts.voice if config.tts.engine == "espeak" else None
    return EspeakTTS(voice=voice or "en-us", rate_wpm=config.tts.rate_wpm)


def _online_tts(config: RuntimeConfig) -> TTSEngine:
    tts = config.tts
    timeouts = {
        "connect_timeout_s": tts.connect_timeout_s,
        "first_audio_timeout_s": tts.first_audio_timeout_s,
        "stall_timeout_s": tts.stall_timeout_s,
    }
    if tts.engine == "edge":
        from .tts_edge import DEFAULT_VOICE, EdgeTTS

        return EdgeTTS(
            voice=tts.voice or DEFAULT_VOICE, rate=tts.edge.rate, volume=tts.edge.volume, pitch=tts.edge.pitch,
            proxy=tts.edge.proxy, **timeouts,
        )  # fmt: skip
    from .tts_cosyvoice import CosyVoiceTTS

    cosy = tts.cosyvoice
    return CosyVoiceTTS(
        mode=cosy.mode, url=cosy.url, api_key=cosy.api_key, model=cosy.model, voice=tts.voice,
        sample_rate=cosy.sample_rate, workspace=cosy.workspace, prompt_wav=cosy.prompt_wav,
        prompt_text=cosy.prompt_text, **timeouts,
    )  # fmt: skip


def build_tts(config: RuntimeConfig) -> TTSEngine:
    """The configured voice; an online one (edge, cosyvoice) is wrapped so a network failure falls back."""
    tts = config.tts
    if tts.engine in ("piper", "espeak"):
        return _embedded_tts(config, tts.engine)
    primary = _online_tts(config)
    if tts.fallback == "none":
        return primary
    from .tts_fallback import FallbackTTS

    return FallbackTTS(primary, _embedded_tts(config, tts.fallback), retry_after_s=tts.retry_after_s)


def build_asr(config: RuntimeConfig) -> ASREngine:
    asr = config.asr
    if asr.engine == "sensevoice":
        from ..models.cache import model_path
        from .asr_sensevoice import SenseVoiceASR

        return SenseVoiceASR(
            model_dir=model_path(config.model_dir, asr.model), language=asr.language, device=asr.device,
            tags=asr.tags, threads=asr.threads, use_itn=asr.use_itn, max_batch=asr.max_batch,
            max_wait_ms=asr.max_wait_ms,
        )  # fmt: skip
    from .asr_whisper import WhisperASR

    return WhisperASR(
        model_dir=asr.model_path, language=asr.language, threads=asr.threads, short_window=asr.short_window
    )


def build_a2e(config: RuntimeConfig) -> ExpressionEngine:
    a2e = config.a2e
    if a2e.engine == "lam":
        from .a2e_lam import LAMExpressionEngine

        return LAMExpressionEngine(
            model_dir=config.model_dir, model=a2e.model, encoder=a2e.encoder, device=a2e.device,
            identity=a2e.identity, slice_ms=a2e.slice_ms, context_frames=a2e.context_frames,
            max_batch=a2e.max_batch, max_wait_ms=a2e.max_wait_ms,
        )  # fmt: skip
    from .a2e_audio import AudioExpressionEngine

    return AudioExpressionEngine()


def build_engines(config: RuntimeConfig) -> Engines:
    """Load every model the sessions share; raises EngineUnavailable naming everything that is missing.

    Each engine is tried even after one fails, so a fresh production install hears about every missing model in
    one message (and on /readyz), not one per restart.
    """
    from .vad_silero import SileroVAD

    built: dict[str, object] = {}
    problems: list[str] = []
    builders = {"vad": lambda _c: SileroVAD(), "asr": build_asr, "llm": build_llm, "tts": build_tts, "a2e": build_a2e}
    for stage, builder in builders.items():
        try:
            built[stage] = builder(config)
        except EngineUnavailable as exc:
            problems.append(f"{stage}: {exc}")
        except ImportError as exc:  # a production engine on an install without its packages
            problems.append(
                f"{stage}: Python package {exc.name or exc} is not installed; "
                "install the production engines with `bash hack/install.sh --production`"
            )
    if problems:
        raise EngineUnavailable(" | ".join(problems))
    engines = Engines(**built)
    log.info(
        "engines: vad=%s asr=%s llm=%s tts=%s a2e=%s",
        engines.vad.name, engines.asr.name, engines.llm.name, engines.tts.name, engines.a2e.name,
    )  # fmt: skip
    _log_languages(config)
    return engines


def _log_languages(config: RuntimeConfig) -> None:
    from ..languages import languages_of

    languages = languages_of(config)
    log.info("languages: hears %s, speaks %s", ", ".join(languages.asr), ", ".join(languages.tts))
    if (problem := languages.problem()) is not None:
        log.warning("languages: %s", problem)
