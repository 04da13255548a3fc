#!/usr/bin/env python3
"""Run every benchmark in hack/bench/ and write docs/benchmarks.md: the machine, the date, the command, a table of
the issue's targets (met or not) and each benchmark's section.

Scripts that speak the interface (`[--short] --json FILE` → {name, title, command, markdown, headline, targets}) are
run with it; the older ones (a2e_throughput, asr_batching, autoscale_sim) are run with their own options and their
printed output becomes the section. A script that is missing, fails or times out gets a section saying so, and the
exit status is 1 — the file is still written, so one broken benchmark does not hide the others.

    .venv/bin/python hack/bench/run_all.py [--short] [--only NAME,...] [--out PATH] [--timeout S]

--short passes --short to each script (CI: each finishes in <= 40 s) and writes to a temporary file unless --out
is given: a short run never overwrites docs/benchmarks.md. hack/bench/benchmarks_preamble.md opens the file and
hack/bench/benchmarks_notes.md closes it (hand-written context that the scripts do not measure).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "hack" / "bench"
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
PACKAGES = ["aiortc", "onnxruntime", "torch", "faster-whisper", "ctranslate2", "piper-tts", "numpy"]


@dataclasses.dataclass(frozen=True)
class Bench:
    name: str
    script: str
    title: str = ""  # for the older scripts, whose output carries no title
    full: tuple[str, ...] | None = None  # older scripts: their options (None: the interface's [--short] --json)
    short: tuple[str, ...] | None = None
    intro: str = ""  # older scripts: the setup sentence(s) above their printed output
    timeout_s: float = 1200  # full mode; --short uses its own limit
    args: tuple[str, ...] = ()  # interface scripts: options in both modes (one script, several sections)


BENCHES = [
    Bench("voice_to_voice", "voice_to_voice.py"),
    Bench("voice_to_voice_streaming_tts", "voice_to_voice.py", args=("--tts-realtime",)),
    Bench("concurrency", "concurrency.py"),
    Bench("bandwidth", "bandwidth.py"),
    Bench("render_fps", "render_fps.mjs"),
    Bench("av_sync", "av_sync.py"),
    Bench("startup", "startup.py", timeout_s=2400),  # a fresh clone + install
    Bench("expression_layer", "expression_layer.py"),
    Bench(
        "a2e_throughput",
        "a2e_throughput.py",
        "LAM Audio2Expression throughput — `hack/bench/a2e_throughput.py`",
        full=("--device", "cpu"),
        short=("--device", "cpu", "--batches", "1,2", "--seconds", "1", "--min-runs", "1", "--mode", "model"),
        intro="Full-size LAM (wav2vec2-base + LAM head, ~102 M parameters, random weights: the cost does not depend "
        "on the values) on batches of streaming windows (64 frames of context, 6 new frames = 200 ms per window); "
        "`model` rows time the network alone, `engine` rows run B concurrent sessions through "
        "`LAMExpressionEngine` (batcher + streams + post-processing). A session needs 30 frames/s of real time. "
        "CPU numbers vary ±2× with other load on the machine; on a GPU run it with `--device cuda`.",
    ),
    Bench(
        "asr_batching",
        "asr_batching.py",
        "SenseVoice batching — `hack/bench/asr_batching.py`",
        full=("--size", "real", "--rounds", "3"),
        short=("--size", "tiny", "--rounds", "1"),
        intro="8 espeak-ng utterances (0.6–4 s) through `SenseVoiceASR`, awaited one by one vs submitted together "
        "(one dynamic batch), random weights on the CPU; the full run uses SenseVoiceSmall's real encoder shape "
        "(~234 M parameters), the short run the tiny test model. Batched text equals one-by-one text.",
    ),
    Bench(
        "autoscale_sim",
        "autoscale_sim.py",
        "Autoscaling simulation — `hack/bench/autoscale_sim.py`",
        full=(),
        short=("--short",),
        intro="A simulated day of avatar sessions against four ways of running the GPU pool (docs/autoscaling.md "
        "explains the model and the policies); deterministic from `--seed`.",
    ),
]
BY_NAME = {b.name: b for b in BENCHES}


# ---- pure: turning results into markdown ---------------------------------------------------------------------


def fmt(value: object) -> str:
    """A measured number as a reader wants it: 3 significant figures-ish, no float noise."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def targets_table(results: list[dict]) -> str:
    rows = ["| benchmark | metric | target | measured | met |", "|---|---|---|---|---|"]
    for result in results:
        for target in result.get("targets", []):
            measured = result.get("headline", {}).get(target["metric"], math.nan)
            mark = "✅ yes" if target["met"] else "❌ no"
            rows.append(
                f"| {result['name']} | `{target['metric']}` | {target['op']} {fmt(target['value'])} | "
                f"{fmt(measured)} | {mark} |"
            )
    return "\n".join(rows) if len(rows) > 2 else "No benchmark with a target was run."


