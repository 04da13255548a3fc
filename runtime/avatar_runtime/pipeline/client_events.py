"""Browser → server data-channel events (DESIGN §4), parsed and validated into typed objects."""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_MESSAGE_BYTES = 8192
MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class TextMessage:
    text: str


@dataclass(frozen=True)
class InterruptRequest:
    pass


@dataclass(frozen=True)
class Bye:
    pass


ClientEvent = TextMessage | InterruptRequest | Bye


class BadClientMessage(ValueError):
    """Not a valid client event; the message is a sentence the browser can show."""


def parse_client_message(message: str | bytes) -> ClientEvent:
    if isinstance(message, bytes):
        raise BadClientMessage("binary messages are not accepted from the browser; send JSON text events")
    if len(message.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise BadClientMessage(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        event = json.loads(message)
    except (json.JSONDecodeError, RecursionError):  # "[[[[…" within the size limit nests past Python's stack
        raise BadClientMessage("message is not valid JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise BadClientMessage('message must be a JSON object with a string "type"')
    kind = event["type"]
    if kind == "text":
        text = event.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadClientMessage('"text" event needs a non-empty string field "text"')
        if len(text) > MAX_TEXT_CHARS:
            raise BadClientMessage(f'"text" longer than {MAX_TEXT_CHARS} characters')
        return TextMessage(text=text.strip())
    if kind == "interrupt":
        return InterruptRequest()
    if kind == "bye":
        return Bye()
    raise BadClientMessage(f'unknown event type "{kind[:40]}"; expected text, interrupt or bye')
