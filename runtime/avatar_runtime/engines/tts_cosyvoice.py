"""CosyVoice text-to-speech, from Alibaba Cloud's DashScope API or from a self-hosted CosyVoice server.

Two transports, one engine (both stream 16-bit mono PCM that is handed on as it arrives):

- `mode="dashscope"`: DashScope's CosyVoice WebSocket API, the service OpenAvatarChat uses through the
  dashscope SDK. The protocol is implemented here with `websockets` (the SDK runs a thread per connection
  and is not asyncio): connect with `Authorization: Bearer <key>`; send `run-task` (model, voice, format
  pcm, sample rate); wait for `task-started`; send the sentence in `continue-task` and at once `finish-task`;
  then binary messages carry the audio, `result-generated` events mark sentences, `task-finished` ends
  the task and `task-failed` (with `error_code`/`error_message`) reports a failure. One connection per
  sentence, closed on early exit (barge-in), which stops the synthesis.
- `mode="server"`: CosyVoice's own FastAPI server (runtime/python/fastapi/server.py): POST form fields to
  `/inference_sft` (`tts_text`, `spk_id`) or, with a reference recording, to `/inference_zero_shot`
  (`tts_text`, `prompt_text`, file `prompt_wav`) and read the streamed raw int16 PCM. The server does not
  say its sample rate: 22050 Hz for CosyVoice-300M models, 24000 Hz for CosyVoice2, so set `sample_rate`.

Every failure (no key, DNS, refused, timeout, HTTP/WebSocket error, task-failed, connection lost before the
end) raises `TTSUnavailable`, so `FallbackTTS` can switch to the embedded voice. The API key is sent only in
the WebSocket handshake and never logged: it is redacted from this module's WebSocket debug log (websockets
logs request headers at DEBUG) and from every error message.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ..audio_codec import Int16Stream
from .base import EngineUnavailable, SpeechChunk
from .tts_fallback import TTSUnavailable, deadline_stream

DASHSCOPE_URL = "wss://dashscope.aliyuncs.com/api-ws/v1/inference"
DEFAULT_MODEL = "cosyvoice-v1"
DEFAULT_DASHSCOPE_VOICE = "longxiaochun"  # OpenAvatarChat's bailian CosyVoice config
DEFAULT_SPEAKER = "中文女"  # a built-in speaker of CosyVoice-300M-SFT, for the server's /inference_sft
DASHSCOPE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)  # the PCM rates the API offers
_SERVER_ENDPOINTS = ("/inference_sft", "/inference_zero_shot")


class _RedactingLog(logging.LoggerAdapter):
    """The WebSocket client's logger, with the API key masked (its DEBUG log prints the request headers)."""

    def __init__(self, logger: logging.Logger, secret: str) -> None:
        super().__init__(logger, {})
        self._secret = secret

    def _mask(self, value: Any) -> Any:
        return value.replace(self._secret, "***") if isinstance(value, str) and self._secret in value else value

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            super().log(level, self._mask(msg), *(self._mask(a) for a in args), **kwargs)


