"""A real aiortc peer that behaves like the browser client of DESIGN §4, for end-to-end tests and benchmarks.

It sends a scripted microphone (silence, then whatever `say()` queues), opens the `avatar` data channel,
records every event and expression frame with its arrival time, and records the reply audio it receives.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from avatar_runtime.audio import resample
from avatar_runtime.protocol import ExpressionFrame, decode_frame
from avatar_runtime.transport.tracks import PacketClock, audio_frame, receive_audio
from avatar_runtime.transport.tuning import set_audio_receive_buffer

RATE = 48000
PACKET = 960  # 20 ms


class ScriptedMicrophone(MediaStreamTrack):
    """Plays queued utterances in real time, silence in between.

    Remembers, for each utterance, the wall time its voice started and ended being sent: the first and the
    last sample above a speech threshold, not the edges of the wav (espeak pads ~0.4 s of silence at the end).
    """

    kind = "audio"
    VOICE = 0.01

    def __init__(self) -> None:
        super().__init__()
        self._pending = np.zeros(0, dtype=np.float32)
        self._marks: list[tuple[int, list[float]]] = []  # (sample index in the send stream, list to append to)
        self._queued_until = 0  # send-stream index where the pending audio ends
        self._clock = PacketClock()
        self._sent = 0
        self.utterance_started: list[float] = []
        self.utterance_ended: list[float] = []

    def say(self, samples: np.ndarray, rate: int = 16000) -> None:
        audio = resample(samples, rate, RATE)
        voiced = np.flatnonzero(np.abs(audio) > self.VOICE)
        begin = max(self._queued_until, self._sent)
        if len(voiced):
            self._marks.append((begin + int(voiced[0]), self.utterance_started))
            self._marks.append((begin + int(voiced[-1]), self.utterance_ended))
        if self._queued_until < self._sent:  # idle since: pad nothing, start now
            self._pending = np.zeros(0, dtype=np.float32)
        self._pending = np.concatenate([self._pending, audio])
        self._queued_until = begin + len(audio)

    @property
    def busy(self) -> bool:
        return len(self._pending) > 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_packet()
        chunk = np.zeros(PACKET, dtype=np.float32)
        take = min(PACKET, len(self._pending))
        if take:
            chunk[:take] = self._pending[:take]
            self._pending = self._pending[take:]
        now = time.perf_counter()
        for mark in [m for m in self._marks if m[0] < pts + PACKET]:
            mark[1].append(now)
            self._marks.remove(mark)
        self._sent = pts + PACKET  # samples sent so far
        return audio_frame(chunk, pts)


@dataclass
class Received:
    events: list[tuple[float, dict]] = field(default_factory=list)
    frames: list[tuple[float, ExpressionFrame]] = field(default_factory=list)  # reply frames
    ambient: list[tuple[float, ExpressionFrame]] = field(default_factory=list)  # idle/listening frames (flag bit1)
    audio: list[np.ndarray] = field(default_factory=list)  # mono float32 48 kHz, in arrival order
    audio_times: list[float] = field(default_factory=list)  # arrival time of each audio piece
    bad_frames: int = 0

    def of_type(self, kind: str) -> list[dict]:
        return [event for _, event in self.events if event.get("type") == kind]

    def audio_samples(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.float32)


class AvatarPeer:
    def __init__(
        self, base_url: str, receive_jitter_packets: int | None = None, configuration: RTCConfiguration | None = None
    ) -> None:
        """`receive_jitter_packets`: the reply audio's jitter-buffer depth; None keeps this process's setting
        (a peer in the runtime's own process shares the runtime's microphone tuning). `configuration`: ICE servers
        and policy, as a browser takes them from /api/config (default: none, host candidates only)."""
        self.base_url = base_url
        self.receive_jitter_packets = receive_jitter_packets
        self.mic = ScriptedMicrophone()
        self.pc = RTCPeerConnection(configuration)
        self.received = Received()
        self.session_id: str | None = None
        self.channel = None
        self._new_event = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def connect(self, timeout: float = 20.0, token: str | None = None) -> dict:  # noqa: ASYNC109
        """Offer (with `Authorization: Bearer <token>` if given), get the answer, wait for `hello`; returns it."""
        self.channel = self.pc.createDataChannel("avatar")
        self.channel.on("message", self._on_message)
        self.pc.addTrack(self.mic)
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(
                f"{self.base_url}/api/sessions",
                json={"sdp": self.pc.localDescription.sdp, "type": "offer"},
                headers={"Authorization": f"Bearer {token}"} if token else None,
            )
        if response.status_code != 201:
            raise SessionRefused(response.status_code, response.headers, response.json())
        body = response.json()
        self.session_id = body["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        return await self.wait_event("hello", timeout=timeout)

    def _on_track(self, track) -> None:
        if self.receive_jitter_packets is not None:
            receiver = next(r for r in self.pc.getReceivers() if r.track is track)
            set_audio_receive_buffer(receiver, self.receive_jitter_packets)
        self._reader = asyncio.ensure_future(receive_audio(track, self._on_audio, rate=RATE))

    def _on_audio(self, samples: np.ndarray) -> None:
        self.received.audio.append(samples)
        self.received.audio_times.append(time.perf_counter())

    def _on_message(self, message) -> None:
        now = time.perf_counter()
        if isinstance(message, bytes):
            try:
                frame = decode_frame(message)
                (self.received.ambient if frame.ambient else self.received.frames).append((now, frame))
            except ValueError:
                self.received.bad_frames += 1
        else:
            self.received.events.append((now, json.loads(message)))
        self._new_event.set()

    def send(self, event: dict | str | bytes) -> None:
        self.channel.send(event if isinstance(event, (str, bytes)) else json.dumps(event))

    async def wait_event(self, kind: str, timeout: float = 30.0, after: int = 0, **match) -> dict:  # noqa: ASYNC109
        """Wait for the first event of `kind` (at index ≥ after) whose fields equal `match`."""
        deadline = time.monotonic() + timeout
        while True:
            for _, event in self.received.events[after:]:
                if event.get("type") == kind and all(event.get(k) == v for k, v in match.items()):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [e.get("type") for _, e in self.received.events]
                raise TimeoutError(f"no {kind} event {match} within {timeout} s; saw {seen}")
            self._new_event.clear()
            try:
                await asyncio.wait_for(self._new_event.wait(), min(remaining, 0.25))
            except TimeoutError:
                pass

    def event_time(self, kind: str, **match) -> float:
        for at, event in self.received.events:
            if event.get("type") == kind and all(event.get(k) == v for k, v in match.items()):
                return at
        raise LookupError(kind)

    async def close(self) -> None:
        if self.session_id is not None:
            async with httpx.AsyncClient(timeout=10) as client:
                await client.delete(f"{self.base_url}/api/sessions/{self.session_id}")
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


class SessionRefused(Exception):
    def __init__(self, status: int, headers, body: dict) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.headers, self.body = status, headers, body