def headline_table(results: list[dict]) -> str:
    rows = ["| benchmark | metric | value |", "|---|---|---|"]
    for result in results:
        rows += [f"| {result['name']} | `{k}` | {fmt(v)} |" for k, v in result.get("headline", {}).items()]
    return "\n".join(rows)


def section(result: dict) -> str:
    lines = [f"## {result['title']}", ""]
    if result.get("status", "ok") != "ok":
        lines += [f"**{result['status'].upper()}**: {result['error']}", ""]
    if result.get("markdown"):
        lines += [result["markdown"].strip(), ""]
    if result.get("command"):
        lines += [
            f"Command: `{result['command']}`" + (f" ({result['seconds']:.0f} s)" if "seconds" in result else ""),
            "",
        ]
    return "\n".join(lines)


def render(machine: dict, when: str, command: str, short: bool, results: list[dict], preamble: str, notes: str) -> str:
    failed = [r["name"] for r in results if r.get("status", "ok") != "ok"]
    parts = [
        "<!-- Generated by hack/bench/run_all.py; edit hack/bench/benchmarks_preamble.md, benchmarks_notes.md or "
        "the scripts instead. -->",
        preamble.strip(),
        "",
        f"Run: {when}{' — SHORT mode (CI smoke run, too few samples to quote)' if short else ''}. "
        f"Command: `{command}`.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "## Targets",
        "",
        targets_table(results),
        "",
        *([f"Not measured (missing or failed): {', '.join(failed)}.", ""] if failed else []),
        "## Headline numbers",
        "",
        headline_table(results),
        "",
        *(section(r) for r in results),
        notes.strip(),
        "",
    ]
    return "\n".join(parts)


def legacy_markdown(bench: Bench, stdout: str) -> str:
    """An older script's printed output as a section: its markdown tables as tables, everything else verbatim."""
    blocks: list[tuple[bool, list[str]]] = []  # (is a table, lines)
    for line in stdout.strip().splitlines():
        is_table = line.startswith("|")
        if not blocks or blocks[-1][0] != is_table:
            blocks.append((is_table, []))
        blocks[-1][1].append(line)
    body = "\n\n".join("\n".join(lines) if table else "```\n" + "\n".join(lines) + "\n```" for table, lines in blocks)
    return f"{bench.intro}\n\n{body}"


def check_interface(data: dict) -> list[str]:
    """What a --json result lacks of the interface (empty: complete)."""
    problems = [f"no '{k}'" for k in ("name", "title", "command", "markdown", "headline", "targets") if k not in data]
    for target in data.get("targets", []):
        if not {"metric", "op", "value", "met"} <= set(target) or target.get("op") not in ("<=", ">="):
            problems.append(f"bad target {target}")
    return problems


# ---- side effects: the machine, the scripts -------------------------------------------------------------------


