"""The baseline: the same engine objects run the way OpenAvatarChat's LAM pipeline runs them.

OpenAvatarChat (github.com/HumanAIGC-Engineering/OpenAvatarChat, config/chat_with_lam.yaml) chains handlers
through queues; each handler runs in its own thread that polls its input queue. Reproduced here, with the
source of each number (paths in that repository):

- polling: src/chat_engine/core/chat_session.py, `handler_pumper` (and `inputs_pumper` for the microphone)
  `get_nowait()` their queue and `time.sleep(0.03)` when it is empty, so a hand-off to an idle stage waits for
  that stage's next 30 ms tick;
- VAD: src/handlers/vad/silerovad/vad_handler_silero.py on 512-sample clips, speech when p > 0.5; with the LAM
  config's start_delay 2048, end_delay 5000 samples (312.5 ms, so 10 silent clips = 320 ms), buffer_look_back
  5000, speech_padding 512. After the end the VAD is off until the reply (whole-utterance hand-off);
- ASR: src/handlers/asr/sensevoice/asr_handler_sensevoice.py collects the speech and transcribes it only once
  `human_speech_end` arrives, after padding it to whole 1 s slices; no speculation;
- LLM: src/handlers/llm/openai_compatible/llm_handler_openai_compatible.py streams and hands on every delta;
- TTS: src/handlers/tts/edgetts/tts_handler_edgetts.py speaks only complete sentences (split after , . ~ ! ?);
  src/handlers/tts/bailian_tts/tts_handler_cosyvoice_bailian.py (the LAM config's TTS) passes audio on only once
  more than 24000 bytes (0.5 s of 16-bit 24 kHz) have accumulated, and the rest at the end of the reply;
- Audio2Expression: src/handlers/avatar/lam/avatar_handler_lam_audio2expression.py slices the audio into 1 s
  (`slice_size = audio_sample_rate * 1.0`) and outputs each slice's audio together with its expression frames,
  so the first reply audio leaves only with the first whole second (or the end of a shorter reply).

Splitting at commas and leaving out the client handler's own output queue both favour the baseline. The whole
baseline runs in-process on the runtime's event loop: no WebRTC, no Opus, no network, which favours it again;
its first audio is the moment Audio2Expression releases it, where ours is counted at the client.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .measure import TurnFailed
from .questions import Question, speech_of

POLL_S = 0.03  # chat_session.py handler_pumper / inputs_pumper: time.sleep(0.03) on an empty queue
RATE = 16000
PACKET = 320  # the peer's 20 ms microphone packets, at 16 kHz
CLIP = 512  # vad_handler_silero.py clip_size
SPEAKING_THRESHOLD = 0.5
START_DELAY = 2048  # samples of speech before a turn starts (config/chat_with_lam.yaml)
END_DELAY = 5000  # samples of silence that end the turn (config/chat_with_lam.yaml)
BUFFER_LOOK_BACK = 5000
SPEECH_PADDING = 512
ASR_SLICE = 16000  # asr_handler_sensevoice.py pads the utterance to whole 1 s slices
TTS_HANDOFF_S = 0.5  # tts_handler_cosyvoice_bailian.py: len(temp_bytes) > 24000 at 24 kHz 16-bit
A2E_SLICE_S = 1.0  # avatar_handler_lam_audio2expression.py: slice_size = round(audio_sample_rate * 1.0)
_SENTENCE_SPLIT = re.compile(r"(?<=[,.~!?，。！？])")  # tts_handler_edgetts.py
VOICED = 0.01  # same speech threshold as the peer's microphone (tests/support/peer.py)
REAL_TIME_LEAD_S = 0.6  # audio before this much ahead of the end of speech is fed at once (see _feed)
TRAILING_SILENCE_S = 1.5


@dataclass
class BaselineTurn:
    question: str
    total_ms: float  # end of user speech → first reply audio released (with its expression frames)
    stages_ms: dict[str, float] = field(default_factory=dict)
    first_slice_s: float = 0.0  # audio released with the first expression slice
    tts_audio_s: float = 0.0  # reply audio TTS had produced when the first slice was released


class _Hop:
    """One queue between two handlers, with the moment each item was put (to count polling waits)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, object]] = asyncio.Queue()

    def put(self, item: object) -> None:
        self.queue.put_nowait((time.perf_counter(), item))


