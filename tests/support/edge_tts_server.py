"""A stand-in for Microsoft Edge's read-aloud WebSocket service, on 127.0.0.1, for testing `EdgeTTS`.

It speaks the protocol as the `edge-tts` client expects it: the client connects to
`/consumer/speech/synthesize/readaloud/edge/v1?TrustedClientToken=...&ConnectionId=...&Sec-MS-GEC=...`,
sends a `Path:speech.config` text message (asking for audio-24khz-48kbitrate-mono-mp3) and a `Path:ssml`
one (voice, prosody and the text); the service answers `turn.start`, an `audio.metadata` sentence
boundary, binary `Path:audio` messages (2-byte big-endian header length, headers, MP3 bytes), an empty
closing audio message and `turn.end`. The MP3 is real speech (espeak-ng, encoded with LAME through PyAV),
cut into network-sized messages that do not line up with MP3 frames, as the real service's do.

`behaviour` scripts a failure: "stall" (accept the request, never answer), "stall_mid" (stop sending after
`cut_after` messages, keep the socket open), "close" (close right after the request), "close_mid" (close
after `cut_after` messages, without turn.end) or "reject" (refuse the WebSocket upgrade with HTTP 503).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.ws_standin import WebSocketStandIn

PATH = "/consumer/speech/synthesize/readaloud/edge/v1"
TOKEN = "6A5AA1D4EAFF4E9FB37E23D68491D6F4"  # edge-tts's TrustedClientToken (checked, as the real service does)
MP3_FORMAT = "audio-24khz-48kbitrate-mono-mp3"
_LOG = logging.getLogger("tests.support.edge_tts_server")


def encode_mp3(samples: np.ndarray, sample_rate: int = 24000, bit_rate: int = 48000) -> bytes:
    """Mono float32 audio → MP3 bytes (LAME, constant bit rate), like the service's output format."""
    codec = av.CodecContext.create("libmp3lame", "w")
    codec.sample_rate, codec.bit_rate, codec.layout, codec.format = sample_rate, bit_rate, "mono", "s16p"
    codec.open()
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    out = bytearray()
    for start in range(0, len(pcm), codec.frame_size):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + codec.frame_size], format="s16p", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, start
        for packet in codec.encode(frame):
            out += bytes(packet)
    for packet in codec.encode(None):
        out += bytes(packet)
    return bytes(out)


def _text_message(request_id: str, path: str, body: str) -> str:
    return f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8\r\nPath:{path}\r\n\r\n{body}"


def _audio_message(request_id: str, data: bytes) -> bytes:
    content = "Content-Type:audio/mpeg\r\n" if data else ""  # the closing audio message has neither
    headers = f"X-RequestId:{request_id}\r\n{content}X-StreamId:{uuid.uuid4().hex}\r\nPath:audio\r\n".encode()
    return len(headers).to_bytes(2, "big") + headers + data


def _parse(message: str) -> tuple[dict[str, str], str]:
    head, _, body = message.partition("\r\n\r\n")
    headers = dict(line.split(":", 1) for line in head.split("\r\n") if ":" in line)
    return headers, body


@dataclass
class EdgeRequest:
    """What one client connection sent: query string, speech.config body, and the SSML's voice/text."""

    query: dict[str, str]
    config: dict = field(default_factory=dict)
    ssml: str = ""
    voice: str = ""
    prosody: dict[str, str] = field(default_factory=dict)
    text: str = ""
    audio_messages_sent: int = 0
    last_audio_sent_at: float | None = None  # time.perf_counter() when the last MP3 message left
    turn_ended: bool = False
    client_left_early: bool = False  # the client closed the connection before the turn ended


class EdgeStandIn(WebSocketStandIn):
    """Async context manager serving the stand-in in the running event loop; see the module doc."""

    _log = _LOG

    def __init__(
        self,
        mp3: bytes,
        *,
        message_bytes: int = 1500,
        message_delay_s: float = 0.0,
        behaviour: str = "ok",
        cut_after: int = 3,
    ) -> None:
        self.mp3 = mp3
        self.message_bytes = message_bytes
        self.message_delay_s = message_delay_s
        self.behaviour = behaviour
        self.cut_after = cut_after
        self.requests: list[EdgeRequest] = []

    @property
    def wss_url(self) -> str:
        """What edge-tts's WSS_URL constant should be to reach this server."""
        return f"ws://127.0.0.1:{self.port}{PATH}?TrustedClientToken={TOKEN}"

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if self.behaviour == "reject":
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        wanted = {"TrustedClientToken", "ConnectionId", "Sec-MS-GEC", "Sec-MS-GEC-Version"}
        if url.path != PATH or query.get("TrustedClientToken") != TOKEN or not wanted <= query.keys():
            return connection.respond(HTTPStatus.FORBIDDEN, f"bad request path {request.path}\n")
        self.requests.append(EdgeRequest(query=query))
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = self.requests[-1]
        try:
            await self._answer(ws, request)
        except ConnectionClosed:
            request.client_left_early = not request.turn_ended

    async def _answer(self, ws: ServerConnection, request: EdgeRequest) -> None:
        config_headers, config_body = _parse(await ws.recv())
        assert config_headers.get("Path") == "speech.config", config_headers
        request.config = json.loads(config_body)
        ssml_headers, request.ssml = _parse(await ws.recv())
        assert ssml_headers.get("Path") == "ssml" and ssml_headers.get("Content-Type") == "application/ssml+xml"
        root = ET.fromstring(request.ssml)
        voice = root.find("{*}voice")
        prosody = voice.find("{*}prosody")
        request.voice, request.prosody = voice.get("name", ""), dict(prosody.attrib)
        request.text = "".join(prosody.itertext())
        request_id = ssml_headers["X-RequestId"]
        output_format = request.config["context"]["synthesis"]["audio"]["outputFormat"]
        if self.behaviour == "close" or output_format != MP3_FORMAT:
            await ws.close()
            return
        if self.behaviour == "stall":
            await ws.wait_closed()
            return
        await ws.send(_text_message(request_id, "turn.start", '{"context":{"serviceTag":"stand-in"}}'))
        text = {"Text": request.text, "Length": len(request.text), "BoundaryType": "SentenceBoundary"}
        boundary = {"Type": "SentenceBoundary", "Data": {"Offset": 1_000_000, "Duration": 10_000_000, "text": text}}
        await ws.send(_text_message(request_id, "audio.metadata", json.dumps({"Metadata": [boundary]})))
        for start in range(0, len(self.mp3), self.message_bytes):
            if request.audio_messages_sent == self.cut_after and self.behaviour in ("stall_mid", "close_mid"):
                if self.behaviour == "close_mid":
                    await ws.close()
                else:
                    await ws.wait_closed()
                return
            if start and self.message_delay_s:
                await asyncio.sleep(self.message_delay_s)
            await ws.send(_audio_message(request_id, self.mp3[start : start + self.message_bytes]))
            request.audio_messages_sent += 1
            request.last_audio_sent_at = time.perf_counter()
        await ws.send(_audio_message(request_id, b""))
        await ws.send(_text_message(request_id, "turn.end", "{}"))
        request.turn_ended = True
        await ws.wait_closed()  # the client hangs up after turn.end
