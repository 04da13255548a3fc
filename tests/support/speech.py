"""Test helpers for real speech audio: speak text with the espeak-ng CLI, and write WAV files.

Tests use real, deterministic speech instead of synthetic tones so VAD/ASR/expression stages see what they
will see in production. The CLI (not the in-process engine) is used on purpose: it is an independent
source of audio, so a bug in `EspeakTTS` cannot hide a bug in the stage under test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from avatar_runtime.audio import float_to_int16, int16_to_float, resample


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file; returns (mono float32 samples, sample rate). Stereo is averaged."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported, got {8 * wav.getsampwidth()}-bit")
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    samples = int16_to_float(pcm)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return samples, rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono float32 audio (-1..1, clipped) as a 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(float_to_int16(np.asarray(samples, dtype=np.float32)).tobytes())


def speak(text: str, sample_rate: int = 16000, voice: str = "en-us", rate_wpm: int = 150) -> np.ndarray:
    """Speak `text` with the espeak-ng CLI; returns mono float32 audio at `sample_rate`."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng CLI not found; install the Debian package espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        # "--" so text starting with "-" is not taken for an option.
        subprocess.run([exe, "-v", voice, "-s", str(rate_wpm), "-w", str(out), "--", text], check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        samples, rate = read_wav(out)
    return resample(samples, rate, sample_rate)
