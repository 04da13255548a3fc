"""Incremental decoders for audio that arrives over the network in arbitrary pieces.

Online voices stream their audio in network-sized messages that do not line up with codec frames (an MP3
frame, or even one 16-bit sample, may be split across two messages). These decoders keep the incomplete
tail between calls, so each piece can be decoded the moment it arrives and the avatar starts speaking
before the sentence has finished downloading.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EMPTY = np.zeros(0, dtype=np.float32)


class Int16Stream:
    """Raw little-endian int16 mono PCM → float32 in -1..1, carrying an odd trailing byte to the next piece."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> np.ndarray:
        data = self._carry + bytes(data)
        whole = len(data) & ~1
        self._carry = data[whole:]
        if not whole:
            return _EMPTY
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0

    @property
    def pending_bytes(self) -> int:
        """Bytes held back (0 or 1); a stream that ends with one left over was cut mid-sample."""
        return len(self._carry)


class Mp3Stream:
    """MP3 bytes → float32 mono PCM with PyAV's MP3 decoder (FFmpeg), piece by piece.

    `feed` returns whatever whole MP3 frames the bytes so far complete (the parser holds back a partial
    frame); `flush` returns the rest at the end of the stream. `sample_rate` is known after the first frame.
    Decoding is cheap (a few ms per second of audio), so callers may run it on the event loop.
    """

    def __init__(self) -> None:
        import av  # PyAV ships with aiortc; imported here so modules that never decode MP3 do not load FFmpeg

        self._av: Any = av
        self._codec: Any = av.CodecContext.create("mp3", "r")
        self.sample_rate: int | None = None

    def feed(self, data: bytes) -> np.ndarray:
        return self._decode(bytes(data))

    def flush(self) -> np.ndarray:
        return self._decode(None)

    def _decode(self, data: bytes | None) -> np.ndarray:
        pieces: list[np.ndarray] = []
        try:
            packets = list(self._codec.parse(data))  # parse(None) flushes the parser's partial frame
            frame_sources = [self._codec.decode(p) for p in packets]
            if data is None:
                frame_sources.append(self._codec.decode(None))  # drain the decoder's delayed frames
            for frames in frame_sources:
                for frame in frames:
                    self.sample_rate = int(frame.sample_rate)
                    channels, planar = frame.layout.nb_channels, frame.format.is_planar
                    pieces.append(_to_mono_float(frame.to_ndarray(), channels, planar))
        except self._av.error.FFmpegError as exc:
            raise ValueError(f"undecodable MP3 data: {exc}") from exc
        if not pieces:
            return _EMPTY
        return np.concatenate(pieces)


def _to_mono_float(array: np.ndarray, channels: int, planar: bool) -> np.ndarray:
    """A decoded frame (planar: channels × samples; packed: 1 × samples·channels) → float32 mono."""
    if array.dtype == np.int16:
        array = array.astype(np.float32) / 32768.0
    elif array.dtype == np.int32:
        array = array.astype(np.float32) / 2147483648.0
    else:
        array = array.astype(np.float32, copy=False)
    if not planar:
        array = array.reshape(-1, channels).T
    return array[0] if channels == 1 else array.mean(axis=0)