class _Turn:
    """One user turn through VAD → ASR → LLM → TTS → A2E, each stage a polling consumer of its queue."""

    def __init__(self, engines, system_prompt: str) -> None:
        self.engines = engines
        self.system_prompt = system_prompt
        self.mic, self.vad_in, self.asr_in, self.llm_in, self.tts_in, self.a2e_in = (_Hop() for _ in range(6))
        self.marks: dict[str, float] = {}
        self.poll_wait = 0.0  # time the critical path's items sat in a queue waiting for a poll tick
        self.released = asyncio.Event()
        self.first_slice_s = 0.0
        self.tts_audio_s = 0.0
        self.failure: Exception | None = None
        # VAD state (vad_handler_silero.py HumanAudioVADContext)
        self._vad_stream = engines.vad.stream()
        self._status = "end"
        self._speech_len = self._silence_len = 0
        self._history: list[np.ndarray] = []
        self._clip_rest = np.zeros(0, dtype=np.float32)
        self._vad_on = True
        # ASR, TTS and A2E state
        self._utterance: list[np.ndarray] = []
        self._text = ""
        self._tts_buffer: list[np.ndarray] = []
        self._tts_rate = 0
        self._tts_audio_total = 0.0
        self._a2e_rest = np.zeros(0, dtype=np.float32)
        self._a2e_stream = engines.a2e.stream()

    # -- the pump every handler thread runs -------------------------------------------------------------
    async def pump(self, hop: _Hop, handle) -> None:
        while True:
            try:
                put_at, item = hop.queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(POLL_S)
                continue
            picked = time.perf_counter()
            try:
                await handle(item, put_at, picked)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # report it, and end the turn instead of hanging until the timeout
                self.failure = exc
                self.released.set()
                return

    def _waited(self, name: str, put_at: float, picked: float) -> None:
        """Count the poll wait of the first item that moves the turn on through hop `name`."""
        if f"poll:{name}" not in self.marks:
            self.marks[f"poll:{name}"] = picked
            self.poll_wait += picked - put_at

    # -- handlers ---------------------------------------------------------------------------------------
    async def on_mic(self, frame, put_at, picked) -> None:  # inputs_pumper: distribute to the VAD's queue
        if self._vad_on:  # the poll waits of mic audio are part of the VAD's number (end of speech → end seen)
            self.vad_in.put(frame)

    async def on_vad(self, frame, put_at, picked) -> None:
        if not self._vad_on:
            return
        audio = np.concatenate([self._clip_rest, frame])
        whole = len(audio) // CLIP * CLIP
        self._clip_rest = audio[whole:]
        for start in range(0, whole, CLIP):
            clip = audio[start : start + CLIP]
            ended = self._vad_clip(clip, self._vad_stream.probability(clip))
            if ended:
                self.marks["vad_end"] = time.perf_counter()
                self._vad_on = False  # OpenAvatarChat turns the VAD off after the end of speech
                return

    def _vad_clip(self, clip: np.ndarray, probability: float) -> bool:
        """vad_handler_silero.py update_status: returns True at the end of the user's speech."""
        self._history.append(clip)
        del self._history[: -(-(START_DELAY + BUFFER_LOOK_BACK) // CLIP)]
        if probability > SPEAKING_THRESHOLD:
            self._speech_len, self._silence_len = self._speech_len + CLIP, 0
        else:
            self._speech_len, self._silence_len = 0, self._silence_len + CLIP
        padding = np.zeros(SPEECH_PADDING, dtype=np.float32)
        if self._status == "end":
            if self._speech_len > 0:
                self._status = "pre_start"
        elif self._status == "pre_start":
            if self._speech_len >= START_DELAY:
                self._status = "start"
                self.asr_in.put((np.concatenate([padding, *self._history]), False))
            elif self._silence_len > 0:
                self._status = "end"
        elif self._silence_len >= END_DELAY:
            self._status = "end"
            self.asr_in.put((np.concatenate([padding, clip]), True))
            return True
        else:
            self.asr_in.put((clip, False))
        return False

    async def on_asr(self, item, put_at, picked) -> None:
        audio, speech_end = item
        self._utterance.append(audio)
        if not speech_end:
            return
        self._waited("asr", put_at, picked)
        utterance = np.concatenate(self._utterance)
        utterance = np.pad(utterance, (0, -len(utterance) % ASR_SLICE))  # whole 1 s slices, as the handler does
        self.marks["asr_start"] = time.perf_counter()
        heard = await self.engines.asr.transcribe(utterance)
        self.marks["asr_done"] = time.perf_counter()
        if not heard.text.strip():
            raise TurnFailed("the baseline's ASR heard nothing")
        self.llm_in.put(heard.text)

    async def on_llm(self, user_text, put_at, picked) -> None:
        self._waited("llm", put_at, picked)
        self.marks["llm_start"] = time.perf_counter()
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user_text}]
        async for delta in self.engines.llm.stream(messages):
            self.marks.setdefault("llm_first_token", time.perf_counter())
            self.tts_in.put(delta)
        self.tts_in.put(None)  # avatar_text_end

    async def on_tts(self, delta, put_at, picked) -> None:
        if delta is None:
            rest, self._text = self._text, ""
            if rest.strip():
                await self._speak(rest, put_at, picked)
            self._hand_on_audio(final=True)
            return
        self._text += delta
        *complete, self._text = _SENTENCE_SPLIT.split(self._text)
        for sentence in complete:
            if sentence.strip():
                await self._speak(sentence, put_at, picked)

    async def _speak(self, sentence: str, put_at: float, picked: float) -> None:
        self._waited("tts", put_at, picked)
        asked = time.perf_counter()
        self.marks.setdefault("tts_start", asked)
        async for chunk in self.engines.tts.synthesize(sentence):
            self.marks.setdefault("tts_first_audio", time.perf_counter())
            self._tts_rate = chunk.sample_rate
            self._tts_buffer.append(chunk.samples)
            self._tts_audio_total += chunk.duration_s
            if sum(map(len, self._tts_buffer)) > TTS_HANDOFF_S * chunk.sample_rate:
                self._hand_on_audio(final=False)

    def _hand_on_audio(self, final: bool) -> None:
        if self._tts_buffer:
            self.a2e_in.put((np.concatenate(self._tts_buffer), self._tts_rate, False))
            self._tts_buffer = []
        if final:
            self.a2e_in.put((np.zeros(0, dtype=np.float32), self._tts_rate, True))

    async def on_a2e(self, item, put_at, picked) -> None:
        from avatar_runtime.engines.base import SpeechChunk

        audio, rate, speech_end = item
        audio = np.concatenate([self._a2e_rest, audio])
        step = int(A2E_SLICE_S * rate) if rate else len(audio) + 1
        whole = len(audio) // step * step
        slices = [audio[i : i + step] for i in range(0, whole, step)]
        self._a2e_rest = audio[whole:]
        if speech_end and len(self._a2e_rest):
            slices.append(self._a2e_rest)
            self._a2e_rest = np.zeros(0, dtype=np.float32)
        for piece in slices:
            if not self.released.is_set():
                self._waited("a2e", put_at, picked)
                self.marks["a2e_start"] = time.perf_counter()
            await self._a2e_stream.push(SpeechChunk(piece, rate))
            if not self.released.is_set():
                self.marks["first_audio"] = time.perf_counter()
                self.first_slice_s = len(piece) / rate
                self.tts_audio_s = self._tts_audio_total
                self.released.set()


