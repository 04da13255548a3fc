"""SenseVoice-Small ASR through funasr: the text, plus the language, emotion and audio events the model tags.

SenseVoice prefixes its transcript with rich-transcription tags, e.g.
`<|en|><|HAPPY|><|Speech|><|withitn|>Hello there.`; `parse_rich_text` turns that into a `Transcription`.
The model is loaded from the model cache only: this module checks the directory itself before funasr sees
it, because funasr treats a missing local directory as a hub model id and, offline, retries for 7-22 s
(measured) before failing with a misleading "not registered" error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np

from ..models.cache import require_files
from .base import EngineUnavailable, Transcription

# The files of the published SenseVoiceSmall (ModelScope iic/SenseVoiceSmall, HF FunAudioLLM/SenseVoiceSmall)
# that loading needs. configuration.json is not optional: it is what tells funasr the tokenizer's file name.
REQUIRED_FILES = ("model.pt", "config.yaml", "configuration.json", "am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model")
LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")
TAG_MODES = ("strip", "expose")
_SAMPLE_RATE = 16000

_TAG = re.compile(r"<\|([^<>|]*)\|>")
_LANGUAGE_TAGS = frozenset({"zh", "en", "yue", "ja", "ko"})  # <|nospeech|> means no language
_EMOTION_TAGS = frozenset({"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED"})
_EVENT_TAGS = frozenset({"BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Sing", "Speech_Noise"})
# Everything else (<|Speech|>, <|EMO_UNKNOWN|>, <|Event_UNK|>, <|nospeech|>, <|withitn|>, <|woitn|>, ...) only
# says "nothing special" or how the text was normalised: stripped, never reported.


def parse_rich_text(raw: str) -> Transcription:
    """Split SenseVoice output into plain text and its tags (first language and emotion win; events deduped)."""
    language = emotion = None
    events: list[str] = []
    for tag in _TAG.findall(raw):
        if tag in _LANGUAGE_TAGS and language is None:
            language = tag
        elif tag in _EMOTION_TAGS and emotion is None:
            emotion = tag.lower()
        elif tag in _EVENT_TAGS and tag.lower() not in events:
            events.append(tag.lower())
    text = " ".join(_TAG.sub("", raw).split())
    return Transcription(text, language, emotion, tuple(events))


def sanitize(samples: np.ndarray) -> np.ndarray:
    """Mono float32 in -1..1 with NaN/inf zeroed: funasr scales by 2^15 for Kaldi fbank and would propagate NaN."""
    audio = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(audio, -1.0, 1.0)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        # funasr would quietly fall back to the CPU; a deployment that asked for a GPU should hear about it.
        raise EngineUnavailable(f"SenseVoice: device {device!r} requested but torch sees no CUDA device")
    return device


@contextmanager
def contain_funasr_side_effects() -> Iterator[None]:
    """Undo what importing and loading funasr does to the whole process.

    Its import runs every submodule, one of which calls logging.basicConfig(INFO) and
    warnings.filterwarnings("ignore") at module level; AutoModel logs INFO through the root logger and calls
    basicConfig again. Loading happens once, at startup, so swapping process-wide state here is safe.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    # basicConfig does nothing while the root logger has a handler, so give it one for the duration.
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # restores the warning filters on exit
            yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


class SenseVoiceASR:
    """One funasr model per process, shared by all sessions; utterances take turns on it (a lock).

    `tags="expose"` fills Transcription.language/.emotion/.events from the model's tags; `"strip"` returns the
    text only. `threads` is torch's intra-op thread count, which funasr sets process-wide on every call.
    """

    name = "sensevoice"

    def __init__(
        self,
        model_dir: str | Path,
        language: str = "auto",
        device: str = "auto",
        use_itn: bool = True,
        tags: Literal["strip", "expose"] = "strip",
        threads: int = 2,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"SenseVoice language must be one of {', '.join(LANGUAGES)}; got {language!r}")
        if tags not in TAG_MODES:
            raise ValueError(f"SenseVoice tags must be one of {', '.join(TAG_MODES)}; got {tags!r}")
        if not (device in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", device)):
            raise ValueError(f"SenseVoice device must be auto, cpu, cuda or cuda:N; got {device!r}")
        if threads < 1:
            raise ValueError(f"SenseVoice threads must be at least 1; got {threads}")
        path = Path(model_dir)
        directory = require_files(path.parent, path.name, REQUIRED_FILES)  # before funasr: fast, exact error
        self._language, self._use_itn, self._expose = language, use_itn, tags == "expose"
        with contain_funasr_side_effects():
            try:
                from funasr import AutoModel
            except ImportError as exc:
                raise EngineUnavailable(f"funasr is not installed ({exc}); hack/install.sh installs it") from None
            self.device = _resolve_device(device)
            try:
                self._model = AutoModel(
                    model=str(directory),
                    device=self.device,
                    ncpu=threads,
                    disable_update=True,  # no PyPI version check
                    check_latest=False,
                    trust_remote_code=False,  # never import model.py from the cwd or pip-install requirements.txt
                    disable_pbar=True,
                    # Weights that do not fit the config must fail, not leave a layer silently random.
                    ignore_init_mismatch=False,
                    # funasr's fbank dithers by default, so the same audio gave different transcripts; FunASR's
                    # own C++ runtime runs SenseVoice with dither 0 as well.
                    frontend_conf={"dither": 0.0},
                )
            except Exception as exc:  # funasr raises anything from AssertionError to RuntimeError for a bad model
                raise EngineUnavailable(f"SenseVoice model in {directory} could not be loaded: {exc}") from exc
        # generate() rewrites the model's shared kwargs on every call, so calls must not overlap (funasr's own
        # websocket server wraps it in a lock for the same reason).
        self._lock = threading.Lock()

    def _transcribe_blocking(self, samples: np.ndarray) -> str:
        with self._lock:
            results = self._model.generate(input=samples, language=self._language, use_itn=self._use_itn)
        return str(results[0].get("text", "")) if results else ""

    async def transcribe(self, samples_16k: np.ndarray) -> Transcription:
        if len(samples_16k) < _SAMPLE_RATE // 10:
            return Transcription("")
        raw = await asyncio.to_thread(self._transcribe_blocking, sanitize(samples_16k))
        parsed = parse_rich_text(raw)
        return parsed if self._expose else Transcription(parsed.text)
