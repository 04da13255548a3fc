"""The production engine stack, loaded from a model cache by `serve`'s own loader, in a real WebRTC conversation.

The weights are tiny random models in the released layouts (SenseVoiceSmall directory; LAM's hub archive with
the released decoder head and a small wav2vec2 encoder), so everything but the numbers is the production path:
config → model cache check → funasr AutoModel → LAM checkpoint (strict) → batching worker → ≤200 ms slices.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from avatar_runtime.config import load_config
from avatar_runtime.engines.lam.network import RELEASED_DIMS

from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer
from tests.support.runtime_server import RuntimeServer
from tests.support.speech import speak
from tests.support.tiny_lam import tiny_network, write_lam_cache
from tests.support.tiny_sensevoice import build_tiny_sensevoice

ANSWER = "Of course. Here is what I would say to that."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    # the released head (512 wide, 12 identities) on a tiny encoder
    write_lam_cache(root, tiny_network(0, RELEASED_DIMS))
    build_tiny_sensevoice(root / "sensevoice-small", force_piece="▁please")  # says "please" to any speech
    return root


async def test_spoken_turn_through_sensevoice_and_lam(model_dir):
    config = load_config(env={})
    config.model_dir = str(model_dir)
    config.asr.engine, config.asr.language, config.asr.device = "sensevoice", "auto", "cpu"
    config.a2e.engine, config.a2e.device = "lam", "cpu"
    config.tts.engine = "espeak"
    with OpenAIStubServer(replies=[ANSWER]) as stub:
        config.llm.base_url, config.llm.model = stub.base_url, "stub-model"
        with RuntimeServer(config) as server:  # no engines passed in: the runtime's loader builds them
            engines = server.runtime.engines
            assert (engines.asr.name, engines.a2e.name) == ("sensevoice", "lam")
            assert engines.a2e.max_push_s == pytest.approx(0.2)
            peer = AvatarPeer(server.url)
            await peer.connect()
            try:
                await asyncio.sleep(0.3)
                peer.mic.say(speak("Could you help me with something?"))
                transcript = await peer.wait_event("transcript", timeout=30)
                assert transcript["text"] == "please"  # SenseVoice's output, markup stripped
                assert stub.last_request.messages[-1] == {"role": "user", "content": "please"}
                done = await peer.wait_event("turn_end", timeout=60, turn=transcript["turn"])
                assert done["reason"] == "done"
                turn = transcript["turn"]
                frames = [(at, f) for at, f in peer.received.frames if f.turn == turn]
                pts = [f.pts_ms for _, f in frames]
                assert frames[-1][1].last and pts == sorted(pts)
                assert set(np.diff(pts)) <= {33, 34}  # every 1/30 s of the reply, none missing
                weights = np.array([f.weights for _, f in frames])
                assert np.isfinite(weights).all() and weights.min() >= 0 and weights.max() <= 1
                assert weights.std(axis=0).max() > 0.01  # the random network still moves the face
                # Frames were released slice by slice while the reply played, not all at the end.
                arrival = np.array([at for at, _ in frames])
                assert arrival[-1] - arrival[0] > 0.5 * (pts[-1] - pts[0]) / 1000
                latency = await peer.wait_event("latency", turn=turn)
                assert latency["ms"]["a2e_first_frame"] > 0
            finally:
                await peer.close()
