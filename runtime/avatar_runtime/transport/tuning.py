"""Two aiortc defaults that suit a video call but not a voice agent, changed once per process.

- Opus bitrate: aiortc hard-codes 96 kbit/s, several times what one voice needs (speech is transparent near
  24–32k), so the reply track encodes at the configured rate.
- Receive jitter buffer: aiortc holds 4 audio packets (80 ms) before it decodes the first, and even with a
  prefetch of 1 it releases a packet only when the next one arrives (+20 ms). Nothing plays the microphone
  back here; VAD and ASR only need packets in order, so by default (`server.mic_jitter_packets: 0`) each
  packet is decoded as soon as it is the next in sequence. The 80 ms saved come straight off barge-in and
  voice-to-voice latency.
Both reach into aiortc internals (pinned: aiortc==1.16.0); `apply_tuning` fails loudly if they moved.
"""

from __future__ import annotations

from aiortc import rtcrtpreceiver
from aiortc.codecs import opus
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

_ORIGINAL_OPUS_INIT = opus.OpusEncoder.__init__
_ORIGINAL_RECEIVER_INIT = rtcrtpreceiver.RTCRtpReceiver.__init__
_settings = {"opus_bitrate": 96000, "audio_prefetch": 4}


class InOrderAudioBuffer(JitterBuffer):
    """Releases each audio packet as soon as it is the next in sequence (an RTP Opus packet is a whole frame).

    aiortc's buffer finds a frame's end only when a packet with the next timestamp arrives, which for audio
    means one packet (20 ms) of delay, and after a lost packet it waits for the buffer to overflow (320 ms) and
    stays that far behind for good, because every arriving packet releases exactly one frame. Here a missing
    packet is given up once `GAP_PACKETS` later ones have arrived, and when packets pile up behind the next one
    (after a gap or a burst) the oldest are dropped so that at most one is left waiting: the microphone is
    never more than 20 ms behind for long. VAD and ASR lose the dropped 20 ms pieces, not the conversation.
    """

    GAP_PACKETS = 3  # 60 ms: a reordered packet later than this is treated as lost

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        ready = self._ready()
        if ready == 0:
            waiting = sum(packet is not None for packet in self._packets)
            if waiting < self.GAP_PACKETS:
                return None
            while self._packets[self._origin % self._capacity] is None:  # skip the gap
                self.remove(1)
            ready = self._ready()
        if ready > 2:
            self.remove(ready - 2)
        packet = self._packets[self._origin % self._capacity]
        self.remove(1)
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # _data: the depayloaded Opus frame

    def _ready(self) -> int:
        """How many packets lie in sequence from the next expected one."""
        count = 0
        while count < self._capacity and self._packets[(self._origin + count) % self._capacity] is not None:
            count += 1
        return count


def _opus_init(self: opus.OpusEncoder) -> None:
    _ORIGINAL_OPUS_INIT(self)
    self.codec.bit_rate = _settings["opus_bitrate"]


def _receiver_init(self, kind: str, transport) -> None:
    _ORIGINAL_RECEIVER_INIT(self, kind, transport)
    if kind == "audio":
        set_audio_receive_buffer(self, _settings["audio_prefetch"])


def set_audio_receive_buffer(receiver: rtcrtpreceiver.RTCRtpReceiver, packets: int) -> None:
    """Give one audio receiver a jitter buffer holding `packets` packets (0: none), before media flows."""
    attribute = "_RTCRtpReceiver__jitter_buffer"
    if not hasattr(receiver, attribute):
        raise RuntimeError("aiortc internals changed: RTCRtpReceiver has no audio jitter buffer to tune")
    buffer = InOrderAudioBuffer(capacity=16) if packets == 0 else JitterBuffer(capacity=16, prefetch=packets)
    setattr(receiver, attribute, buffer)


def apply_tuning(opus_bitrate: int, audio_prefetch: int = 0) -> None:
    """Set the reply Opus bitrate (bit/s) and the microphone jitter-buffer depth (packets; 0 = none) for new peers."""
    _settings["opus_bitrate"] = int(opus_bitrate)
    _settings["audio_prefetch"] = int(audio_prefetch)
    opus.OpusEncoder.__init__ = _opus_init  # type: ignore[method-assign]
    rtcrtpreceiver.RTCRtpReceiver.__init__ = _receiver_init  # type: ignore[method-assign]
