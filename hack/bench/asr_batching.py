#!/usr/bin/env python3
"""SenseVoice through `SenseVoiceASR`: utterances awaited one by one vs submitted together (dynamic batching).

Random weights (the cost does not depend on the values, so no download is needed): `--size tiny` (the test model)
or `--size real` (SenseVoiceSmall's published encoder shape: 50 + 20 SAN-M blocks, 512 wide, ~234 M parameters).
Speech: espeak-ng sentences of different lengths. Prints the median wall time of each way over `--rounds`.

    .venv/bin/python hack/bench/asr_batching.py [--size tiny|real] [--rounds 10] [--max-wait-ms 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "runtime")]

from avatar_runtime.engines.asr_sensevoice import SenseVoiceASR  # noqa: E402

import tests.support.tiny_sensevoice as tiny  # noqa: E402
from tests.support.speech import speak  # noqa: E402

SENTENCES = [
    "Hello there, how are you doing today?",
    "The weather is lovely this morning.",
    "Could you tell me the time, please?",
    "I think we should go for a walk in the park.",
    "Yes.",
    "Numbers like one two three four five six seven eight.",
    "Please speak a little more slowly.",
    "Thank you.",
]
REAL_ENCODER = {"output_size": 512, "linear_units": 2048, "num_blocks": 50, "tp_blocks": 20}


async def measure(model_dir: Path, args: argparse.Namespace) -> None:
    speech = [speak(s) for s in SENTENCES]
    asr = SenseVoiceASR(model_dir, device=args.device, max_batch=len(speech), max_wait_ms=args.max_wait_ms)
    try:
        await asr.transcribe(speech[0])  # warm-up
        one_by_one, together = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            sequential = [await asr.transcribe(x) for x in speech]
            one_by_one.append(time.perf_counter() - started)
            started = time.perf_counter()
            batched = await asyncio.gather(*(asr.transcribe(x) for x in speech))
            together.append(time.perf_counter() - started)
            assert list(batched) == sequential, "batched decoding differs from one-by-one"
        audio_s = sum(len(x) for x in speech) / 16000
        a, b = statistics.median(one_by_one), statistics.median(together)
        print(f"SenseVoice ({args.size}, random weights) on {args.device}: "
              f"{len(speech)} utterances, {audio_s:.1f} s of speech, {args.rounds} rounds")  # fmt: skip
        print(f"  one by one      {a * 1000:8.1f} ms")
        print(f"  all together    {b * 1000:8.1f} ms   ({a / b:.2f}x; batches formed {asr.batch_sizes})")
    finally:
        asr.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.size == "real":
        tiny.ENCODER_CONF = {**tiny.ENCODER_CONF, **REAL_ENCODER}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tiny.build_tiny_sensevoice(Path(tmp) / "sensevoice-small")
        asyncio.run(measure(model_dir, args))


if __name__ == "__main__":
    main()