async def run_turn(engines, system_prompt: str, question: Question, timeout_s: float = 20.0) -> BaselineTurn:
    """Speak `question` into a fresh baseline pipeline; returns when the first reply audio is released."""
    turn = _Turn(engines, system_prompt)
    pumps = [
        asyncio.create_task(turn.pump(hop, handle))
        for hop, handle in [
            (turn.mic, turn.on_mic),
            (turn.vad_in, turn.on_vad),
            (turn.asr_in, turn.on_asr),
            (turn.llm_in, turn.on_llm),
            (turn.tts_in, turn.on_tts),
            (turn.a2e_in, turn.on_a2e),
        ]
    ]
    feeder = asyncio.create_task(_feed(turn, speech_of(question)))
    try:
        await asyncio.wait_for(turn.released.wait(), timeout_s)
    except TimeoutError as exc:
        raise TurnFailed(f"baseline: no reply audio for {question.text!r} within {timeout_s} s") from exc
    finally:
        for task in [*pumps, feeder]:
            task.cancel()
        await asyncio.gather(*pumps, feeder, return_exceptions=True)
    if turn.failure is not None:
        raise TurnFailed(f"baseline turn for {question.text!r} failed: {turn.failure}") from turn.failure
    return _result(question, turn)


async def measure_baseline(
    engines, system_prompt: str, questions: list[Question], before_turn=lambda _q: None, log=print
) -> list[BaselineTurn]:
    results = []
    for index, question in enumerate(questions, 1):
        before_turn(question)
        results.append(await run_turn(engines, system_prompt, question))
        stages = ", ".join(f"{k} {v:.0f}" for k, v in results[-1].stages_ms.items())
        log(f"  baseline {index:2d}/{len(questions)}: {results[-1].total_ms:6.0f} ms  ({stages})")
        await asyncio.sleep(0.2)
    return results