def _first_line(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not found"


def machine_description() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in Path("/etc/os-release").read_text().splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    gpu = (
        _first_line(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"])
        if shutil.which("nvidia-smi")
        else "none"
    )
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "GPU": gpu,
        "OS": f"{os_name}, kernel {platform.release()}",
        "Python": platform.python_version(),
        "Packages": ", ".join(versions),
        "Node.js": _first_line(["node", "--version"]),
        "Chromium": _first_line(["/usr/bin/chromium", "--version"]),
        "Load average (1 min) at start": f"{os.getloadavg()[0]:.1f}",
    }


def run_bench(bench: Bench, short: bool, timeout_s: float, workdir: Path) -> dict:
    """Run one script; its interface result, or a stand-in saying why there is none (status != ok)."""
    path = BENCH / bench.script
    base = {
        "name": bench.name,
        "title": bench.title or f"{bench.name} — `hack/bench/{bench.script}`",
        "headline": {},
        "targets": [],
    }
    if not path.exists():
        return {**base, "status": "missing", "error": f"hack/bench/{bench.script} does not exist"}
    runner = ["node"] if bench.script.endswith(".mjs") else [sys.executable]
    out = workdir / f"{bench.name}.json"
    legacy = bench.full is not None
    options = (
        list((bench.short if short else bench.full) or ())
        if legacy
        else [*bench.args, *(["--short"] if short else []), "--json", str(out)]
    )
    argv = [*runner, str(path), *options]
    shown = shlex.join(
        [Path(runner[0]).name if runner[0] == "node" else ".venv/bin/python", f"hack/bench/{bench.script}", *options]
    )
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-2000:] if isinstance(exc.stdout, bytes) else (exc.stdout or "")[-2000:]
        return {
            **base,
            "status": "timeout",
            "error": f"no result within {timeout_s:.0f} s",
            "command": shown,
            "markdown": f"```\n{tail}\n```" if tail else "",
        }
    seconds = time.perf_counter() - started
    (workdir / f"{bench.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        return {
            **base,
            "status": "failed",
            "error": f"exit status {done.returncode}",
            "command": shown,
            "seconds": seconds,
            "markdown": f"```\n{tail}\n```",
        }
    if legacy:
        return {
            **base,
            "status": "ok",
            "command": shown,
            "seconds": seconds,
            "markdown": legacy_markdown(bench, done.stdout),
        }
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        data, problems = {}, [f"no JSON result in {out.name}: {exc}"]
    else:
        problems = check_interface(data)
    if problems:
        return {
            **base,
            "status": "failed",
            "error": "; ".join(problems),
            "command": shown,
            "seconds": seconds,
            "markdown": f"```\n{(done.stdout + done.stderr)[-3000:]}\n```",
        }
    return {**data, "status": "ok", "seconds": seconds, "command": data.get("command") or shown}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="each script's CI mode; output to a temporary file")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run (of: {', '.join(BY_NAME)})")
    parser.add_argument("--out", type=Path, help="markdown to write (default docs/benchmarks.md; --short: a temp file)")
    parser.add_argument(
        "--timeout", type=float, help="seconds per script (default: 120 with --short, else 1200; startup 2400)"
    )
    parser.add_argument("--keep-logs", type=Path, help="copy each script's JSON and output into this directory")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",")] if args.only else list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
    out = args.out or (Path(tempfile.mkdtemp(prefix="benchmarks-")) / "benchmarks.md" if args.short else DEFAULT_OUT)
    command = shlex.join([".venv/bin/python", "hack/bench/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_description()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for i, name in enumerate(names, 1):
            bench = BY_NAME[name]
            timeout_s = args.timeout or (120 if args.short else bench.timeout_s)
            print(f"[{i}/{len(names)}] {name} ...", end=" ", flush=True)
            result = run_bench(bench, args.short, timeout_s, Path(tmp))
            took = f" in {result['seconds']:.1f} s" if "seconds" in result else ""
            print(
                f"{result['status']}{took}" + (f" ({result['error']})" if result["status"] != "ok" else ""), flush=True
            )
            results.append(result)
        if args.keep_logs:
            shutil.copytree(tmp, args.keep_logs, dirs_exist_ok=True)

    preamble = (BENCH / "benchmarks_preamble.md").read_text()
    notes = (BENCH / "benchmarks_notes.md").read_text()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(machine, when, command, args.short, results, preamble, notes))
    print(f"wrote {out}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
