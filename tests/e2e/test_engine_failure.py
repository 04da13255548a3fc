"""An engine that fails mid-turn ends that turn (`error` event + `turn_end` reason `error`); the session goes on."""

from __future__ import annotations

import numpy as np
from avatar_runtime.config import load_config
from avatar_runtime.engines.llm_openai import OpenAILLM
from avatar_runtime.engines.tts_cosyvoice import CosyVoiceTTS
from avatar_runtime.pipeline.reply import Engines

from tests.support.cosyvoice_server import CosyVoiceServerStandIn
from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer
from tests.support.runtime_server import RuntimeServer


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
