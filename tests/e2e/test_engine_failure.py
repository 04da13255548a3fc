"""An engine that fails mid-turn ends that turn (`error` event + `turn_end` reason `error`); the session goes on."""

from __future__ import annotations

import numpy as np
from avatar_runtime.config import load_config
from avatar_runtime.engines.a2e_lam import LAMExpressionEngine
from avatar_runtime.engines.lam.network import Audio2Expression
from avatar_runtime.engines.llm_openai import OpenAILLM
from avatar_runtime.engines.tts_cosyvoice import CosyVoiceTTS
from avatar_runtime.pipeline.reply import Engines

from tests.support.cosyvoice_server import CosyVoiceServerStandIn
from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer
from tests.support.runtime_server import RuntimeServer
from tests.support.tiny_lam import tiny_network


def _speech_like_pcm(seconds: float, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (wave * 32767).astype("<i2").tobytes()


async def test_tts_dying_mid_sentence_ends_the_turn_with_an_error_and_the_next_turn_works(shared_engines):
    replies = ["Here is a long answer that the voice will not finish.", "Now the voice works again."]
    async with CosyVoiceServerStandIn(_speech_like_pcm(2.0), behaviour="close_mid", cut_after=2) as voice:
        # The real CosyVoice client against a self-hosted-server stand-in; no fallback, so the failure shows.
        tts = CosyVoiceTTS("server", url=voice.url, voice="speaker", first_audio_timeout_s=3, stall_timeout_s=1)
        with OpenAIStubServer(replies=replies) as stub:
            config = load_config(env={})
            config.llm.base_url, config.llm.model = stub.base_url, "stub-model"
            llm = OpenAILLM(base_url=stub.base_url, api_key="k", model="stub-model")
            engines = Engines(shared_engines.vad, shared_engines.asr, llm, tts, shared_engines.a2e)
            with RuntimeServer(config, engines) as server:
                peer = AvatarPeer(server.url)
                await peer.connect()
                try:
                    peer.send({"type": "text", "text": "Tell me something long."})
                    error = await peer.wait_event("error", timeout=20)
                    assert error["code"] == "tts_failed" and "speech synthesis failed" in error["message"]
                    ended = await peer.wait_event("turn_end", timeout=10)
                    assert ended["reason"] == "error"

                    voice.behaviour = "ok"
                    peer.send({"type": "text", "text": "Try again."})
                    second = await peer.wait_event("turn_end", timeout=20, turn=ended["turn"] + 1)
                    assert second["reason"] == "done"
                    frames = [f for _, f in peer.received.frames if f.turn == second["turn"]]
                    assert len(frames) >= 50 and frames[-1].last  # ~2 s of audio → ~60 frames, closed properly
                    assert len(voice.requests) == 2
                finally:
                    await peer.close()


class _FailingNetwork(Audio2Expression):
    """A LAM network that runs out of device memory while `failing` is set (fault injection at the model)."""

    failing = False

    def forward(self, audio, identity):  # noqa: ANN001 - same signature as the real network
        if self.failing:
            raise RuntimeError("CUDA out of memory (injected)")
        return super().forward(audio, identity)


async def test_expression_model_failing_mid_turn_ends_the_turn_and_the_session_goes_on(shared_engines):
    network = tiny_network(cls=_FailingNetwork)
    a2e = LAMExpressionEngine(network=network, device="cpu", max_wait_ms=1)
    try:
        with OpenAIStubServer(replies=["This reply will lose its face.", "And this one keeps it."]) as stub:
            config = load_config(env={})
            llm = OpenAILLM(base_url=stub.base_url, api_key="k", model="stub-model")
            engines = Engines(shared_engines.vad, shared_engines.asr, llm, shared_engines.tts, a2e)
            with RuntimeServer(config, engines) as server:
                peer = AvatarPeer(server.url)
                await peer.connect()
                try:
                    network.failing = True
                    peer.send({"type": "text", "text": "Hello?"})
                    error = await peer.wait_event("error", timeout=20)
                    assert error["code"] == "a2e_failed" and "out of memory" in error["message"]
                    ended = await peer.wait_event("turn_end", timeout=10)
                    assert ended["reason"] == "error"

                    network.failing = False
                    peer.send({"type": "text", "text": "Again?"})
                    second = await peer.wait_event("turn_end", timeout=30, turn=ended["turn"] + 1)
                    assert second["reason"] == "done"
                    frames = [f for _, f in peer.received.frames if f.turn == second["turn"]]
                    assert len(frames) > 20 and frames[-1].last
                finally:
                    await peer.close()
    finally:
        a2e.close()
