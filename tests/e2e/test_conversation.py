"""A spoken conversation over real WebRTC on loopback: aiortc peer ↔ runtime ↔ a real OpenAI-protocol server."""

from __future__ import annotations

import asyncio
import re

import numpy as np

from tests.e2e.analysis import frame_rate, loudness_and_jaw
from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer
from tests.support.speech import speak

QUESTION = "What is the weather like today in Paris?"
ANSWER = "It is sunny and mild in Paris today. Take a light jacket for the evening, it gets cooler after sunset."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


async def test_spoken_question_gets_a_spoken_answer_with_expressions(serve):
    with OpenAIStubServer(replies=[ANSWER, "Berlin is the capital of Germany."], token_delay_s=0.005) as stub:
        server = serve(stub)
        peer = AvatarPeer(server.url)
        hello = await peer.connect()
        assert hello["fps"] == 30 and len(hello["blendshapes"]) == 52 and hello["llm"]["embedded"] is False
        await asyncio.sleep(0.3)
        peer.mic.say(speak(QUESTION))

        transcript = await peer.wait_event("transcript", timeout=20)
        assert _words(transcript["text"]) == _words(QUESTION)
        done = await peer.wait_event("turn_end", timeout=30, turn=transcript["turn"])
        assert done["reason"] == "done"
        turn = transcript["turn"]

        # The LLM got the system prompt and the user's words, streamed, and its reply was relayed verbatim.
        request = stub.last_request
        assert request.body["stream"] is True and request.body["model"] == "stub-model"
        assert request.messages[0]["role"] == "system"
        assert request.messages[-1] == {"role": "user", "content": transcript["text"]}
        assert "".join(e["text"] for e in peer.received.of_type("reply") if e["turn"] == turn) == ANSWER

        latency = await peer.wait_event("latency", turn=turn)
        assert {"vad", "asr", "llm_first_token", "tts_first_audio", "a2e_first_frame", "voice_to_voice"} <= set(
            latency["ms"]
        )
        await peer.wait_event("state", state="listening", after=len(peer.received.events) - 3)
        states = [e["state"] for e in peer.received.of_type("state")]
        assert states == ["listening", "thinking", "speaking", "listening"]

        # Non-silent reply audio, about as long as the sentence takes to say.
        rms, jaw = loudness_and_jaw(peer.received, turn)
        frames = [f for _, f in peer.received.frames if f.turn == turn]
        assert 3.0 < len(frames) / 30 < 12.0
        assert rms.max() > 0.05
        assert frames[-1].last and not any(f.last for f in frames[:-1])
        assert [f.pts_ms for f in frames] == sorted(f.pts_ms for f in frames)
        assert np.median(np.diff([f.pts_ms for f in frames])) in (33, 34)

        # 30 ± 2 frames per second on arrival, paced with the audio rather than sent in bursts.
        assert 28.0 <= frame_rate(peer.received, turn) <= 32.0

        # jawOpen rises and falls with the loudness of the audio it is stamped with.
        assert np.corrcoef(rms, jaw)[0, 1] > 0.5
        loud, quiet = rms > np.percentile(rms, 70), rms < np.percentile(rms, 20)
        assert jaw[loud].mean() > jaw[quiet].mean() + 0.08

        # A typed follow-up: the history carries the previous exchange.
        before = len(peer.received.events)
        peer.send({"type": "text", "text": "And what about Berlin?"})
        second = await peer.wait_event("turn_end", timeout=30, after=before)
        assert second["reason"] == "done"
        messages = stub.last_request.messages
        assert messages[-1] == {"role": "user", "content": "And what about Berlin?"}
        assert {"role": "assistant", "content": ANSWER} in messages
        assert {"role": "user", "content": transcript["text"]} in messages
        await peer.close()

        metrics = (await _get(server.url + "/metrics")).text
        for name in (  # DESIGN §6: dashboards and the autoscaler depend on these names
            "avatar_sessions_active", "avatar_sessions_limit",
            "avatar_sessions_total", "avatar_sessions_rejected_total",
            "avatar_turn_stage_seconds_bucket", "avatar_voice_to_voice_seconds_bucket",
            "avatar_expression_frames_total", "avatar_interruptions_total",
        ):  # fmt: skip
            assert f"\n{name}" in metrics or f"# TYPE {name}" in metrics, name
        assert 'avatar_sessions_total{outcome="closed"} 1.0' in metrics
        assert 'avatar_turn_stage_seconds_count{stage="asr"} 1.0' in metrics
        assert "avatar_voice_to_voice_seconds_count 1.0" in metrics
        assert re.search(r"avatar_expression_frames_total (\d+)", metrics).group(1) != "0"


async def test_embedded_llm_answers_offline(serve):
    server = serve(None)
    peer = AvatarPeer(server.url)
    hello = await peer.connect()
    assert hello["llm"]["embedded"] is True
    peer.send({"type": "text", "text": "What is 12 times 7?"})
    done = await peer.wait_event("turn_end", timeout=30)
    assert done["reason"] == "done"
    reply = "".join(e["text"] for e in peer.received.of_type("reply"))
    assert "84" in reply
    assert len(peer.received.frames) > 10
    await peer.close()
    config = (await _get(server.url + "/api/config")).json()
    assert config["llm"]["embedded"] is True and "OPENAI_BASE_URL" in config["llm"]["notice"]


async def _get(url: str):
    import httpx

    async with httpx.AsyncClient() as client:
        return await client.get(url)
