#!/usr/bin/env python3
"""A/V sync at the client: how far the avatar's mouth is from the sound the user hears, in a real browser.

Headless Debian Chromium (playwright-core from web/node_modules) opens the web client against the real runtime on
loopback (embedded VAD/ASR/TTS/A2E; the LLM a local OpenAI-compatible stub that streams a fixed reply). Each turn
types a question and, while the reply plays, samples at 100 Hz the loudness of the reply audio after the jitter
buffer and the jawOpen weight handed to the renderer; the lag of their cross-correlation peak, corrected for the
audio output latency, is that turn's offset (positive: the mouth moves after the sound). The measurement is
tests/web/lib/lipsync.mjs, the same code as tests/web/test_browser_client.py::test_lip_sync_follows_the_audio_as_heard.

    .venv/bin/python hack/bench/av_sync.py [--turns 8] [--short] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from avatar_runtime.config import load_config  # noqa: E402

from tests.support.openai_server import OpenAIStubServer  # noqa: E402
from tests.support.runtime_server import RuntimeServer  # noqa: E402
from tests.support.speech import write_wav  # noqa: E402

WEB = ROOT / "web"
CLIENT_SYNC = ROOT / "tests" / "web" / "client_sync.mjs"
# ~5 s of speech: long enough for a clear correlation peak, short enough for 2 turns in the short mode.
REPLY = "My name is Ava. I listen to what you say, and I answer you out loud, with a moving face."
TARGET_ABS_MS = 45  # the target: A/V sync within ±45 ms
MIN_CORRELATION = 0.4  # below this the peak is noise (silence, or the audio did not play): the turn is invalid


def summarise(turns: list[dict]) -> dict:
    """Per-turn offsets → signed median, mean, p95 of |offset| (ms); turns without a clear peak are excluded."""
    valid = [t for t in turns if t.get("peakCorrelation", 0) > MIN_CORRELATION]
    offsets = np.array([t["jawLagMs"] for t in valid], dtype=float)
    if not len(offsets):
        return {"valid_turns": 0, "median_ms": math.nan, "mean_ms": math.nan, "abs_p95_ms": math.nan}
    return {
        "valid_turns": len(valid),
        "median_ms": float(np.median(offsets)),
        "mean_ms": float(offsets.mean()),
        "abs_p95_ms": float(np.percentile(np.abs(offsets), 95)),
    }


def markdown(turns: list[dict], summary: dict) -> str:
    lines = [
        "Headless Chromium (software rendering, 3D avatar off so WebGL stalls do not measure this machine) talks to "
        "the runtime on loopback; each turn types a question, and while the ~5 s spoken reply plays the page samples "
        "the reply's loudness after the jitter buffer and the jawOpen handed to the renderer at 100 Hz. The offset is "
        "the lag of their cross-correlation peak corrected for the audio output latency (positive: the mouth moves "
        'after the sound; 5 ms resolution). "On arrival" is what the same frames would show if played as they arrive, '
        "without the client's playout-delay compensation.",
        "",
        "| turn | offset (ms) | peak correlation | playout delay p50 (ms) | on arrival (ms) |",
        "|---|---|---|---|---|",
    ]
    for i, t in enumerate(turns, 1):
        delay = (t.get("playoutDelayMs") or {}).get("p50", "")
        lines.append(f"| {i} | {t['jawLagMs']} | {t['peakCorrelation']:.2f} | {delay} | {t['onArrivalLagMs']} |")
    lines += [
        "",
        f"Over {summary['valid_turns']} turns with a clear peak (correlation > {MIN_CORRELATION}): median offset "
        f"**{summary['median_ms']:.0f} ms**, mean {summary['mean_ms']:.1f} ms, p95 of |offset| "
        f"**{summary['abs_p95_ms']:.0f} ms** (target: within ±{TARGET_ABS_MS} ms).",
    ]
    return "\n".join(lines)


def ensure_web_dist() -> Path:
    dist = WEB / "dist"
    if not (dist / "index.html").exists():
        subprocess.run(["npx", "vite", "build", "--logLevel", "warn"], cwd=WEB, check=True, timeout=300)
    return dist


def run_browser(url: str, wav: Path, turns: int) -> dict:
    completed = subprocess.run(
        ["node", str(CLIENT_SYNC), "--url", url, "--wav", str(wav), "--turns", str(turns)],
        capture_output=True,
        text=True,
        cwd=WEB,
        timeout=60 + 40 * turns,
        env={"NODE_PATH": str(WEB / "node_modules"), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    sys.stderr.write(completed.stderr)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"client_sync.mjs failed ({completed.returncode}):\n{completed.stdout}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"client_sync.mjs: {result['error']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, help="replies to measure (default 8; 2 with --short)")
    parser.add_argument("--short", action="store_true", help="CI mode: 2 turns (~30 s)")
    parser.add_argument("--json", help="write the benchmark result (the run_all.py interface) to this file")
    args = parser.parse_args(argv)
    turns = args.turns or (2 if args.short else 8)

    with tempfile.TemporaryDirectory() as tmp, OpenAIStubServer(replies=lambda _r: REPLY, token_delay_s=0.01) as llm:
        silence = Path(tmp) / "silence.wav"  # the fake microphone: the questions are typed
        write_wav(silence, np.zeros(5 * 48000, np.float32), 48000)
        config = load_config(env={"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "bench"})
        config.server.web_dir = str(ensure_web_dist())
        print(f"A/V sync over {turns} turns in headless Chromium ...", flush=True)
        with RuntimeServer(config) as server:
            result = run_browser(server.url, silence, turns)

    per_turn = result["turns"]
    summary = summarise(per_turn)
    print(f"\n{'turn':>4} {'offset ms':>10} {'corr':>6} {'on arrival ms':>14}")
    for i, t in enumerate(per_turn, 1):
        print(f"{i:4d} {t['jawLagMs']:10d} {t['peakCorrelation']:6.2f} {t['onArrivalLagMs']:14d}")
    print(
        f"median {summary['median_ms']:.0f} ms, mean {summary['mean_ms']:.1f} ms, p95 |offset| "
        f"{summary['abs_p95_ms']:.0f} ms over {summary['valid_turns']} valid turns"
    )

    if args.json:
        abs_ms = abs(summary["median_ms"])
        report = {
            "name": "av_sync",
            "title": "A/V sync at the client — `hack/bench/av_sync.py`",
            "command": shlex.join([".venv/bin/python", "hack/bench/av_sync.py", *(argv or sys.argv[1:])]),
            "markdown": markdown(per_turn, summary),
            "headline": {
                "av_sync_ms": summary["median_ms"],
                "av_sync_abs_ms": abs_ms,
                "av_sync_abs_p95_ms": summary["abs_p95_ms"],
            },
            "targets": [
                {"metric": "av_sync_abs_ms", "op": "<=", "value": TARGET_ABS_MS, "met": bool(abs_ms <= TARGET_ABS_MS)}
            ],
            "turns": [
                {
                    k: t[k]
                    for k in (
                        "jawLagMs",
                        "peakCorrelation",
                        "onArrivalLagMs",
                        "playoutDelayMs",
                        "analyserLeadMs",
                        "seconds",
                    )
                }
                for t in per_turn
            ],
        }
        Path(args.json).write_text(json.dumps(report, indent=2, allow_nan=True))
    return 0 if summary["valid_turns"] else 1


if __name__ == "__main__":
    sys.exit(main())
