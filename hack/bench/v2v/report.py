"""Percentiles, the printed table, and the JSON section of docs/benchmarks.md (format: /tmp bench interface)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OURS_STAGES = [
    ("vad", "VAD hangover (end-of-turn silence waited)"),
    ("asr", "ASR"),
    ("llm_first_token", "LLM first token"),
    ("tts_first_audio", "TTS first audio"),
    ("a2e_first_frame", "A2E first frame"),
    ("server_v2v", "server: end of speech → first audio sent"),
    ("transport", "transport (client − server)"),
]
BASELINE_STAGES = [
    ("vad", "VAD end_delay (+ input polling)"),
    ("asr", "ASR (whole utterance, after the end)"),
    ("llm_first_token", "LLM first token"),
    ("tts_first_audio", "TTS first audio (first whole sentence)"),
    ("a2e_first_frame", "A2E first 1 s slice"),
    ("polling", "30 ms polling between stages"),
    ("buffering", "waiting for sentence / 0.5 s / 1 s of audio"),
]
TARGET_P50_MS = 500.0
TARGET_SPEEDUP = 3.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


@dataclass
class Summary:
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        return cls(percentile(values, 50), percentile(values, 95), percentile(values, 99))


def stage_rows(turns, stages: list[tuple[str, str]]) -> list[tuple[str, float, float]]:
    rows = []
    for key, label in stages:
        values = [t.stages_ms[key] for t in turns if key in t.stages_ms]
        rows.append((label, percentile(values, 50), percentile(values, 95)))
    return rows


def build(ours, baseline, setup: str, command: str, streaming_tts: bool = False) -> dict:
    """The benchmark's JSON section; `ours`/`baseline` are lists of turn results (either may be empty).

    Two sections come from this script: with the TTS engine as fast as it is (Piper: ~20× real time), where the
    p50 target is judged, and with TTS audio released at streaming speed (`--tts-realtime`), where the
    baseline's audio buffering shows and the speed-up target is judged. Each reports both numbers."""
    headline: dict[str, float] = {}
    tables: list[str] = []
    if ours:
        s = Summary.of([t.total_ms for t in ours])
        headline.update(v2v_p50_ms=round(s.p50, 1), v2v_p95_ms=round(s.p95, 1), v2v_p99_ms=round(s.p99, 1))
        tables.append(_table(f"Ours, over WebRTC ({len(ours)} turns)", s, stage_rows(ours, OURS_STAGES)))
    if baseline:
        b = Summary.of([t.total_ms for t in baseline])
        headline.update(baseline_p50_ms=round(b.p50, 1), baseline_p95_ms=round(b.p95, 1))
        tables.append(
            _table(f"OpenAvatarChat-style baseline, in-process ({len(baseline)} turns)", b,
                   stage_rows(baseline, BASELINE_STAGES))
        )  # fmt: skip
    if ours and baseline:
        headline["speedup_p50"] = round(headline["baseline_p50_ms"] / headline["v2v_p50_ms"], 2)
        headline["speedup_p95"] = round(headline["baseline_p95_ms"] / headline["v2v_p95_ms"], 2)
        server_p50 = percentile([t.stages_ms["server_v2v"] for t in ours], 50)
        headline["speedup_p50_server"] = round(headline["baseline_p50_ms"] / server_p50, 2)
        tables.append(
            f"Speed-up (baseline ÷ ours): **{headline['speedup_p50']}×** at p50, {headline['speedup_p95']}× at p95. "
            "The baseline runs in-process, without WebRTC transport, which favours it: the ratio is conservative. "
            f"Against our server-side number (no transport on either side) it is {headline['speedup_p50_server']}× "
            "at p50."
        )
    targets = []
    if "v2v_p50_ms" in headline and not streaming_tts:
        targets.append(_target("v2v_p50_ms", "<=", TARGET_P50_MS, headline["v2v_p50_ms"]))
    if "speedup_p50" in headline and streaming_tts:
        targets.append(_target("speedup_p50", ">=", TARGET_SPEEDUP, headline["speedup_p50"]))
    return {
        "name": "voice_to_voice_streaming_tts" if streaming_tts else "voice_to_voice",
        "title": "Voice-to-voice with TTS at streaming speed: the speed-up over the baseline"
        if streaming_tts
        else "Voice-to-voice latency",
        "command": command,
        "markdown": setup + "\n\n" + "\n\n".join(tables) + "\n",
        "headline": headline,
        "targets": targets,
    }


def _target(metric: str, op: str, value: float, measured: float) -> dict:
    met = measured <= value if op == "<=" else measured >= value
    return {"metric": metric, "op": op, "value": value, "met": bool(met)}


def _table(title: str, total: Summary, rows: list[tuple[str, float, float]]) -> str:
    lines = [f"**{title}**", "", "| stage (ms) | p50 | p95 |", "|---|---:|---:|"]
    lines += [f"| {label} | {_ms(p50)} | {_ms(p95)} |" for label, p50, p95 in rows]
    lines.append(f"| **end of speech → first reply audio** | **{_ms(total.p50)}** | **{_ms(total.p95)}** |")
    lines.append(f"| (p99) | {_ms(total.p99)} | |")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0f}"


def plain_text(section: dict) -> str:
    """The markdown section as a terminal table (the same numbers, without the markup)."""
    out = []
    for line in section["markdown"].splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
            out.append(f"  {cells[0]:52} " + " ".join(f"{c:>7}" for c in cells[1:]))
        else:
            out.append(line.replace("**", ""))
    return "\n".join(out)
