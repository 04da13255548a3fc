"""Full duplex: the user talking over the avatar stops it within 300 ms, and only what was heard is remembered."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.e2e.analysis import SILENCE
from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer
from tests.support.speech import speak

LONG_ANSWER = (
    "Let me tell you a long story about the sea. Once upon a time a sailor crossed the ocean in a small boat. "
    "He saw whales and dolphins and storms that lasted for days. In the end he reached a quiet island where "
    "he built a house and lived happily for many years."
)


async def test_user_speech_interrupts_the_reply_within_300_ms(serve):
    # Tokens trickle in so the LLM stream is still open when the user barges in.
    with OpenAIStubServer(replies=[LONG_ANSWER, "Okay, I stopped."], token_delay_s=0.04) as stub:
        server = serve(stub)
        peer = AvatarPeer(server.url)
        await peer.connect()
        peer.send({"type": "text", "text": "Tell me a story."})
        await peer.wait_event("state", state="speaking", timeout=20)
        await asyncio.sleep(1.0)
        assert not peer.received.of_type("turn_end")
        llm_request = stub.last_request

        peer.mic.say(speak("Stop, please."))
        ended = await peer.wait_event("turn_end", timeout=10, turn=1)
        assert ended["reason"] == "interrupted"
        spoke_at = peer.mic.utterance_started[-1]
        reaction = peer.event_time("turn_end", turn=1) - spoke_at
        assert reaction < 0.300, f"turn_end arrived {reaction * 1000:.0f} ms after the user started speaking"

        # Audio and frames stop: from 300 ms after the onset on (while the user still talks), silence.
        await asyncio.sleep(0.6)
        late_audio = [
            piece
            for piece, at in zip(peer.received.audio, peer.received.audio_times, strict=True)
            if spoke_at + 0.3 < at < spoke_at + 0.8
        ]
        assert len(late_audio) > 10 and all(np.abs(p).max() < SILENCE for p in late_audio)
        late_frames = [f for at, f in peer.received.frames if f.turn == 1 and at > spoke_at + 0.3]
        assert late_frames == []
        # The LLM stream was closed rather than left running.
        assert await stub.await_disconnect(within_s=2.0, request=llm_request)

        # The interruption is itself a user turn: "Stop please" gets an answer that remembers only what was heard.
        second = await peer.wait_event("turn_end", timeout=20, turn=ended["turn"] + 1)
        assert second["reason"] == "done"
        history = stub.last_request.messages
        assistant = [m["content"] for m in history if m["role"] == "assistant"]
        assert len(assistant) == 1
        heard = assistant[0]
        assert LONG_ANSWER.startswith(heard) and 0 < len(heard) < len(LONG_ANSWER)
        assert "stop" in history[-1]["content"].lower()
        await peer.close()


async def test_interrupt_event_and_typed_text(serve):
    with OpenAIStubServer(replies=[LONG_ANSWER], token_delay_s=0.02) as stub:
        server = serve(stub)
        peer = AvatarPeer(server.url)
        await peer.connect()
        peer.send({"type": "text", "text": "Tell me a story."})
        await peer.wait_event("state", state="speaking", timeout=20)
        await asyncio.sleep(0.3)
        peer.send({"type": "interrupt"})
        ended = await peer.wait_event("turn_end", timeout=5, turn=1)
        assert ended["reason"] == "interrupted"
        interrupted_at = peer.event_time("turn_end", turn=1)
        assert not [f for at, f in peer.received.frames if at > interrupted_at + 0.2]
        metrics = server.runtime.metrics
        assert metrics.interruptions._value.get() == 1  # noqa: SLF001 - reading the counter's value
        await peer.close()
