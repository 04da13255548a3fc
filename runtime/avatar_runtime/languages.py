"""Which languages the configured engines hear and speak, so a deployment can tell (and be told) before a user does.

The pipeline itself is language-agnostic: sentence splitting knows CJK punctuation, the expression layer and
Audio2Expression work from audio. What limits a conversation is ASR (what it transcribes) and the TTS voice
(what it pronounces). Pure: derived from the configuration only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RuntimeConfig

SENSEVOICE = ("zh", "en", "ja", "ko", "yue")
COSYVOICE = ("zh", "en", "ja", "ko", "yue")
EDGE_DEFAULT_VOICE = "zh-CN-XiaoxiaoNeural"
# espeak-ng voices are language codes (en-us, de, cmn, yue…); the conversation language is the part before '-'.
_ESPEAK_ALIASES = {"cmn": "zh", "zh": "zh"}


@dataclass(frozen=True)
class Languages:
    asr: tuple[str, ...]  # languages ASR transcribes ("*" = any Whisper language)
    tts: tuple[str, ...]  # languages the configured voice speaks

    @property
    def conversation(self) -> tuple[str, ...]:
        """Languages a user can be heard and answered in."""
        if "*" in self.asr:
            return self.tts
        return tuple(lang for lang in self.asr if lang in self.tts)

    def problem(self) -> str | None:
        """A sentence for the operator when the configuration cannot hold a conversation in its own language."""
        if not self.conversation:
            return (f"ASR hears {', '.join(self.asr)} but the TTS voice speaks {', '.join(self.tts)}: "
                    "no language is both heard and spoken; pick a matching tts.voice or asr.language")  # fmt: skip
        return None

    def as_dict(self) -> dict:
        return {"asr": list(self.asr), "tts": list(self.tts), "conversation": list(self.conversation)}


def tts_languages(engine: str, voice: str | None) -> tuple[str, ...]:
    if engine == "piper":
        return ("en",) if not voice else (_locale_language(voice),)
    if engine == "espeak":
        code = (voice or "en-us").split("-")[0].lower()
        return (_ESPEAK_ALIASES.get(code, code),)
    if engine == "edge":
        return (_locale_language(voice or EDGE_DEFAULT_VOICE),)
    return COSYVOICE


def _locale_language(name: str) -> str:
    """zh-CN-XiaoxiaoNeural → zh, en_US-lessac-medium → en, yue-HK-… → yue."""
    head = name.replace("\\", "/").rsplit("/", 1)[-1].replace("_", "-").split("-")[0].lower()
    return head or "en"


def languages_of(config: RuntimeConfig) -> Languages:
    asr = config.asr
    if asr.engine == "sensevoice":
        heard = SENSEVOICE if asr.language == "auto" else (asr.language,)
    elif asr.model_path:  # a multilingual Whisper model of the user's choice
        heard = ("*",) if asr.language in ("auto", "*") else (asr.language,)
    else:
        heard = ("en",)  # the embedded tiny.en
    tts = config.tts
    return Languages(heard, tts_languages(tts.engine, tts.voice))