async def _feed(turn: _Turn, speech: np.ndarray) -> None:
    """The peer's microphone: 20 ms packets, each handed over when its slot starts (as the peer's PacketClock).

    Everything up to REAL_TIME_LEAD_S before the end of speech goes in at once: in a live stream that audio is
    processed long before the user stops, so only what follows the end of speech shapes the latency, and
    skipping the wait saves ~2 s a turn. Feeding stops once the VAD has seen the end (it is off after that).
    """
    audio = np.concatenate([speech, np.zeros(int(TRAILING_SILENCE_S * RATE), dtype=np.float32)])
    voiced = np.flatnonzero(np.abs(speech) > VOICED)
    if not len(voiced):
        raise TurnFailed("the spoken question is silent")
    last_packet = int(voiced[-1]) // PACKET
    packets = [audio[i : i + PACKET] for i in range(0, len(audio) - PACKET + 1, PACKET)]
    first_live = max(0, last_packet - int(REAL_TIME_LEAD_S * RATE) // PACKET)
    for packet in packets[:first_live]:
        turn.mic.put(packet)
    for _ in range(500):  # let the handlers work through that audio (at most 5 s) before the live part starts
        if turn.mic.queue.empty() and turn.vad_in.queue.empty():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    start = time.perf_counter()
    for index, packet in enumerate(packets[first_live:]):
        wait = start + index * PACKET / RATE - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        if first_live + index == last_packet:
            turn.marks["speech_end"] = time.perf_counter()
        turn.mic.put(packet)
        if "vad_end" in turn.marks:
            return


def _result(question: Question, turn: _Turn) -> BaselineTurn:
    m = turn.marks
    total = m["first_audio"] - m["speech_end"]
    stages = {
        "vad": m["vad_end"] - m["speech_end"],
        "asr": m["asr_done"] - m["asr_start"],
        "llm_first_token": m["llm_first_token"] - m["llm_start"],
        "tts_first_audio": m["tts_first_audio"] - m["tts_start"],
        "a2e_first_frame": m["first_audio"] - m["a2e_start"],
        "polling": turn.poll_wait,
    }
    # What is left is waiting for data: the first whole sentence, 0.5 s of TTS audio, a whole 1 s slice.
    stages["buffering"] = total - sum(stages.values())
    ms = {name: value * 1000 for name, value in stages.items()}
    return BaselineTurn(question.text, total * 1000, ms, turn.first_slice_s, turn.tts_audio_s)
