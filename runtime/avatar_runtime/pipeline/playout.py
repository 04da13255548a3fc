"""The reply timeline: audio and expression frames leave from ONE clock, the output track's sample counter.

The output track pulls 20 ms of audio at a time (`pull`). Frame k of a turn belongs to the turn's audio from
sample k·(rate/fps); it is released in the pull that plays that sample and stamped with that sample's place
on the track (ms since the session's first reply sample), so a receiver that plays both on arrival sees them
aligned — even when synthesis underruns and the track has to play silence in the middle of a turn.
Cues (opaque markers such as an expression change) ride the same timeline: one added between two pieces of
audio is released in the pull that plays the first sample after it.
Pure and single-threaded: the track does the sending, the session reacts to `started`/`finished`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReleasedFrame:
    turn: int
    index: int
    pts_ms: int
    weights: np.ndarray
    last: bool


@dataclass
class PullResult:
    samples: np.ndarray  # float32, exactly the requested length
    frames: list[ReleasedFrame] = field(default_factory=list)
    started_turn: int | None = None  # the first sample of this turn is in this pull
    finished_turn: int | None = None  # this turn has now played out completely (or ended with no audio)
    cues: list[tuple[int, Any]] = field(default_factory=list)  # (turn, cue) whose place was reached in this pull
    start_ms: float | None = None  # timeline position of this pull's first sample (None before the origin)


@dataclass
class _Segment:
    samples: np.ndarray
    text: str
    start: int  # offset of the segment within the turn's audio
    sentence: int  # segments with the same number are pieces of one sentence (text given once per piece)


class _TurnAudio:
    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.segments: deque[_Segment] = deque()
        self.spoken: list[_Segment] = []  # fully or partly played, for "what the user heard"
        self.queued_samples = 0  # total samples added
        self.played = 0  # turn samples played so far
        self.frames: list[np.ndarray] = []
        self.next_frame = 0
        self.cues: deque[tuple[int, Any]] = deque()  # (turn sample position, cue)
        self.ended = False  # no more audio or frames will be added
        self.started = False


class Playout:
    def __init__(self, sample_rate: int = 48000, fps: int = 30) -> None:
        self.sample_rate = sample_rate
        self.fps = fps
        self._samples_per_frame = sample_rate / fps
        self._queue: deque[_TurnAudio] = deque()
        self._position = 0  # track samples pulled so far
        self._origin: int | None = None  # track position of the session's first reply sample

    # -- producer side (the reply worker) --------------------------------------------------------------
    def _turn(self, turn: int) -> _TurnAudio:
        for entry in self._queue:
            if entry.turn == turn:
                return entry
        entry = _TurnAudio(turn)
        self._queue.append(entry)
        return entry

    def add_audio(self, turn: int, samples: np.ndarray, text: str = "", sentence: int | None = None) -> None:
        """Queue reply audio. `text` is the sentence it speaks; pieces of one sentence share `sentence`
        (None = this piece is a sentence of its own), so "what the user heard" counts each sentence once."""
        entry = self._turn(turn)
        if entry.ended:
            raise RuntimeError(f"turn {turn} already ended")
        if sentence is None:
            sentence = -len(entry.spoken) - len(entry.segments) - 1  # unique, never equal to a caller's number
        segment = _Segment(samples.astype(np.float32, copy=False), text, entry.queued_samples, sentence)
        entry.segments.append(segment)
        entry.queued_samples += len(samples)

    def add_frames(self, turn: int, frames: list[np.ndarray]) -> None:
        self._turn(turn).frames.extend(frames)

    def add_cue(self, turn: int, cue: Any) -> None:
        """Mark the turn's timeline after the audio queued so far: `cue` is released with the next sample."""
        entry = self._turn(turn)
        entry.cues.append((entry.queued_samples, cue))

    def start_timeline(self) -> None:
        """Put the timeline's origin (pts 0) here, before any reply, for frames sent outside replies."""
        if self._origin is None:
            self._origin = self._position

    def end_turn(self, turn: int) -> None:
        self._turn(turn).ended = True

    def interrupt(self) -> dict[int, str]:
        """Drop everything queued; returns, per dropped turn that had started, the text the user heard."""
        heard = {entry.turn: _heard_text(entry) for entry in self._queue if entry.started}
        self._queue.clear()
        return heard

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    @property
    def speaking(self) -> bool:
        """A reply's audio has started playing and has not played out (it may be underrunning)."""
        return bool(self._queue) and self._queue[0].started

    # -- consumer side (the output track) --------------------------------------------------------------
    def pull(self, n: int) -> PullResult:
        out = np.zeros(n, dtype=np.float32)
        result = PullResult(samples=out)
        if self._origin is not None:
            result.start_ms = (self._position - self._origin) * 1000 / self.sample_rate
        filled = 0
        while filled < n and self._queue:
            entry = self._queue[0]
            filled += self._play(entry, out, filled, result)
            if entry.ended and not entry.segments and entry.next_frame >= len(entry.frames):
                self._queue.popleft()
                result.finished_turn = entry.turn  # also for a reply that produced no audio at all
                continue
            if not entry.segments:
                break  # underrun: the rest of this pull is silence, the turn's timeline waits
        self._position += n
        return result

    def _play(self, entry: _TurnAudio, out: np.ndarray, filled: int, result: PullResult) -> int:
        """Copy the entry's audio into out[filled:], releasing the frames whose first sample is played."""
        start_filled = filled
        while filled < len(out) and entry.segments:
            if not entry.started:
                entry.started = True
                result.started_turn = entry.turn
                if self._origin is None:
                    self._origin = self._position + filled
            self._release_cues(entry, entry.played, result)
            segment = entry.segments[0]
            offset = entry.played - segment.start
            take = min(len(out) - filled, len(segment.samples) - offset)
            out[filled : filled + take] = segment.samples[offset : offset + take]
            self._release_frames(entry, entry.played + take, self._position + filled - entry.played, result)
            entry.played += take
            filled += take
            if offset + take >= len(segment.samples):
                entry.spoken.append(entry.segments.popleft())
        if not entry.segments and entry.ended:
            # Audio is done: frames still pending (a last partial period) and cues after the last audio go now.
            self._release_cues(entry, 1 << 62, result)
            self._release_frames(entry, 1 << 62, self._position + filled - entry.played, result)
        return filled - start_filled

    @staticmethod
    def _release_cues(entry: _TurnAudio, played_until: int, result: PullResult) -> None:
        while entry.cues and entry.cues[0][0] <= played_until:
            result.cues.append((entry.turn, entry.cues.popleft()[1]))

    def _release_frames(self, entry: _TurnAudio, played_until: int, track_base: int, result: PullResult) -> None:
        """Release frames starting before `played_until` turn samples; track_base maps turn → track samples."""
        while entry.next_frame < len(entry.frames):
            frame_start = int(round(entry.next_frame * self._samples_per_frame))
            if frame_start >= played_until:
                break
            pts_ms = int(round((track_base + frame_start - (self._origin or 0)) * 1000 / self.sample_rate))
            last = entry.ended and entry.next_frame == len(entry.frames) - 1
            weights = entry.frames[entry.next_frame]
            result.frames.append(ReleasedFrame(entry.turn, entry.next_frame, pts_ms, weights, last))
            entry.next_frame += 1


def _heard_text(entry: _TurnAudio) -> str:
    """Text of the played sentences; one cut off counts by the share of its (queued) audio that was played."""
    sentences: dict[int, list] = {}  # sentence → [text, samples played, samples queued], in playing order
    for segment in (*entry.spoken, *entry.segments):
        played = min(max(entry.played - segment.start, 0), len(segment.samples))
        text_played_total = sentences.setdefault(segment.sentence, [segment.text, 0, 0])
        text_played_total[1] += played
        text_played_total[2] += len(segment.samples)
    words: list[str] = []
    for text, played, total in sentences.values():
        sentence_words = text.split()
        words.extend(sentence_words[: int(round(played / max(1, total) * len(sentence_words)))])
    return " ".join(words)
