"""Our runtime, measured at the client: a real aiortc peer on loopback speaks each question to the real app.

Voice-to-voice is taken where a user would take it: from the moment the peer sends the packet holding the last
voiced sample of the question to the arrival of the first audible reply sample at the peer. The per-stage
numbers come from the runtime's own `latency` event of the turn (server clocks). Transport is what the server
cannot see: client voice-to-voice minus server voice-to-voice (the server's estimate of the end of speech
→ the first reply packet pulled by its audio track), i.e. uplink (Opus encode, loopback, decode, VAD chunking),
the VAD's smoothing (Silero's probability stays above the release threshold for ~50 ms after the voice ends, so
the server dates the end of speech that much late) and downlink (Opus encode, loopback, one packet of jitter
buffer, decode at the peer).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from .questions import Question, speech_of

AUDIBLE = 1e-3  # a reply sample above this is sound, not the track's silence
CLIENT_JITTER_PACKETS = 1
SERVER_STAGES = ["vad", "asr", "llm_first_token", "tts_first_audio", "a2e_first_frame"]


@dataclass
class TurnResult:
    question: str
    total_ms: float  # end of user speech → first reply audio, as the client saw it
    stages_ms: dict[str, float] = field(default_factory=dict)


class TurnFailed(RuntimeError):
    """A turn produced no reply (or no latency event): the benchmark must not silently skip it."""


async def measure_ours(url: str, questions: list[Question], before_turn=lambda _q: None, log=print) -> list[TurnResult]:
    from tests.support.peer import AvatarPeer

    # The peer shares the runtime's process, whose microphone receivers decode each packet at once; a browser
    # holds more than that (its playout delay, measured by av_sync.py), so hold one packet as aiortc at its least.
    peer = AvatarPeer(url, receive_jitter_packets=CLIENT_JITTER_PACKETS)
    await peer.connect()
    await asyncio.sleep(0.5)  # let ICE/DTLS settle and the jitter buffers fill before the first question
    results: list[TurnResult] = []
    try:
        for index, question in enumerate(questions, 1):
            before_turn(question)
            results.append(await _one_turn(peer, question))
            stages = ", ".join(f"{k} {v:.0f}" for k, v in results[-1].stages_ms.items())
            log(f"  ours {index:2d}/{len(questions)}: {results[-1].total_ms:6.0f} ms  ({stages})")
            await asyncio.sleep(0.3)  # a short gap, as between turns of a real conversation
    finally:
        await peer.close()
    return results


async def _one_turn(peer, question: Question) -> TurnResult:
    before_events, before_audio = len(peer.received.events), len(peer.received.audio)
    peer.mic.say(speech_of(question))
    try:
        end = await peer.wait_event("turn_end", timeout=30, after=before_events)
        latency = await peer.wait_event("latency", timeout=5, after=before_events)
    except TimeoutError as exc:
        raise TurnFailed(f"no reply to {question.text!r}: {exc}") from exc
    if end["reason"] != "done":
        raise TurnFailed(f"turn for {question.text!r} ended with {end['reason']!r}, not 'done'")
    speech_end = peer.mic.utterance_ended[-1]
    received = zip(peer.received.audio[before_audio:], peer.received.audio_times[before_audio:], strict=True)
    first_audio = next((at for piece, at in received if np.abs(piece).max() > AUDIBLE), None)
    server = latency["ms"]
    if first_audio is None or "voice_to_voice" not in server:
        raise TurnFailed(f"no reply audio reached the client for {question.text!r} (latency event {server})")
    total_ms = (first_audio - speech_end) * 1000
    stages = {stage: float(server[stage]) for stage in SERVER_STAGES if stage in server}
    stages["server_v2v"] = float(server["voice_to_voice"])
    stages["transport"] = total_ms - stages["server_v2v"]
    return TurnResult(question.text, total_ms, stages)
