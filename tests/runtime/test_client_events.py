"""Browser → server events are validated; anything else is a clear error, never an exception."""

import json

import pytest
from avatar_runtime.pipeline.client_events import (
    BadClientMessage,
    Bye,
    InterruptRequest,
    TextMessage,
    parse_client_message,
)


def test_valid_events():
    assert parse_client_message('{"type": "text", "text": " hi "}') == TextMessage("hi")
    assert parse_client_message('{"type": "interrupt"}') == InterruptRequest()
    assert parse_client_message('{"type": "bye"}') == Bye()


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (b"\x00\x01", "binary"),
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "dance"}', "unknown event type"),
        ('{"type": "text", "text": ""}', "non-empty"),
        (json.dumps({"type": "text", "text": "x" * 3000}), "longer than"),
        ("x" * 10000, "larger than"),
    ],
)
def test_garbage_is_rejected_with_a_reason(message, needle):
    with pytest.raises(BadClientMessage, match=needle):
        parse_client_message(message)
