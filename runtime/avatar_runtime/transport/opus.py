"""Opus bitrate of the reply track.

aiortc hard-codes 96 kbit/s in its Opus encoder, several times what one voice needs; this wraps the encoder's
constructor once per process so every reply track uses the configured rate (speech is transparent near 24–32k).
"""

from __future__ import annotations

from aiortc.codecs import opus

_original_init = opus.OpusEncoder.__init__
_bitrate = {"bps": 96000}


def _init_with_bitrate(self: opus.OpusEncoder) -> None:
    _original_init(self)
    self.codec.bit_rate = _bitrate["bps"]


def set_opus_bitrate(bps: int) -> None:
    _bitrate["bps"] = int(bps)
    opus.OpusEncoder.__init__ = _init_with_bitrate  # type: ignore[method-assign]


def current_opus_bitrate() -> int:
    return _bitrate["bps"]
