"""Real aiortc peers holding spoken conversations with a runtime, and what they measure at the client.

Each turn: the peer's microphone speaks a question (espeak-ng audio, as in the latency benchmark), the runtime
hears it, answers, and plays the reply back over WebRTC. The peer records, per turn:
- voice-to-voice: the last voiced sample of the question leaving the microphone → the first audible sample of
  the reply arriving;
- underruns: times the listener's jitter buffer would run dry while the reply plays (first audible sample →
  `turn_end`). The received packets are replayed through a model of a playout buffer that starts
  JITTER_BUFFER_S after the first packet and plays each packet for its duration; a packet that arrives after
  its play time is an underrun (the voice breaks up), and the buffer restarts from it. The server's track sends
  a packet every 20 ms, silence included, so only late packets — a starved server loop, the network, or a
  starved client — can cause one. The runtime has no underrun metric of its own (its playout fills a synthesis
  underrun with silence and the track keeps its 20 ms pace), so the client is where it is measured.
  The largest gap between two reply packets is kept too.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tests.support.peer import RATE, AvatarPeer
from tests.support.speech import speak

QUESTIONS = [
    "What is the weather like today in Paris?",
    "Please open the window and turn on the light.",
    "Tell me a joke about computers.",
    "How many legs does a spider have?",
    "Can you recommend a good book to read this weekend?",
    "My name is Alice and I live in Berlin.",
]
ANSWER = "Sure. Here is a short answer for you, spoken right away."
JITTER_BUFFER_S = 0.060  # 3 packets: the smallest delay a browser's adaptive jitter buffer keeps on a clean link
AUDIBLE = 1e-3


def spoken_questions(count: int | None = None) -> list[np.ndarray]:
    """The questions (the `count` shortest, or all) as 16 kHz speech, synthesised once: espeak-ng is a
    subprocess, not something to run inside a timed step."""
    chosen = sorted(QUESTIONS, key=len)[:count] if count else QUESTIONS
    return [speak(question) for question in chosen]


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def reply_gaps(arrivals: Sequence[float], start: float, end: float) -> list[float]:
    """Inter-arrival times (s) of the audio packets received between start and end, both included."""
    times = np.asarray([t for t in arrivals if start <= t <= end])
    return np.diff(times).tolist() if len(times) > 1 else []


def underrun_spans(
    arrivals: Sequence[float], durations: Sequence[float], start: float, end: float, buffer_s: float = JITTER_BUFFER_S
) -> list[tuple[float, float]]:
    """Where a playout buffer of `buffer_s` runs dry playing the pieces that arrive between start and end: the
    (previous arrival, late arrival) of each underrun."""
    spans: list[tuple[float, float]] = []
    play_at, previous = None, start
    for at, duration in zip(arrivals, durations, strict=True):
        if not start <= at <= end:
            continue
        if play_at is None:
            play_at = at + buffer_s
        elif at > play_at:  # this piece should already be playing: silence was heard, then the buffer refills
            spans.append((previous, at))
            play_at = at + buffer_s
        play_at += duration
        previous = at
    return spans


def playout_underruns(
    arrivals: Sequence[float], durations: Sequence[float], start: float, end: float, buffer_s: float = JITTER_BUFFER_S
) -> int:
    return len(underrun_spans(arrivals, durations, start, end, buffer_s))


@dataclass
class Turn:
    speech_end: float
    first_audio: float
    reply_end: float  # arrival of `turn_end`: the reply's last sample has been sent
    reason: str
    underruns: int
    max_gap_ms: float
    underrun_spans: tuple[tuple[float, float], ...] = ()

    @property
    def v2v_ms(self) -> float:
        return (self.first_audio - self.speech_end) * 1000


@dataclass
class SessionRecord:
    turns: list[Turn] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # turns that got no reply in time

    @property
    def v2v_ms(self) -> list[float]:
        return [turn.v2v_ms for turn in self.turns]

    @property
    def underruns(self) -> int:
        return sum(turn.underruns for turn in self.turns)


async def speak_and_wait(peer: AvatarPeer, speech: np.ndarray, timeout_s: float = 30.0) -> Turn:
    """One turn: say `speech`, wait for the reply to finish playing, measure it."""
    before_events, before_audio = len(peer.received.events), len(peer.received.audio)
    spoken_before = len(peer.mic.utterance_ended)
    peer.mic.say(speech)
    deadline = time.monotonic() + timeout_s
    after = before_events
    while True:  # the turn_end of *this* question: one that comes after its last voiced sample left
        end = await peer.wait_event("turn_end", timeout=max(deadline - time.monotonic(), 0.01), after=after)
        index = next(i for i in range(after, len(peer.received.events)) if peer.received.events[i][1] is end)
        if len(peer.mic.utterance_ended) > spoken_before:
            break
        after = index + 1
    reply_end = peer.received.events[index][0]
    speech_end = peer.mic.utterance_ended[spoken_before]
    audio = peer.received.audio[before_audio:]
    arrivals = peer.received.audio_times[before_audio:]
    first_audio = next(
        (at for piece, at in zip(audio, arrivals, strict=True) if at > speech_end and np.abs(piece).max() > AUDIBLE),
        None,
    )
    if first_audio is None:
        raise TimeoutError(f"turn ended ({end.get('reason')}) without audible reply audio")
    gaps = reply_gaps(peer.received.audio_times, first_audio, reply_end)
    durations = [len(piece) / RATE for piece in peer.received.audio]
    spans = underrun_spans(peer.received.audio_times, durations, first_audio, reply_end)
    return Turn(speech_end, first_audio, reply_end, str(end.get("reason")), len(spans), max(gaps, default=0.0) * 1000,
                tuple(spans))  # fmt: skip


async def converse(
    peer: AvatarPeer,
    speeches: Sequence[np.ndarray],
    turns: int,
    seed: int,
    gap_s: tuple[float, float] = (1.0, 3.0),
    start_within_s: float = 3.0,
    stop_at: float | None = None,
) -> SessionRecord:
    """`turns` questions with a think-time drawn from `gap_s` between the reply and the next question, starting
    after a random offset so that concurrent sessions overlap the way independent users do; stops early once
    `stop_at` (perf_counter) is near."""
    rng = random.Random(seed)
    record = SessionRecord()
    await asyncio.sleep(rng.uniform(0, start_within_s))
    for i in range(turns):
        if stop_at is not None and time.perf_counter() > stop_at - 4.0:  # no room left for a whole turn
            break
        speech = speeches[(seed + i) % len(speeches)]
        try:
            record.turns.append(await speak_and_wait(peer, speech))
        except TimeoutError as exc:
            record.failures.append(str(exc))
        await asyncio.sleep(rng.uniform(*gap_s))
    return record


class LoopLag:
    """How late the client's own event loop wakes up. While it is stalled, packets that did arrive wait unread
    and show up late: a gap that overlaps a stall is (at least partly) the measuring client's, not the server's."""

    STALL_S = 0.020

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.max_ms = 0.0
        self.stalls: list[tuple[float, float]] = []  # (when the loop should have woken, when it did)
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.period_s)
            woke = time.perf_counter()
            late = woke - before - self.period_s
            self.max_ms = max(self.max_ms, late * 1000)
            if late > self.STALL_S:
                self.stalls.append((before + self.period_s, woke))

    def overlaps(self, span: tuple[float, float]) -> bool:
        return any(a < span[1] and b > span[0] for a, b in self.stalls)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass(frozen=True)
class WireSample:
    """The peer connection's DTLS transport counters: every UDP payload after ICE — SRTP/SRTCP audio, DTLS
    records carrying SCTP (the data channel) and handshakes; not STUN consent checks, not IP/UDP headers."""

    at: float
    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int


async def wire_sample(peer: AvatarPeer) -> WireSample:
    stats = [s for s in (await peer.pc.getStats()).values() if s.type == "transport"]
    return WireSample(time.perf_counter(), sum(s.bytesSent for s in stats), sum(s.bytesReceived for s in stats),
                      sum(s.packetsSent for s in stats), sum(s.packetsReceived for s in stats))  # fmt: skip