class CosyVoiceTTS:
    """`TTSEngine` for CosyVoice (see module doc); yields each received piece of audio as a SpeechChunk.

    mode: "dashscope" or "server". url: DashScope's WebSocket URL (default `DASHSCOPE_URL`) or the server's
    base URL (http://host:50000) or full endpoint URL. api_key: DashScope key (default: env
    DASHSCOPE_API_KEY). model: DashScope model (cosyvoice-v1, cosyvoice-v2, ...). voice: DashScope voice
    (default longxiaochun) or the server's speaker id (default 中文女). sample_rate: PCM rate asked from
    DashScope, or the rate the server's model produces. prompt_wav / prompt_text: server mode only; a
    reference recording and its transcript for zero-shot voice cloning (`/inference_zero_shot`).
    workspace: DashScope workspace id (header X-DashScope-WorkSpace), when the key needs one.
    connect_timeout_s / first_audio_timeout_s / stall_timeout_s: as for `EdgeTTS`.
    """

    name = "cosyvoice"

    def __init__(
        self,
        mode: Literal["dashscope", "server"] = "dashscope",
        *,
        url: str | None = None,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        voice: str | None = None,
        sample_rate: int = 22050,
        prompt_wav: str | Path | None = None,
        prompt_text: str | None = None,
        workspace: str | None = None,
        connect_timeout_s: float = 5.0,
        first_audio_timeout_s: float = 8.0,
        stall_timeout_s: float = 5.0,
    ) -> None:
        self.mode = mode
        self.model = model
        self.sample_rate = int(sample_rate)
        self.connect_timeout_s = float(connect_timeout_s)
        self.first_audio_timeout_s = float(first_audio_timeout_s)
        self.stall_timeout_s = float(stall_timeout_s)
        self.workspace = workspace
        self._prompt: tuple[bytes, str] | None = None
        if mode == "dashscope":
            self.url = url or DASHSCOPE_URL
            self.voice = voice or DEFAULT_DASHSCOPE_VOICE
            key = api_key or os.environ.get("DASHSCOPE_API_KEY")
            if not key:
                raise EngineUnavailable("cosyvoice TTS: no DashScope API key (set DASHSCOPE_API_KEY)")
            if self.sample_rate not in DASHSCOPE_RATES:
                raise ValueError(f"cosyvoice TTS: DashScope offers PCM at {DASHSCOPE_RATES} Hz, not {sample_rate}")
            self._api_key: str | None = key
            self._ws_log = _RedactingLog(logging.getLogger(f"{__name__}.websocket"), key)
            self._errors = _websocket_errors()
        elif mode == "server":
            if not url:
                raise EngineUnavailable("cosyvoice TTS: server mode needs the CosyVoice server's URL")
            self._api_key = None
            self.voice = voice or DEFAULT_SPEAKER
            if prompt_wav is not None:
                if not prompt_text:
                    raise ValueError("cosyvoice TTS: prompt_wav needs prompt_text (what the recording says)")
                path = Path(prompt_wav)
                if not path.is_file():
                    raise EngineUnavailable(f"cosyvoice TTS: reference recording not found: {path}")
                self._prompt = (path.read_bytes(), prompt_text)
            self.url = _server_endpoint(url, zero_shot=self._prompt is not None)
            self._errors = _http_errors()
        else:
            raise ValueError(f"cosyvoice TTS: unknown mode {mode!r} (dashscope or server)")

    def __repr__(self) -> str:  # never the key
        return f"CosyVoiceTTS(mode={self.mode!r}, url={self.url!r}, voice={self.voice!r})"

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text`, yielding audio as it arrives."""
        if not text.strip():
            return
        transport = self._dashscope(text) if self.mode == "dashscope" else self._server(text)
        pcm = deadline_stream(
            transport, what=f"cosyvoice TTS ({self.mode})", first_timeout_s=self.first_audio_timeout_s,
            stall_timeout_s=self.stall_timeout_s, errors=self._errors,
        )  # fmt: skip
        decoder = Int16Stream()
        label = text  # the first chunk carries the text, later ones ""
        try:
            async with aclosing(pcm):
                async for data in pcm:
                    samples = decoder.feed(data)
                    if samples.size:
                        yield SpeechChunk(samples, self.sample_rate, label)
                        label = ""
        except TTSUnavailable as exc:
            if self._api_key and self._api_key in str(exc):  # no server should echo it, but never pass it on
                raise TTSUnavailable(str(exc).replace(self._api_key, "***")) from None
            raise

    # --- DashScope ------------------------------------------------------------------------------------------

    def _run_task(self, task_id: str) -> str:
        parameters = {"text_type": "PlainText", "voice": self.voice, "format": "pcm", "sample_rate": self.sample_rate}
        payload = {"task_group": "audio", "task": "tts", "function": "SpeechSynthesizer", "model": self.model}
        return _command("run-task", task_id, {**payload, "parameters": parameters, "input": {}})

    async def _dashscope(self, text: str) -> AsyncIterator[bytes]:
        """One synthesis task on its own connection: the PCM bytes as they arrive."""
        from websockets.asyncio.client import connect

        headers = {"Authorization": f"Bearer {self._api_key}"}
        if self.workspace:
            headers["X-DashScope-WorkSpace"] = self.workspace
        task_id = uuid.uuid4().hex
        async with connect(
            self.url, additional_headers=headers, open_timeout=self.connect_timeout_s, close_timeout=0.5,
            max_size=16 * 2**20, logger=self._ws_log,
        ) as ws:  # fmt: skip
            await ws.send(self._run_task(task_id))
            started = False
            async for message in ws:
                if isinstance(message, bytes):
                    yield message
                    continue
                event, header = _event(message)
                if event == "task-started" and not started:
                    # The whole sentence at once, then finish-task so the server flushes its last audio.
                    started = True
                    await ws.send(_command("continue-task", task_id, {"input": {"text": text}}))
                    await ws.send(_command("finish-task", task_id, {"input": {}}))
                elif event == "task-finished":
                    return
                elif event == "task-failed":
                    code, detail = header.get("error_code", "?"), header.get("error_message", "")
                    raise TTSUnavailable(f"cosyvoice TTS (dashscope): task-failed {code}: {detail}")
            raise TTSUnavailable(f"cosyvoice TTS (dashscope): connection closed ({ws.close_code}) before task-finished")

    # --- self-hosted server ---------------------------------------------------------------------------------

    async def _server(self, text: str) -> AsyncIterator[bytes]:
        """POST the sentence to the CosyVoice server and stream back its raw PCM."""
        import httpx

        # No read timeout here: the deadlines in `deadline_stream` decide (first audio, then stalls).
        timeout = httpx.Timeout(connect=self.connect_timeout_s, read=None, write=self.connect_timeout_s, pool=None)
        files = None
        if self._prompt is not None:
            wav, prompt_text = self._prompt
            data = {"tts_text": text, "prompt_text": prompt_text}
            files = {"prompt_wav": ("prompt.wav", wav, "audio/wav")}
        else:
            data = {"tts_text": text, "spk_id": self.voice}
        # trust_env=False: the server is on the local network; a proxy set for internet access must not take it.
        async with (
            httpx.AsyncClient(timeout=timeout, trust_env=False) as client,
            client.stream("POST", self.url, data=data, files=files) as response,
        ):
            if response.status_code != 200:
                body = (await response.aread()).decode("utf-8", "replace").strip()
                raise TTSUnavailable(
                    f"cosyvoice TTS (server): HTTP {response.status_code} from {self.url}: {body[:200]}"
                )
            async for data_bytes in response.aiter_bytes():
                if data_bytes:
                    yield data_bytes


def _command(action: str, task_id: str, payload: dict[str, Any]) -> str:
    """A client message of DashScope's duplex task protocol."""
    return json.dumps({"header": {"action": action, "task_id": task_id, "streaming": "duplex"}, "payload": payload})


def _event(message: str) -> tuple[str, dict[str, Any]]:
    """(event name, header) of a DashScope JSON message; anything else is a protocol error."""
    try:
        header = json.loads(message)["header"]
        return str(header["event"]), header
    except (ValueError, KeyError, TypeError) as exc:
        raise TTSUnavailable(f"cosyvoice TTS (dashscope): unexpected message {message[:120]!r}") from exc


def _server_endpoint(url: str, *, zero_shot: bool) -> str:
    """The server URL as given when it names an endpoint, else base URL + the endpoint the voice needs."""
    path = urlsplit(url).path.rstrip("/")
    if path.endswith(_SERVER_ENDPOINTS):
        return url
    return url.rstrip("/") + ("/inference_zero_shot" if zero_shot else "/inference_sft")


def _websocket_errors() -> tuple[type[BaseException], ...]:
    from websockets.exceptions import WebSocketException

    # OSError: refused/reset connections and DNS failures (socket.gaierror).
    return (WebSocketException, OSError)


def _http_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (httpx.HTTPError, OSError)
