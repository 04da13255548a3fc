"""Prometheus metrics of DESIGN §6, one registry per app so several apps (tests) can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TURN_STAGES = ("vad", "asr", "llm_first_token", "tts_first_audio", "a2e_first_frame")
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge("avatar_sessions_active", "Sessions currently open", registry=r)
        self.sessions_limit = Gauge("avatar_sessions_limit", "Concurrent session limit", registry=r)
        self.draining = Gauge(
            "avatar_draining", "1 while the server drains (SIGTERM): no new sessions, live ones go on", registry=r
        )
        self.sessions_total = Counter("avatar_sessions_total", "Sessions ended, by outcome", ["outcome"], registry=r)
        self.sessions_rejected = Counter(
            "avatar_sessions_rejected_total", "Session requests refused, by reason", ["reason"], registry=r
        )
        self.frames_dropped = Counter(
            "avatar_expression_frames_dropped_total",
            "Expression frames not sent because the browser was not taking its data channel's data",
            registry=r,
        )
        self.client_messages_rejected = Counter(
            "avatar_client_messages_rejected_total",
            "Data-channel messages from browsers dropped, by reason (rate_limited, bad_message)",
            ["reason"],
            registry=r,
        )
        self.expression_cues = Counter(
            "avatar_expression_cues_total",
            "Moods, passing expressions and gestures performed (LLM tool calls, tags, the embedded responder)",
            ["action", "name"],
            registry=r,
        )
        self.ambient_frames = Counter(
            "avatar_ambient_frames_total",
            "Idle/listening expression frames sent while the avatar was silent",
            registry=r,
        )
        self.turn_stage_seconds = Histogram(
            "avatar_turn_stage_seconds", "Per-turn stage latency", ["stage"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.voice_to_voice_seconds = Histogram(
            "avatar_voice_to_voice_seconds",
            "End of user speech to first reply audio sample sent",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.expression_frames = Counter("avatar_expression_frames", "Expression frames sent", registry=r)
        self.interruptions = Counter("avatar_interruptions", "Replies interrupted by the user", registry=r)
        self.turns = Counter("avatar_turns", "Replies, by how they ended", ["reason"], registry=r)
