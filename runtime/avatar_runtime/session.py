"""One conversation: the WebRTC peer, the turn-taking controller and the reply in progress.

Side effects live here (sending on the data channel, the peer connection, metrics); the decisions come from
the pure pieces it wires: `TurnDetector` (when the user's turn starts, pauses, ends), `ReplyWorker` (what the
avatar says), `Playout` (when each sample and frame leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from .access import RateLimiter
from .config import RuntimeConfig
from .engines.vad_silero import CHUNK_SAMPLES
from .expression.cues import ExpressionCue
from .expression.layer import ExpressionLayer, SparseAmbient, frames_due
from .metrics import RuntimeMetrics
from .pipeline.client_events import BadClientMessage, Bye, InterruptRequest, TextMessage, parse_client_message
from .pipeline.playout import Playout, PullResult
from .pipeline.prompt import build_messages
from .pipeline.reply import Engines, ReplyHandle, ReplyWorker
from .pipeline.turn_detector import (
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    looks_complete,
)
from .protocol import ARKIT_BLENDSHAPES, EXPRESSION_FPS, encode_frame
from .transport.tracks import OUTPUT_RATE, ReplyAudioTrack, receive_audio

log = logging.getLogger(__name__)
_FAREWELL_FLUSH_S = 1.0  # longest wait for a closing session's last event to leave the data channel buffer


class Session:
    def __init__(
        self,
        session_id: str,
        engines: Engines,
        config: RuntimeConfig,
        metrics: RuntimeMetrics,
        on_closed: Callable[[Session], None],
    ) -> None:
        self.id = session_id
        self._engines = engines
        self._config = config
        self._metrics = metrics
        self._on_closed = on_closed
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.playout = Playout(sample_rate=OUTPUT_RATE, fps=EXPRESSION_FPS)
        self._track = ReplyAudioTrack(self.playout, self._on_pull)
        self._worker = ReplyWorker(engines, self.playout, self._messages_for, self.send_event)
        self._detector = TurnDetector(config.vad)
        self._vad = engines.vad.stream()
        self._mic_buffer = np.zeros(0, dtype=np.float32)
        self._channel = None
        self._history: list[dict[str, str]] = []
        self._turns = 0
        self._current: ReplyHandle | None = None  # the reply the session has taken on (committed or about to be)
        self._speculative: ReplyHandle | None = None  # started at a pause, not yet the user's turn's end
        self._speech_end_wall: dict[int, float] = {}
        self._first_audio_wall: dict[int, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self.created = time.monotonic()
        server = config.server
        self._client_messages = RateLimiter(server.client_messages_per_s * 60, server.client_messages_burst)
        self._rate_error_sent = -1.0
        self._behind_since: float | None = None  # when the data channel's backlog went over the limit
        expression = config.expression
        self._expression = ExpressionLayer(strength=expression.strength, seed=expression.seed)
        self._timeline_s = 0.0  # playout position of the latest pull: when expression events take effect
        self._last_ambient_s: float | None = None
        self._sparse_ambient = SparseAmbient()

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def accept(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Apply the browser's offer and return our answer (ICE gathered: no trickle)."""
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        await self.pc.setRemoteDescription(offer)
        self.pc.addTrack(self._track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._expire_if_never_connected(), "connect-timeout")
        if self._config.server.max_session_s:
            self._spawn(self._end_when_time_is_up(), "lifetime")
        return self.pc.localDescription

    async def close(self, outcome: str = "closed") -> None:
        if self._closed:
            return
        self._closed = True
        for handle in (self._current, self._speculative):
            if handle is not None:
                handle.cancel()
        self.playout.interrupt()
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._track.stop()
        await self.pc.close()
        self._metrics.sessions_total.labels(outcome=outcome).inc()
        self._on_closed(self)
        log.info("session %s closed (%s)", self.id, outcome)

    async def end_with_error(self, code: str, message: str, outcome: str = "shutdown") -> None:
        """Send an `error` event, give it a moment to leave, then close: the client learns why it ended."""
        if self._closed:
            return
        self.playout.interrupt()  # no more frames queue up behind the event
        self.send_event({"type": "error", "code": code, "message": message})
        channel = self._channel
        if channel is not None and channel.bufferedAmount > channel.bufferedAmountLowThreshold:
            drained = asyncio.Event()
            channel.once("bufferedamountlow", drained.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), _FAREWELL_FLUSH_S)
        await asyncio.sleep(0.1)  # handed to SCTP is not yet on the wire; closing sends an ABORT right behind it
        await self.close(outcome)

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"{self.id[:8]}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s task %s failed", self.id, task.get_name(), exc_info=task.exception())

    async def _expire_if_never_connected(self) -> None:
        await asyncio.sleep(self._config.server.session_idle_timeout_s)
        if self.pc.connectionState != "connected":
            await self.close("timeout")

    async def _end_when_time_is_up(self) -> None:
        """`server.max_session_s`: a forgotten tab must not hold a GPU slot (and an LLM key) for ever."""
        limit = self._config.server.max_session_s
        warning = min(self._config.server.session_warning_s, limit)
        await asyncio.sleep(limit - warning)
        if warning:
            self.send_event({"type": "session_ending", "seconds_left": round(warning)})
            await asyncio.sleep(warning)
        message = f"this conversation reached the server's limit of {limit:g} s; start a new one to go on"
        await self.end_with_error("session_expired", message, outcome="expired")

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._spawn(self.close("disconnected"), "close")

    # -- browser → server ------------------------------------------------------------------------------
    def _on_track(self, track) -> None:
        if track.kind == "audio":
            self._spawn(receive_audio(track, self._on_mic_audio), "mic")

    def _on_datachannel(self, channel) -> None:
        if channel.label != "avatar" or self._channel is not None:
            return
        self._channel = channel
        channel.on("message", self._on_client_message)
        self.send_event(
            {
                "type": "hello",
                "session_id": self.id,
                "blendshapes": list(ARKIT_BLENDSHAPES),
                "fps": EXPRESSION_FPS,
                "sample_rate": OUTPUT_RATE,
                "llm": {"engine": self._engines.llm.name, "embedded": self._engines.llm.embedded},
            }
        )
        self._send_state("listening")
        if self._config.expression.ambient_fps:
            self.playout.start_timeline()  # ambient frames from now on: the timeline starts with them
        if self._config.expression.greet:
            self._perform(ExpressionCue("gesture", "hello"))  # a smile and the body's hello clip

    def _on_client_message(self, message: str | bytes) -> None:
        if self._client_messages.take("client"):
            self._metrics.client_messages_rejected.labels(reason="rate_limited").inc()
            now = time.monotonic()
            if now - self._rate_error_sent >= 1.0:  # one error a second, not one per dropped message
                self._rate_error_sent = now
                per_s = self._config.server.client_messages_per_s
                text = f"more than {per_s:g} messages a second: messages are being dropped"
                self.send_event({"type": "error", "code": "rate_limited", "message": text})
            return
        try:
            event = parse_client_message(message)
        except BadClientMessage as exc:
            self._metrics.client_messages_rejected.labels(reason="bad_message").inc()
            self.send_event({"type": "error", "code": "bad_message", "message": str(exc)})
            return
        if isinstance(event, TextMessage):
            self._drop_speculative()
            handle = self._worker.start(ReplyHandle(turn=self._next_turn(), user_text=event.text))
            self._take_on(handle, speech_end_wall=None)
        elif isinstance(event, InterruptRequest):
            self._interrupt()
        elif isinstance(event, Bye):
            self._spawn(self.close("bye"), "close")

    def _on_mic_audio(self, pcm16k: np.ndarray) -> None:
        self._mic_buffer = np.concatenate([self._mic_buffer, pcm16k])
        while len(self._mic_buffer) >= CHUNK_SAMPLES:
            chunk, self._mic_buffer = self._mic_buffer[:CHUNK_SAMPLES], self._mic_buffer[CHUNK_SAMPLES:]
            probability = self._vad.probability(chunk)
            for event in self._detector.push(chunk, probability):
                self._on_turn_event(event)

    # -- turn-taking -----------------------------------------------------------------------------------
    def _on_turn_event(self, event) -> None:
        now = time.perf_counter()
        if isinstance(event, SpeechStarted):
            self._interrupt()  # barge-in: the user talking over the avatar stops it
            self._expression.set_activity("listening", self._timeline_s)
            self.send_event({"type": "user_speech", "speaking": True})
        elif isinstance(event, SpeechPaused):
            # A small "mm-hm" at the user's pause: the face in the ambient frames, a nod by the browser's head.
            self._expression.acknowledge(self._timeline_s)
            self.send_event({"type": "gesture", "name": "acknowledge"})
            self._drop_speculative()
            self._speculative = self._worker.start(ReplyHandle(turn=self._next_turn(), utterance=event.utterance))
            self._spawn(self._end_early_if_complete(self._speculative), "early-end")
        elif isinstance(event, SpeechResumed):
            self._drop_speculative()
        elif isinstance(event, SpeechEnded):
            # The last speech chunk ended (hangover) ago, in stream time; map it to the wall clock.
            speech_end_wall = now - (self._detector.now_s - event.speech_end_s)
            handle = self._speculative if event.speculated else None
            self._speculative = None
            if handle is None:
                self._drop_speculative()
                handle = self._worker.start(ReplyHandle(turn=self._next_turn(), utterance=event.utterance))
            handle.timings.vad = now - speech_end_wall
            self._expression.set_activity("idle", self._timeline_s)
            self.send_event({"type": "user_speech", "speaking": False})
            self._take_on(handle, speech_end_wall=speech_end_wall)

    async def _end_early_if_complete(self, handle: ReplyHandle) -> None:
        await handle.transcribed.wait()
        if handle is self._speculative and looks_complete(handle.user_text):
            self._detector.end_early()

    def _next_turn(self) -> int:
        self._turns += 1
        return self._turns

    def _drop_speculative(self) -> None:
        if self._speculative is not None:
            self._speculative.cancel()
            if self._speculative.turn == self._turns:
                self._turns -= 1  # it never showed: its number goes to the next reply, so turns stay consecutive
            self._speculative = None

    def _take_on(self, handle: ReplyHandle, speech_end_wall: float | None) -> None:
        """The user's turn is over: this reply is now the avatar's; release it once we know what was said."""
        self._interrupt()
        self._current = handle
        if speech_end_wall is not None:
            self._speech_end_wall[handle.turn] = speech_end_wall
        self._spawn(self._follow(handle), f"turn-{handle.turn}")

    async def _follow(self, handle: ReplyHandle) -> None:
        await handle.transcribed.wait()
        if handle.cancelled:
            return
        if not handle.user_text.strip():
            self._current = None  # noise, or nothing intelligible: keep listening
            self._speech_end_wall.pop(handle.turn, None)
            return
        self.send_event(_transcript_event(handle))
        if self._config.expression.react_to_user and handle.heard is not None:
            self._expression.react_to_user(handle.heard.emotion, self._timeline_s)
        self._expression.set_activity("thinking", self._timeline_s)
        self._send_state("thinking")
        self._history.append({"role": "user", "content": handle.user_text})
        handle.commit()
        await handle.done.wait()
        if handle.error is not None and not handle.cancelled and self._current is handle:
            self._current = None
            heard = self.playout.interrupt().get(handle.turn, "")
            self.send_event({"type": "error", "code": handle.error.code, "message": str(handle.error)})
            self._end_turn(handle, "error", heard_text=heard)

    def _interrupt(self) -> None:
        handle, self._current = self._current, None
        if handle is None:
            return
        handle.cancel()
        heard = self.playout.interrupt().get(handle.turn, "")
        if handle.committed:
            self._metrics.interruptions.inc()
            self._end_turn(handle, "interrupted", heard_text=heard)

    def _end_turn(self, handle: ReplyHandle, reason: str, heard_text: str) -> None:
        if heard_text.strip():
            self._history.append({"role": "assistant", "content": heard_text.strip()})
        self._metrics.turns.labels(reason=reason).inc()
        self.send_event({"type": "turn_end", "turn": handle.turn, "reason": reason})
        self._send_latency(handle)
        self._expression.set_activity("idle", self._timeline_s)
        self._send_state("listening")

    def _messages_for(self, handle: ReplyHandle) -> list[dict]:
        llm, expression = self._config.llm, self._config.expression
        return build_messages(
            llm.system_prompt, self._history, handle.user_text, history_turns=llm.history_turns,
            heard=handle.heard, voice_cues=expression.voice_cues, tag_instructions=self._asks_for_tags(),
        )  # fmt: skip

    def _asks_for_tags(self) -> bool:
        """Inline tags are asked for when configured, or when the model was to use tools but its server refused."""
        control, llm = self._config.expression.llm_control, self._engines.llm
        if control == "tags":
            return not llm.embedded
        return control == "tools" and not llm.embedded and getattr(llm, "tools", None) is None

    # -- server → browser ------------------------------------------------------------------------------
    def send_event(self, event: dict) -> None:
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(json.dumps(event, separators=(",", ":")))

    def _send_state(self, state: str) -> None:
        self.send_event({"type": "state", "state": state})

    def _on_pull(self, pulled: PullResult) -> None:
        if pulled.start_ms is not None:
            self._timeline_s = pulled.start_ms / 1000
        for _turn, cue in pulled.cues:
            self._perform(cue)
        frames = self._expression_frames(pulled)
        channel_open = self._channel is not None and self._channel.readyState == "open"
        if channel_open and not self._client_keeps_up():
            # Frames that wait behind a backlog would be shown late anyway: drop them rather than queue without end.
            self._metrics.frames_dropped.inc(len(frames))
        elif channel_open:
            for frame in frames:
                self._channel.send(frame)
        if pulled.frames:
            self._metrics.expression_frames.inc(len(pulled.frames))
        if pulled.started_turn is not None:
            self._on_first_audio(pulled.started_turn)
        if pulled.finished_turn is not None:
            handle = self._current
            if handle is not None and handle.turn == pulled.finished_turn:
                self._current = None
                self._end_turn(handle, "done", heard_text="".join(handle.produced_text))

    def _expression_frames(self, pulled: PullResult) -> list[bytes]:
        """The frames this 20 ms tick sends: the reply's, with mood and gestures added, or else an ambient one
        (computed at `expression.ambient_fps`, sent when the face moved: `SparseAmbient`)."""
        layer = self._expression
        reply = [
            encode_frame(f.turn, f.pts_ms, layer.speech_frame(f.weights, f.pts_ms / 1000), f.last)
            for f in pulled.frames
        ]
        fps = self._config.expression.ambient_fps
        if not fps:
            return reply
        if reply or self.playout.speaking:
            ambient = self._sparse_ambient.flush()  # the idle pose the reply starts from
        elif pulled.start_ms is not None and frames_due(self._last_ambient_s, self._timeline_s, fps):
            self._last_ambient_s = self._timeline_s
            ambient = self._sparse_ambient.offer(self._timeline_s, layer.ambient_frame(self._timeline_s))
        else:
            ambient = []
        self._metrics.ambient_frames.inc(len(ambient))
        return [encode_frame(self._turns, round(t * 1000), w, ambient=True) for t, w in ambient] + reply

    def _perform(self, cue: ExpressionCue) -> None:
        """A cue the LLM asked for has reached the audio it goes with: the face changes, the browser is told."""
        self._expression.apply_cue(cue, self._timeline_s)
        self._metrics.expression_cues.labels(action=cue.action, name=cue.name).inc()
        if (event := cue.as_event()) is not None:
            self.send_event(event)

    def _client_keeps_up(self) -> bool:
        """Whether the browser takes its data channel's data; one that stays behind too long is disconnected."""
        server = self._config.server
        if self._channel.bufferedAmount <= server.max_channel_backlog_bytes:
            self._behind_since = None
            return True
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
            log.warning("session %s: the browser is not taking its data (%d bytes waiting)", self.id,
                        self._channel.bufferedAmount)  # fmt: skip
        elif now - self._behind_since > server.slow_client_timeout_s and not self._closed:
            self._behind_since = None
            self._spawn(self.close("slow_client"), "close")
        return False

    def _on_first_audio(self, turn: int) -> None:
        now = time.perf_counter()
        self._first_audio_wall[turn] = now
        self._send_state("speaking")
        speech_end = self._speech_end_wall.get(turn)
        if speech_end is not None:
            self._metrics.voice_to_voice_seconds.observe(now - speech_end)

    def _send_latency(self, handle: ReplyHandle) -> None:
        timings = handle.timings
        stages = {
            "vad": timings.vad,
            "asr": timings.asr,
            "llm_first_token": timings.llm_first_token,
            "tts_first_audio": timings.tts_first_audio,
            "a2e_first_frame": timings.a2e_first_frame,
        }
        speech_end = self._speech_end_wall.pop(handle.turn, None)
        first_audio = self._first_audio_wall.pop(handle.turn, None)
        for stage, value in stages.items():
            if value is not None:
                self._metrics.turn_stage_seconds.labels(stage=stage).observe(value)
        if speech_end is not None and first_audio is not None:
            stages["voice_to_voice"] = first_audio - speech_end
        ms = {stage: round(value * 1000.0, 1) for stage, value in stages.items() if value is not None}
        self.send_event({"type": "latency", "turn": handle.turn, "ms": ms})


def _transcript_event(handle: ReplyHandle) -> dict:
    """The final `transcript` event; with what the ASR engine detected besides words, when it did."""
    event: dict = {"type": "transcript", "turn": handle.turn, "text": handle.user_text, "final": True}
    heard = handle.heard
    if heard is not None:
        if heard.language:
            event["language"] = heard.language
        if heard.emotion:
            event["emotion"] = heard.emotion
        if heard.events:
            event["events"] = list(heard.events)
    return event
