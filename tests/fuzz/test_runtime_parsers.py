"""Property-based fuzzing of every parser the runtime owns: whatever a client sends, the parser answers with its
one documented error type (which becomes a clear 4xx or `error` event), never with a crash.

Parsers: the data-channel events, the binary expression frames, the `POST /api/sessions` body with its SDP, the
config file, session tokens and the client-address rules, the LLM-text sentence splitter."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import yaml
from avatar_runtime.access import AccessDenied, SessionTokens, client_address, mint_session_token, parse_networks
from avatar_runtime.app import ApiError, offer_from_body
from avatar_runtime.config import DEFAULT_TRUSTED_PROXIES, ConfigError, load_config
from avatar_runtime.pipeline.client_events import (
    BadClientMessage,
    Bye,
    InterruptRequest,
    TextMessage,
    parse_client_message,
)
from avatar_runtime.pipeline.sentences import SentenceChunker
from avatar_runtime.protocol import NUM_BLENDSHAPES, decode_frame, encode_frame
from hypothesis import example, given
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


# -- data channel: browser → server events -------------------------------------------------------------------
@given(st.one_of(st.text(max_size=600), st.binary(max_size=600), JSON.map(json.dumps)))
@example("[" * 5000)  # found by this test: json.loads raised RecursionError past the handler (fixed)
@example('{"type": "text", "text": ' + '"x"' * 3 + "}")
def test_client_messages_parse_or_are_refused_cleanly(message):
    try:
        event = parse_client_message(message)
    except BadClientMessage as refused:
        assert str(refused)  # a sentence for the browser
        return
    assert isinstance(event, TextMessage | InterruptRequest | Bye)
    if isinstance(event, TextMessage):
        assert event.text and event.text == event.text.strip()


@given(st.fixed_dictionaries({"type": st.sampled_from(["text", "interrupt", "bye", "dance"])}, optional={"text": JSON}))
def test_client_events_of_known_shape(event):
    try:
        parsed = parse_client_message(json.dumps(event))
    except BadClientMessage:
        assert event["type"] == "dance" or (event["type"] == "text" and not _usable_text(event.get("text")))
        return
    assert (
        type(parsed).__name__ == {"text": "TextMessage", "interrupt": "InterruptRequest", "bye": "Bye"}[event["type"]]
    )


def _usable_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 2000


# -- binary expression frames ----------------------------------------------------------------------------------
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_value_error(data):
    try:
        frame = decode_frame(data)
    except ValueError:
        return
    assert frame.weights.shape[0] * 2 + 12 == len(data)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=NUM_BLENDSHAPES, max_size=NUM_BLENDSHAPES),
    st.booleans(),
)
def test_frames_round_trip(turn, pts_ms, weights, last):
    frame = decode_frame(encode_frame(turn, pts_ms, np.array(weights, dtype=np.float32), last))
    assert (frame.turn, frame.pts_ms, frame.last) == (turn, pts_ms, last)
    expected = np.clip(np.array(weights, dtype=np.float32), 0, 1)
    assert np.allclose(frame.weights, expected, atol=1e-3)  # float16 on the wire


# -- POST /api/sessions body and SDP ---------------------------------------------------------------------------
SDP_LINE = st.one_of(
    st.sampled_from(["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1", "a=fingerprint:sha-256 00",
                     "m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
                     "c=IN IP4 0.0.0.0", "a=rtpmap:111 opus/48000/2", "a=mid:0", "a=ice-ufrag:abcd",
                     "a=candidate:1 1 udp 1 127.0.0.1 9 typ host", "a=sctp-port:5000", "m=video 9 x 96", "b=AS:30"]),
    st.text(alphabet=string.printable, max_size=60),
)  # fmt: skip


@given(st.lists(SDP_LINE, max_size=40), st.sampled_from(["\r\n", "\n", "\r"]), st.sampled_from(["offer", "answer", 1]))
def test_sdp_offers_parse_or_are_refused_with_400(lines, newline, kind):
    body = json.dumps({"sdp": "v=0" + newline + newline.join(lines), "type": kind}).encode()
    try:
        offer_from_body(body)
    except ApiError as refused:
        assert refused.status == 400 and refused.code in ("bad_request", "bad_sdp")


@given(st.one_of(st.binary(max_size=400), JSON.map(lambda v: json.dumps(v).encode())))
@example(b"[" * 50_000)
def test_any_body_is_an_offer_or_a_400(body):
    try:
        offer_from_body(body)
    except ApiError as refused:
        assert refused.status == 400 and refused.code in ("bad_json", "bad_request", "bad_sdp")


def test_an_offer_with_too_many_lines_is_refused_before_parsing():
    sdp = "v=0\r\nm=audio 9 x 111\r\nm=application 9 x\r\n" + "a=x\r\n" * 500
    with pytest.raises(ApiError, match="lines"):
        offer_from_body(json.dumps({"sdp": sdp, "type": "offer"}).encode())


# -- config file -------------------------------------------------------------------------------------------------
SECTIONS = ["server", "vad", "asr", "llm", "tts", "a2e", "turn", "tls", "avatar", "model_dir", "models", "hub", "x"]


@given(
    st.dictionaries(st.sampled_from(SECTIONS), st.one_of(JSON, st.dictionaries(st.text(max_size=20), JSON, max_size=4)))
)
def test_any_config_mapping_loads_or_is_one_config_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        load_config(path, env={})
    except ConfigError as refused:
        assert "\n" not in str(refused)  # one line naming the key


@given(st.text(max_size=300))
@example("[" * 5000)  # found by this test: PyYAML's parser recursed past the stack (fixed: one ConfigError)
@example("a: &x [*x]")
def test_any_config_text_loads_or_is_one_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="replace")
    try:
        load_config(path, env={})
    except ConfigError:
        pass


# -- access: tokens and addresses ----------------------------------------------------------------------------------
SECRET = "k" * 32


@given(st.text(max_size=400) | st.text(alphabet="v1.0123456789abcdef-_", max_size=120))
def test_any_presented_token_is_accepted_only_if_minted(token):
    tokens = SessionTokens(SECRET, max_ttl_s=300)
    try:
        tokens.check(token)
    except AccessDenied as refused:
        assert refused.status in (401, 503)
        return
    pytest.fail(f"a token nobody minted was accepted: {token!r}")


@given(st.integers(1, 300))
def test_minted_tokens_are_accepted_once(ttl):
    tokens = SessionTokens(SECRET, max_ttl_s=300)
    token = mint_session_token(SECRET, ttl)
    tokens.check(token)
    with pytest.raises(AccessDenied):
        tokens.check(token)


TRUSTED = parse_networks(DEFAULT_TRUSTED_PROXIES)
ADDRESS = st.one_of(st.ip_addresses().map(str), st.text(max_size=30))


@given(st.one_of(st.none(), ADDRESS), st.one_of(st.none(), st.lists(ADDRESS, max_size=5).map(", ".join), st.text()))
def test_client_address_never_fails_and_an_untrusted_peer_names_itself(peer, forwarded):
    client = client_address(peer, forwarded, TRUSTED)
    assert isinstance(client, str) and client
    if peer and not _trusted(peer):  # (no peer at all is "unknown")
        assert client == peer


def _trusted(address: str) -> bool:
    try:
        import ipaddress

        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in TRUSTED)


# -- LLM text → TTS pieces -----------------------------------------------------------------------------------------
WORDS = st.sampled_from(
    ["Hello", "world", "in", "the", "3.14", "e.g.", "Dr.", "and", "it", "is", "a", "time", "of", "，", "。", "你好",
     "1,000", "**bold**", "-", "\n", "...", "!", "?", ",", ":", "with"]
)  # fmt: skip


@given(st.lists(WORDS, max_size=60), st.lists(st.integers(1, 12), min_size=1, max_size=10))
def test_sentence_chunker_keeps_every_word_whatever_the_delta_sizes(words, steps):
    text = " ".join(words)
    chunker, pieces, i, k = SentenceChunker(), [], 0, 0
    while i < len(text):
        step = steps[k % len(steps)]
        pieces += chunker.push(text[i : i + step])
        i, k = i + step, k + 1
    pieces += chunker.flush()
    # Every letter and digit reaches TTS, in order (only markup and pieces with nothing to pronounce are dropped).
    assert "".join(ch for piece in pieces for ch in piece if ch.isalnum()) == "".join(ch for ch in text if ch.isalnum())
    assert all(piece and piece == piece.strip() for piece in pieces)
