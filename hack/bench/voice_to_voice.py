#!/usr/bin/env python3
"""Voice-to-voice latency: end of the user's speech → first reply audio, ours vs. an OpenAvatarChat-style baseline.

Ours: a real aiortc peer on loopback speaks N espeak-ng questions (varied topics, lengths, voices and rates) to
the real runtime app (VAD/ASR/TTS/A2E as `make run` loads them) and times, at the client, the end of its speech
to the first audible reply sample; the runtime's `latency` events give the per-stage breakdown. Baseline: the
same engine objects (built once by the runtime's loader) driven in-process the way OpenAvatarChat's LAM
pipeline drives its handlers (hack/bench/v2v/baseline.py says how, with its sources). The LLM is a local
OpenAI-compatible server with a configurable time to first token and token rate, or a real endpoint.

    .venv/bin/python hack/bench/voice_to_voice.py [--short] [--json FILE] [--mode both|ours|baseline]
        [--turns 32] [--tts piper|espeak] [--tts-realtime] [--opus-bitrate BPS] [--llm-ttft-ms 0] [--llm-tokens-per-s R]
        [--llm-url URL --llm-model M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from v2v import report  # noqa: E402
from v2v.baseline import measure_baseline  # noqa: E402
from v2v.measure import TurnFailed, measure_ours  # noqa: E402
from v2v.questions import QUESTIONS, pick  # noqa: E402
from v2v.streaming_tts import RealTimeTTS  # noqa: E402

SHORT_TURNS = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=len(QUESTIONS),
                        help=f"turns per mode (default {len(QUESTIONS)}: every question once)")  # fmt: skip
    parser.add_argument("--short", action="store_true", help=f"CI mode: {SHORT_TURNS} turns per mode (< 40 s)")
    parser.add_argument("--mode", choices=["both", "ours", "baseline"], default="both",
                        help="measure ours, the baseline, or both and their ratio (default)")  # fmt: skip
    parser.add_argument("--tts", choices=["piper", "espeak"], default="piper", help="TTS engine (default piper)")
    parser.add_argument("--tts-realtime", action="store_true",
                        help="release TTS audio no faster than real time after its first piece, as streaming TTS "
                        "services (CosyVoice, Edge) deliver it; applies to both modes")  # fmt: skip
    parser.add_argument("--opus-bitrate", type=int, help="reply Opus bitrate in bit/s (default: the config's)")
    parser.add_argument("--llm-ttft-ms", type=float, default=0.0,
                        help="stub LLM: time to first token in ms (default 0)")  # fmt: skip
    parser.add_argument("--llm-tokens-per-s", type=float, default=None,
                        help="stub LLM: tokens per second after the first (default: all at once)")  # fmt: skip
    parser.add_argument("--llm-url", help="a real OpenAI-compatible endpoint (…/v1) instead of the stub; "
                        "its key from OPENAI_API_KEY")  # fmt: skip
    parser.add_argument("--llm-model", help="model name at --llm-url (required with it)")
    parser.add_argument("--json", help="also write the section JSON (docs/benchmarks.md interface) to this file")
    args = parser.parse_args(argv)
    if args.short:
        args.turns = SHORT_TURNS
    if args.turns < 1:
        parser.error("--turns must be at least 1")
    if args.llm_tokens_per_s is not None and args.llm_tokens_per_s <= 0:
        parser.error("--llm-tokens-per-s must be positive")
    if args.llm_ttft_ms < 0:
        parser.error("--llm-ttft-ms must not be negative")
    if bool(args.llm_url) != bool(args.llm_model):
        parser.error("--llm-url and --llm-model go together")
    return args


async def warm_up(engines, question) -> None:
    """One pass through ASR, TTS and A2E before anything is timed, so no mode pays the first-call costs."""
    from v2v.questions import speech_of

    await engines.asr.transcribe(speech_of(question))
    stream = engines.a2e.stream()
    async for chunk in engines.tts.synthesize(question.reply):
        await stream.push(chunk)


def run(argv: list[str] | None = None, log=print) -> dict:
    """Run the benchmark; returns {"section": <JSON section>, "ours": [...], "baseline": [...], "seconds": s}."""
    from avatar_runtime.config import load_config
    from avatar_runtime.engines.loader import build_engines

    from tests.support.openai_server import OpenAIStubServer
    from tests.support.runtime_server import RuntimeServer

    args = parse_args(argv)
    started = time.perf_counter()
    questions = pick(args.turns)
    reply = {"text": questions[0].reply}
    stub = None
    if args.llm_url:
        env = {"OPENAI_BASE_URL": args.llm_url, "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "none"),
               "AVATAR_LLM_MODEL": args.llm_model}  # fmt: skip
        llm_words = f"the real LLM {args.llm_model} at {args.llm_url}"
    else:
        stub = OpenAIStubServer(
            replies=lambda _request: reply["text"], first_token_delay_s=args.llm_ttft_ms / 1000,
            token_delay_s=1 / args.llm_tokens_per_s if args.llm_tokens_per_s else 0.0,
        ).start()  # fmt: skip
        env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "bench"}
        rate = f"{args.llm_tokens_per_s:g} tokens/s" if args.llm_tokens_per_s else "all tokens at once"
        llm_words = f"a local OpenAI-compatible stub LLM (first token after {args.llm_ttft_ms:g} ms, {rate})"

    def before_turn(question) -> None:
        reply["text"] = question.reply

    ours, baseline = [], []
    try:
        config = load_config(env=env)
        config.tts.engine = args.tts
        if args.opus_bitrate:
            config.server.opus_bitrate = args.opus_bitrate
        engines = build_engines(config)
        if args.tts_realtime:
            engines.tts = RealTimeTTS(engines.tts)
        log(f"voice-to-voice, {args.turns} turns per mode, mode {args.mode}, tts {engines.tts.name}, "
            f"asr {engines.asr.name}, {llm_words} ...")  # fmt: skip
        with RuntimeServer(config, engines) as server:
            server.submit(warm_up(engines, questions[0]), timeout_s=60)
            if args.mode in ("both", "ours"):
                ours = asyncio.run(measure_ours(server.url, questions, before_turn, log))
            if args.mode in ("both", "baseline"):
                # On the runtime's own event loop, with the very engine objects the sessions used.
                coro = measure_baseline(engines, config.llm.system_prompt, questions, before_turn, log)
                baseline = server.submit(coro, timeout_s=30.0 * len(questions))
    finally:
        if stub is not None:
            stub.stop()
    setup = (
        f"{args.turns} spoken questions per mode ({len({q.text for q in questions})} distinct, espeak-ng voices "
        f"{', '.join(sorted({q.voice for q in questions}))} at {min(q.rate_wpm for q in questions)}–"
        f"{max(q.rate_wpm for q in questions)} wpm); engines: VAD {engines.vad.name}, ASR {engines.asr.name}, "
        f"TTS {engines.tts.name}, A2E {engines.a2e.name}; {llm_words}. "
        "Ours: a real aiortc peer over WebRTC on loopback, timed at the client from the packet holding the last "
        "voiced sample to the first audible reply sample; stages from the runtime's `latency` events (ASR, LLM, "
        "TTS and A2E start speculatively at the first pause, so they overlap the VAD hangover instead of adding "
        "to it); transport = client − server voice-to-voice (uplink + downlink). Baseline: the same engine "
        "objects run in-process as OpenAvatarChat's LAM pipeline runs them (VAD end_delay 5000 samples, "
        "whole-utterance ASR after the end, sentence hand-off to TTS, 0.5 s TTS accumulation, 1 s "
        "Audio2Expression slices released with their audio, 30 ms queue polling); it runs in-process (no WebRTC "
        "transport), which favours the baseline, so the ratio is conservative."
    )
    command = "python hack/bench/voice_to_voice.py" + ("" if argv is None else " " + shlex.join(argv))
    if argv is None:
        command = "python hack/bench/voice_to_voice.py " + shlex.join(sys.argv[1:])
    if args.tts_realtime:
        setup += (
            " TTS audio is released at streaming speed (hack/bench/v2v/streaming_tts.py): Piper's own first-audio "
            "latency, then 100 ms pieces no faster than real time, as the cloud voices of OpenAvatarChat's LAM "
            "configuration (CosyVoice on DashScope, edge-tts) deliver it; both modes alike. This is where the "
            "baseline's 0.5 s TTS accumulation and 1 s Audio2Expression slices cost what they cost in a deployment; "
            "with Piper at full speed (the section above) they cost almost nothing."
        )
    section = report.build(ours, baseline, setup, command.strip(), streaming_tts=args.tts_realtime)
    if args.json:
        Path(args.json).write_text(json.dumps(section, indent=2) + "\n")
    return {"section": section, "ours": ours, "baseline": baseline, "seconds": time.perf_counter() - started}


def main() -> int:
    try:
        result = run()
    except TurnFailed as exc:
        print(f"voice_to_voice: {exc}", file=sys.stderr)
        return 1
    section = result["section"]
    print()
    print(report.plain_text(section))
    for target in section["targets"]:
        measured = section["headline"][target["metric"]]
        verdict = "met" if target["met"] else "NOT met"
        print(f"target {target['metric']} {target['op']} {target['value']:g}: {measured:g} ({verdict})")
    print(f"\nran in {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
