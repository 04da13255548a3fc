#!/usr/bin/env python3
"""Voice-to-voice latency: end of the user's speech → first reply audio sample received by the client.

A real aiortc peer on loopback speaks N espeak-ng questions to the runtime (embedded VAD/ASR/TTS/A2E, as
`make run` loads them); the LLM is a real HTTP server speaking the OpenAI streaming protocol that answers at
once, so the number is the pipeline's own. Prints p50/p95 per stage and the downlink bitrate.

    .venv/bin/python hack/bench/voice_to_voice.py [--turns 10] [--tts piper|espeak] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from avatar_runtime.config import load_config  # noqa: E402

from tests.support.openai_server import OpenAIStubServer  # noqa: E402
from tests.support.peer import AvatarPeer  # noqa: E402
from tests.support.runtime_server import RuntimeServer  # noqa: E402
from tests.support.speech import speak  # noqa: E402

QUESTIONS = [
    "What is the weather like today in Paris?",
    "Please open the window and turn on the light.",
    "Tell me a joke about computers.",
    "How many legs does a spider have?",
    "Can you recommend a good book to read this weekend?",
    "My name is Alice and I live in Berlin.",
]
ANSWER = "Sure. Here is a short answer for you, spoken right away."
STAGES = ["vad", "asr", "llm_first_token", "tts_first_audio", "a2e_first_frame", "voice_to_voice"]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_turns(url: str, turns: int) -> tuple[list[float], list[dict], float]:
    peer = AvatarPeer(url)
    await peer.connect()
    await asyncio.sleep(0.5)
    client_ms: list[float] = []
    server_ms: list[dict] = []
    started = time.perf_counter()
    for i in range(turns):
        before_events, before_audio = len(peer.received.events), len(peer.received.audio)
        peer.mic.say(speak(QUESTIONS[i % len(QUESTIONS)]))
        end = await peer.wait_event("turn_end", timeout=30, after=before_events)
        latency = await peer.wait_event("latency", timeout=5, after=before_events)
        speech_end = peer.mic.utterance_ended[-1]
        first_audio = next(
            at
            for piece, at in zip(
                peer.received.audio[before_audio:], peer.received.audio_times[before_audio:], strict=True
            )
            if np.abs(piece).max() > 1e-3
        )
        client_ms.append((first_audio - speech_end) * 1000)
        server_ms.append(latency["ms"])
        print(f"  turn {i + 1}: {client_ms[-1]:6.0f} ms  ({end['reason']}; server {latency['ms']})", flush=True)
        await asyncio.sleep(0.5)
    duration = time.perf_counter() - started
    stats = await peer.pc.getStats()
    received = sum(getattr(s, "bytesReceived", 0) for s in stats.values() if s.type == "transport")
    await peer.close()
    return client_ms, server_ms, received * 8 / duration / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--tts", choices=["piper", "espeak"], default="piper")
    parser.add_argument("--opus-bitrate", type=int, help="reply Opus bitrate in bit/s (default: the config's)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    with OpenAIStubServer(replies=lambda _request: ANSWER) as llm:
        config = load_config(env={"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "bench"})
        config.tts.engine = args.tts
        if args.opus_bitrate:
            config.server.opus_bitrate = args.opus_bitrate
        print(
            f"voice-to-voice over {args.turns} turns (tts={args.tts}, opus {config.server.opus_bitrate} bit/s, "
            "LLM answers instantly) ..."
        )
        with RuntimeServer(config) as server:
            client_ms, server_ms, downlink_kbps = asyncio.run(run_turns(server.url, args.turns))

    rows = []
    for stage in STAGES:
        values = [m[stage] for m in server_ms if stage in m]
        rows.append((stage, percentile(values, 50), percentile(values, 95)))
    rows.append(("client: end of speech → first audio", percentile(client_ms, 50), percentile(client_ms, 95)))
    print(f"\n{'stage (ms)':40} {'p50':>8} {'p95':>8}")
    for name, p50, p95 in rows:
        print(f"{name:40} {p50:8.0f} {p95:8.0f}")
    print(f"{'downlink (audio + frames), kbit/s':40} {downlink_kbps:8.1f}")
    print(
        "\nvad = end of speech → end of turn detected (hangover); asr/llm/tts/a2e run speculatively from the first "
        "pause, so they overlap the hangover instead of adding to it."
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "turns": args.turns,
                    "tts": args.tts,
                    "client_ms": client_ms,
                    "server_ms": server_ms,
                    "p50_ms": statistics.median(client_ms),
                    "downlink_kbps": downlink_kbps,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
