"""The embedded models (shipped inside PyPI wheels, no download): they must load, since nothing fetches them later.

Each check loads the model the way the runtime does (the engines' own constructors and locators), so a damaged
wheel, a wrong hash or a missing system library shows up here and not in the first conversation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..engines.base import EngineUnavailable
from .packages import EMBEDDED_INSTALL
from .result import Result
from .target import Target

GROUP = "engines"
ESPEAK_INSTALL = "sudo apt-get install espeak-ng (Debian/Ubuntu: the library libespeak-ng1 and its voice data)"


def _unavailable(name: str, exc: BaseException, fix: str) -> Result:
    reason = f"{exc.name} is not installed" if isinstance(exc, ImportError) and exc.name else str(exc)
    return Result(GROUP, name, "fail", f"{name} cannot load: {reason}", fix)


def check_silero() -> Result:
    try:
        from ..engines.vad_silero import SileroVAD, bundled_model_path

        path = bundled_model_path()
        SileroVAD(path)
    except (EngineUnavailable, ImportError, OSError) as exc:
        return _unavailable("silero VAD", exc, EMBEDDED_INSTALL)
    return Result(GROUP, "silero VAD", "ok", f"silero VAD: {path.name} loads in onnxruntime")


def check_whisper(model_path: str | None) -> Result:
    try:
        import faster_whisper  # noqa: F401 - what WhisperASR imports

        from ..engines.asr_whisper import bundled_model_dir

        if model_path:
            directory = Path(model_path)
            if not (directory / "model.bin").is_file():
                fix = "asr.model_path must name a CTranslate2 Whisper directory (or null for the bundled tiny.en)"
                return Result(GROUP, "whisper ASR", "fail", f"whisper ASR: {directory}/model.bin does not exist", fix)
            return Result(GROUP, "whisper ASR", "ok", f"whisper ASR: CTranslate2 model in {directory}")
        directory = bundled_model_dir()  # also checks the weights' sha256 against the pinned one
    except (EngineUnavailable, ImportError, OSError) as exc:
        return _unavailable("whisper ASR", exc, EMBEDDED_INSTALL)
    return Result(GROUP, "whisper ASR", "ok", f"whisper ASR: bundled tiny.en, sha256 verified ({directory})")


def check_piper() -> Result:
    try:
        from ..engines.tts_piper import PiperTTS

        voice = PiperTTS(warmup=False)
    except (EngineUnavailable, ImportError, OSError) as exc:
        return _unavailable("piper TTS", exc, EMBEDDED_INSTALL)
    return Result(GROUP, "piper TTS", "ok", f"piper TTS: bundled voice loads ({voice.sample_rate} Hz)")


def check_espeak(voice: str) -> Result:
    """The runtime speaks through libespeak-ng in-process; the `espeak-ng` program itself is only a convenience."""
    try:
        from ..engines.tts_espeak import EspeakTTS

        EspeakTTS(voice=voice)  # loads the library and checks that the voice exists
    except (EngineUnavailable, ImportError, OSError) as exc:
        fix = ESPEAK_INSTALL if "libespeak" in str(exc) or "Initialize" in str(exc) else "tts.voice: e.g. en-us"
        return _unavailable("espeak TTS", exc, fix)
    program = shutil.which("espeak-ng")
    shown = f"; espeak-ng program at {program}" if program else "; (the espeak-ng program is not on PATH: not needed)"
    return Result(GROUP, "espeak TTS", "ok", f"espeak TTS: libespeak-ng loads, voice {voice!r} exists{shown}")


def check(target: Target) -> list[Result]:
    config = target.config
    results = [check_silero()]
    if config.asr.engine == "whisper":
        results.append(check_whisper(config.asr.model_path))
    tts = config.tts
    voices = {tts.engine} | ({tts.fallback} if tts.engine in ("edge", "cosyvoice") else set())
    if "piper" in voices:
        piper = check_piper()
        if piper.status == "fail" and "espeak" not in voices:
            # The loader falls back to espeak-ng when piper cannot load: the avatar still speaks, robotically.
            espeak = check_espeak("en-us")
            if espeak.status == "ok":
                piper = Result(GROUP, piper.name, "warn", f"{piper.finding}; espeak-ng speaks instead", piper.fix)
        results.append(piper)
    if "espeak" in voices:
        results.append(check_espeak((tts.voice if tts.engine == "espeak" else None) or "en-us"))
    results.append(check_languages(config))
    return results


def check_languages(config) -> Result:
    """Whether some language is both heard (ASR) and spoken (the TTS voice): else every reply is in the wrong one."""
    from ..languages import languages_of

    languages = languages_of(config)
    problem = languages.problem()
    if problem is not None:
        fix = "set asr.engine/asr.language and tts.engine/tts.voice to one language (docs/expression.md#languages)"
        return Result(GROUP, "languages", "warn", problem, fix)
    spoken = ", ".join(languages.conversation) or "none"
    return Result(GROUP, "languages", "ok", f"conversations in: {spoken} (hears {', '.join(languages.asr)})")
