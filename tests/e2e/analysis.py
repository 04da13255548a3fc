"""Measurements on what the test peer received: loudness per expression frame, frame rate, silence."""

from __future__ import annotations

import numpy as np
from avatar_runtime.protocol import INDEX

from tests.support.peer import RATE, Received

SILENCE = 1e-3


def reply_origin(received: Received) -> int:
    """Index (48 kHz samples) of pts 0 in the received audio: the first reply sample is where the first reply
    frame's pts is (0 without ambient frames; with them the timeline started at the first ambient frame)."""
    audio = received.audio_samples()
    loud = np.flatnonzero(np.abs(audio) > SILENCE)
    if not len(loud):
        raise AssertionError("no reply audio was received")
    first_reply_pts = min((frame.pts_ms for _, frame in received.frames), default=0)
    return int(loud[0]) - int(first_reply_pts * RATE / 1000)


def loudness_and_jaw(received: Received, turn: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of `turn`: RMS of the received audio during that frame's 1/30 s, and its jawOpen weight."""
    audio = received.audio_samples()
    origin = reply_origin(received)
    rms, jaw = [], []
    for _, frame in received.frames:
        if frame.turn != turn:
            continue
        start = origin + int(frame.pts_ms * RATE / 1000)
        window = audio[start : start + RATE // 30]
        if len(window) < RATE // 30:
            continue
        rms.append(float(np.sqrt(np.mean(window**2))))
        jaw.append(float(frame.weights[INDEX["jawOpen"]]))
    return np.array(rms), np.array(jaw)


def frame_rate(received: Received, turn: int) -> float:
    """Arrival rate of the turn's frames (frames per second of wall clock)."""
    times = [t for t, frame in received.frames if frame.turn == turn]
    return (len(times) - 1) / (times[-1] - times[0])


def last_loud_time(received: Received) -> float:
    """Arrival time of the last received audio piece that was not silent."""
    for piece, at in zip(reversed(received.audio), reversed(received.audio_times), strict=True):
        if np.abs(piece).max() > SILENCE:
            return at
    raise AssertionError("no reply audio was received")
