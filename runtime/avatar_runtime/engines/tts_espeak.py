"""eSpeak NG text-to-speech, called in-process through libespeak-ng with ctypes.

eSpeak is tiny, fast (far faster than real time) and always available on Debian, and it reports the
timing of every phoneme it speaks, which the avatar can use for lip sync. It sounds robotic, so it is the
fallback voice; Piper is the natural-sounding one.

libespeak-ng keeps all of its state (voice, rate, the synth callback, the output buffer) in process-wide
globals, so every synthesis in the process goes through one lock, and each call re-applies its own voice
and rate under that lock (two `EspeakTTS` instances with different settings may share the process).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import threading
from collections.abc import AsyncIterator

import numpy as np

from .base import EngineUnavailable, PhonemeMark, SpeechChunk

# Constants from <espeak-ng/speak_lib.h> (1.51); the header is only needed to check them, not at run time.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # samples are handed to the callback, espeak_Synth returns when done
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000  # without it, a missing data directory makes espeak_Initialize call exit(1)
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
_BUFFER_MS = 200  # size of each callback buffer; only affects how often the callback runs


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """`espeak_EVENT`: the callback receives an array of these, ended by an espeakEVENT_LIST_TERMINATED one."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this espeak_Synth call's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

_LOCK = threading.Lock()  # guards the library's global state and the collector below
_lib: ctypes.CDLL | None = None
_sample_rate = 0
_callback_ref = None  # ctypes callbacks must stay referenced for as long as C may call them
_pcm_parts: list[np.ndarray] = []  # filled by the callback during one espeak_Synth call
_marks: list[PhonemeMark] = []


def _on_synth(wav, num_samples, events) -> int:
    """Called by libespeak-ng (inside espeak_Synth, same thread) with a buffer of samples and its events."""
    if num_samples > 0 and wav:
        # Copy: the buffer belongs to eSpeak and is reused for the next callback.
        _pcm_parts.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        event = events[i]
        if event.type == _EVENT_PHONEME:
            # `string` holds up to 8 UTF-8 bytes, NUL-terminated only when shorter than 8.
            raw = bytes(event.id.string).split(b"\0", 1)[0]
            phoneme = raw.decode("utf-8", errors="replace")
            if phoneme:
                _marks.append(PhonemeMark(start_ms=float(event.audio_position), phoneme=phoneme))
        i += 1
    return 0  # 0 = keep synthesising


def _load_library() -> ctypes.CDLL:
    """Load and initialise libespeak-ng once per process (caller holds _LOCK)."""
    global _lib, _sample_rate, _callback_ref
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise EngineUnavailable(
            f"espeak TTS: cannot load libespeak-ng ({exc}); install the Debian package espeak-ng"
        ) from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK_TYPE]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, None, options)
    if rate <= 0:
        raise EngineUnavailable(
            "espeak TTS: espeak_Initialize failed (voice data missing?); install the Debian package espeak-ng"
        )
    _callback_ref = _CALLBACK_TYPE(_on_synth)
    lib.espeak_SetSynthCallback(_callback_ref)
    _sample_rate = rate
    _lib = lib
    return lib


class EspeakTTS:
    """`TTSEngine` backed by libespeak-ng: one SpeechChunk per call, with phoneme timing.

    voice: an eSpeak voice name ("en-us", "en-gb", "de", ...); rate_wpm: speaking rate in words per minute
    (80..450); pitch: base pitch 0..100 (None = eSpeak's default, 50).
    """

    name = "espeak"

    def __init__(self, voice: str = "en-us", rate_wpm: int = 170, pitch: int | None = None) -> None:
        self.voice = voice
        self.rate_wpm = int(rate_wpm)
        self.pitch = 50 if pitch is None else int(pitch)
        with _LOCK:
            lib = _load_library()
            # Check the voice now so a typo fails at start-up rather than in the first conversation.
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise EngineUnavailable(f"espeak TTS: unknown voice {voice!r} (see `espeak-ng --voices`)")
        self.sample_rate = _sample_rate

    def _synth_blocking(self, text: str) -> tuple[np.ndarray, list[PhonemeMark]]:
        """Synthesise `text` completely; returns (float32 samples, phoneme marks). Runs in a worker thread."""
        with _LOCK:
            lib = _load_library()
            # Re-apply settings every call: another instance may have changed the global voice/rate/pitch.
            if lib.espeak_SetVoiceByName(self.voice.encode()) != _EE_OK:
                raise RuntimeError(f"espeak TTS: cannot select voice {self.voice!r}")
            lib.espeak_SetParameter(_PARAM_RATE, self.rate_wpm, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, self.pitch, 0)
            _pcm_parts.clear()
            _marks.clear()
            data = text.encode("utf-8")
            try:
                err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
                if err != _EE_OK:
                    raise RuntimeError(f"espeak TTS: espeak_Synth failed with error {err}")
                pcm = np.concatenate(_pcm_parts) if _pcm_parts else np.zeros(0, np.int16)
                marks = list(_marks)
            finally:
                _pcm_parts.clear()
                _marks.clear()
        samples = pcm.astype(np.float32) / 32768.0
        return samples, marks

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text`; yields a single chunk (eSpeak is much faster than real time, so no need to split)."""
        if not text.strip():
            return
        samples, marks = await asyncio.to_thread(self._synth_blocking, text)
        if len(samples) == 0:
            return
        yield SpeechChunk(samples=samples, sample_rate=self.sample_rate, text=text, phonemes=marks)
