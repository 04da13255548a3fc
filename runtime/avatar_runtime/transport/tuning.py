"""Two aiortc defaults that suit a video call but not a voice agent, changed once per process.

- Opus bitrate: aiortc hard-codes 96 kbit/s, several times what one voice needs (speech is transparent near
  24–32k), so the reply track encodes at the configured rate.
- Receive jitter buffer: aiortc holds 4 audio packets (80 ms) before it decodes the first. Nothing plays the
  microphone back here; VAD and ASR only need packets in order, so 1 packet is enough, and the 60 ms saved
  come straight off barge-in and voice-to-voice latency.
Both reach into aiortc internals (pinned: aiortc==1.16.0); `apply_tuning` fails loudly if they moved.
"""

from __future__ import annotations

from aiortc import rtcrtpreceiver
from aiortc.codecs import opus
from aiortc.jitterbuffer import JitterBuffer

_ORIGINAL_OPUS_INIT = opus.OpusEncoder.__init__
_ORIGINAL_RECEIVER_INIT = rtcrtpreceiver.RTCRtpReceiver.__init__
_settings = {"opus_bitrate": 96000, "audio_prefetch": 4}


def _opus_init(self: opus.OpusEncoder) -> None:
    _ORIGINAL_OPUS_INIT(self)
    self.codec.bit_rate = _settings["opus_bitrate"]


def _receiver_init(self, kind: str, transport) -> None:
    _ORIGINAL_RECEIVER_INIT(self, kind, transport)
    if kind == "audio":
        attribute = "_RTCRtpReceiver__jitter_buffer"
        if not hasattr(self, attribute):
            raise RuntimeError("aiortc internals changed: RTCRtpReceiver has no audio jitter buffer to tune")
        setattr(self, attribute, JitterBuffer(capacity=16, prefetch=_settings["audio_prefetch"]))


def apply_tuning(opus_bitrate: int, audio_prefetch: int = 1) -> None:
    """Set the reply Opus bitrate (bit/s) and the microphone jitter-buffer depth (packets) for new peers."""
    _settings["opus_bitrate"] = int(opus_bitrate)
    _settings["audio_prefetch"] = int(audio_prefetch)
    opus.OpusEncoder.__init__ = _opus_init  # type: ignore[method-assign]
    rtcrtpreceiver.RTCRtpReceiver.__init__ = _receiver_init  # type: ignore[method-assign]
