"""SenseVoice-Small ASR through funasr: the text, plus the language, emotion and audio events the model tags.

SenseVoice prefixes its transcript with rich-transcription tags, e.g.
`<|en|><|HAPPY|><|Speech|><|withitn|>Hello there.`; `parse_rich_text` turns that into a `Transcription`.
The model is loaded from the model cache only: this module checks the directory itself before funasr sees
it, because funasr treats a missing local directory as a hub model id and, offline, retries for 7-22 s
(measured) before failing with a misleading "not registered" error.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np

from ..models.cache import require_files
from .base import EngineUnavailable, Transcription
from .batching import DynamicBatcher

# The files of the published SenseVoiceSmall (ModelScope iic/SenseVoiceSmall, HF FunAudioLLM/SenseVoiceSmall)
# that loading needs. configuration.json is not optional: it is what tells funasr the tokenizer's file name.
REQUIRED_FILES = ("model.pt", "config.yaml", "configuration.json", "am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model")
LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")
TAG_MODES = ("strip", "expose")
_SAMPLE_RATE = 16000

log = logging.getLogger(__name__)

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
    """One funasr model per process, shared by all sessions through one `DynamicBatcher` worker.

    Utterances that arrive together (within `max_wait_ms`, up to `max_batch`) go through the model as one
    padded batch: one funasr call, one encoder forward. Padding is masked, so a batched utterance's CTC
    logits differ from its solo ones by float rounding only (≤ 1e-6 measured on the tiny model); the text can
    differ only where the two best pieces of a frame are that close. The single worker thread also serialises
    funasr, whose `generate()` rewrites the model's shared kwargs and torch's thread count on every call.

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
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"SenseVoice language must be one of {', '.join(LANGUAGES)}; got {language!r}")
        if tags not in TAG_MODES:
            raise ValueError(f"SenseVoice tags must be one of {', '.join(TAG_MODES)}; got {tags!r}")
        if not (device in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", device)):
            raise ValueError(f"SenseVoice device must be auto, cpu, cuda or cuda:N; got {device!r}")
        if threads < 1:
            raise ValueError(f"SenseVoice threads must be at least 1; got {threads}")
        if max_batch < 1:
            raise ValueError(f"SenseVoice max_batch must be at least 1; got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"SenseVoice max_wait_ms must not be negative; got {max_wait_ms}")
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
        self._batcher: DynamicBatcher[np.ndarray, str | Exception] = DynamicBatcher(
            self._run_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="sensevoice-asr"
        )

    async def transcribe(self, samples_16k: np.ndarray) -> Transcription:
        parsed = parse_rich_text(await self.transcribe_raw(samples_16k))
        return parsed if self._expose else Transcription(parsed.text)

    async def transcribe_raw(self, samples_16k: np.ndarray) -> str:
        """The model's output with its tags (`<|en|><|HAPPY|>...`); "" for under 0.1 s, which is not decoded."""
        if len(samples_16k) < _SAMPLE_RATE // 10:
            return ""
        outcome = await self._batcher.submit(sanitize(samples_16k))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        """Stop the worker after the batch in progress; utterances still queued fail with BatcherClosed."""
        self._batcher.close()

    @property
    def batch_sizes(self) -> dict[int, int]:
        """How many batches of each size the worker ran so far."""
        return dict(self._batcher.batch_sizes)

    # -- worker thread -------------------------------------------------------------------------------
    def _run_batch(self, batch: list[np.ndarray]) -> list[str | Exception]:
        """All utterances in one funasr call; if that fails, each alone, so that one utterance funasr cannot
        decode (or a batch too big for the device's memory) fails only its own session's request."""
        try:
            return list(self._generate(batch))
        except Exception as exc:
            if len(batch) == 1:
                raise
            log.warning("SenseVoice: a batch of %d failed (%r); decoding its utterances one by one", len(batch), exc)
        outcomes: list[str | Exception] = []
        for audio in batch:
            try:
                outcomes.extend(self._generate([audio]))
            except Exception as exc:  # this utterance's own failure, for its waiter only
                outcomes.append(exc)
        return outcomes

    def _generate(self, batch: list[np.ndarray]) -> list[str]:
        keys = [str(i) for i in range(len(batch))]
        # batch_size = the whole list: AutoModel.inference slices its input by batch_size (default 1), and one
        # slice is one SenseVoiceSmall.inference call — one padded encoder forward for the lot.
        results = self._model.generate(
            input=batch, key=keys, batch_size=len(batch), language=self._language, use_itn=self._use_itn
        )
        # Each session must get its own transcript: a funasr that reordered (its VAD path sorts by length) or
        # sliced the batch would hand one user another's words, so check the keys rather than trust the order.
        returned = [str(r.get("key")) for r in results]
        if returned != keys:
            raise RuntimeError(f"SenseVoice: funasr returned results for keys {returned}, expected {keys}")
        return [str(r.get("text", "")) for r in results]
