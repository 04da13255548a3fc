"""The reply's first TTS piece is cut early for latency; the seam it leaves must sound like a short pause.

Real engines (Piper, the audio-driven A2E) and a real OpenAI-protocol server; the playout records what the
reply worker queued, piece by piece.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from avatar_runtime.audio import trim_trailing_silence
from avatar_runtime.config import load_config
from avatar_runtime.engines.loader import build_engines
from avatar_runtime.pipeline.playout import Playout
from avatar_runtime.pipeline.reply import ReplyHandle, ReplyWorker

from tests.support.openai_server import OpenAIStubServer

RATE = 48000
SOUND = 2e-3  # the threshold trim_leading_silence uses


class RecordingPlayout(Playout):
    """The real playout, also keeping each piece's audio in the order the worker queued it."""

    def __init__(self) -> None:
        super().__init__(sample_rate=RATE)
        self.pieces: dict[int, list[np.ndarray]] = {}
        self.texts: dict[int, str] = {}

    def add_audio(self, turn: int, samples: np.ndarray, text: str = "", sentence: int | None = None) -> None:
        super().add_audio(turn, samples, text, sentence)
        self.pieces.setdefault(sentence, []).append(samples)
        self.texts[sentence] = text


@pytest.fixture(scope="module")
def spoken():
    reply = "It is a quarter past ten in the morning. Plenty of day left. Enjoy it."
    with OpenAIStubServer(replies=[reply]) as stub:
        config = load_config(env={"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "test"})
        config.tts.engine = "piper"
        engines = build_engines(config)

        async def run() -> RecordingPlayout:
            playout = RecordingPlayout()
            ask = lambda handle: [{"role": "user", "content": handle.user_text}]  # noqa: E731
            worker = ReplyWorker(engines, playout, ask, lambda _e: None)
            handle = worker.start(ReplyHandle(turn=1, user_text="What time is it?"))
            handle.commit()
            await asyncio.wait_for(handle.done.wait(), 60)
            assert handle.error is None
            return playout

        return asyncio.run(run())


def _lead_ms(piece: list[np.ndarray]) -> float:
    audio = np.concatenate(piece)
    return float(np.flatnonzero(np.abs(audio) > SOUND)[0]) * 1000 / RATE


def _tail_ms(piece: list[np.ndarray]) -> float:
    audio = np.concatenate(piece)
    return float(len(audio) - 1 - np.flatnonzero(np.abs(audio) > SOUND)[-1]) * 1000 / RATE


def test_first_sentence_is_cut_before_the_phrase_and_nothing_is_lost(spoken) -> None:
    assert [spoken.texts[i] for i in sorted(spoken.texts)] == [
        "It is a quarter past ten",
        "in the morning.",
        "Plenty of day left.",
        "Enjoy it.",
    ]


def test_reply_start_and_the_seam_inside_a_sentence_lose_their_leading_silence(spoken) -> None:
    # Piper starts every piece with 0–60 ms of near-silence; 5 ms are kept (measured after resampling to 48 kHz,
    # which can soften an isolated first sample below the threshold: hence the slack).
    assert _lead_ms(spoken.pieces[1]) <= 15  # the reply's first audio
    assert _lead_ms(spoken.pieces[2]) <= 15  # continues "…past ten": no second onset pause


def test_seam_inside_the_sentence_is_a_short_pause(spoken) -> None:
    # Piper ends every piece with 80–160 ms of silence; mid-sentence that is cut to a 60 ms phrase pause.
    assert _tail_ms(spoken.pieces[1]) <= 61
    assert _tail_ms(spoken.pieces[1]) + _lead_ms(spoken.pieces[2]) <= 76


def test_trailing_silence_is_shortened_never_lengthened_or_cut_into_sound() -> None:
    rate = 1000
    sound = np.r_[np.zeros(10), np.full(50, 0.3), np.zeros(200)].astype(np.float32)
    trimmed = trim_trailing_silence(sound, rate, keep_ms=60)
    assert len(trimmed) == 10 + 50 + 60 and np.array_equal(trimmed, sound[:120])
    short_tail = sound[:90]  # 30 ms of silence: already shorter than a phrase pause
    assert np.array_equal(trim_trailing_silence(short_tail, rate, keep_ms=60), short_tail)
    silent = np.zeros(100, dtype=np.float32)
    assert len(trim_trailing_silence(silent, rate)) == 100  # nothing to measure against: left alone
