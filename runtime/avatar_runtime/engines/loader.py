"""Build the process-wide engines from the configuration, once, and say plainly what was chosen."""

from __future__ import annotations

import logging

from ..config import RuntimeConfig
from ..pipeline.reply import Engines
from .base import EngineUnavailable, LLMEngine, TTSEngine

log = logging.getLogger(__name__)

OFFLINE_LLM_NOTICE = (
    "no LLM endpoint configured: replies come from the embedded offline responder (rule-based, no language "
    "model). Set OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama) and AVATAR_LLM_MODEL for real answers."
)


def build_llm(config: RuntimeConfig) -> LLMEngine:
    llm = config.llm
    if llm.base_url or llm.api_key:
        from .llm_openai import OpenAILLM

        log.info("LLM: %s at %s", llm.model, llm.base_url or "the OpenAI API")
        return OpenAILLM(
            base_url=llm.base_url, api_key=llm.api_key, model=llm.model, temperature=llm.temperature,
            max_tokens=llm.max_tokens, timeout_s=llm.timeout_s,
        )  # fmt: skip
    from .llm_embedded import EmbeddedLLM

    log.warning(OFFLINE_LLM_NOTICE)
    return EmbeddedLLM()


def build_tts(config: RuntimeConfig) -> TTSEngine:
    from .tts_espeak import EspeakTTS

    if config.tts.engine == "piper":
        try:
            from .tts_piper import PiperTTS

            return PiperTTS()
        except (EngineUnavailable, ImportError) as exc:
            log.warning("TTS: piper unavailable (%s); falling back to espeak-ng", exc)
    return EspeakTTS(voice=config.tts.voice or "en-us", rate_wpm=config.tts.rate_wpm)


def build_engines(config: RuntimeConfig) -> Engines:
    """Load every model the sessions share; raises EngineUnavailable naming what is missing."""
    from .a2e_audio import AudioExpressionEngine
    from .asr_whisper import WhisperASR
    from .vad_silero import SileroVAD

    engines = Engines(
        vad=SileroVAD(),
        asr=WhisperASR(
            model_dir=config.asr.model_path,
            language=config.asr.language,
            threads=config.asr.threads,
            short_window=config.asr.short_window,
        ),  # fmt: skip
        llm=build_llm(config),
        tts=build_tts(config),
        a2e=AudioExpressionEngine(),
    )
    log.info(
        "engines: vad=%s asr=%s llm=%s tts=%s a2e=%s",
        engines.vad.name, engines.asr.name, engines.llm.name, engines.tts.name, engines.a2e.name,
    )  # fmt: skip
    return engines
