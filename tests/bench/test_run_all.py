"""hack/bench/run_all.py in its short (CI) mode, with the render, A/V sync and start-up benchmarks for real: the
markdown it writes, the JSON interface of each script, and that the A/V sync number is a real measurement.

One run_all.py call (~50 s on 2 cores: Chromium dominates) is shared by the tests of this module."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "bench"))

import run_all  # noqa: E402

MINE = ["render_fps", "av_sync", "startup", "expression_layer"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    out, logs = tmp / "benchmarks.md", tmp / "logs"
    only = ",".join([*MINE, "autoscale_sim"])
    done = subprocess.run(
        [
            sys.executable,
            "hack/bench/run_all.py",
            "--short",
            "--only",
            only,
            "--out",
            str(out),
            "--keep-logs",
            str(logs),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    jsons = {name: json.loads((logs / f"{name}.json").read_text()) for name in MINE}
    return {"markdown": out.read_text(), "stdout": done.stdout, "json": jsons}


def test_markdown_has_machine_targets_and_every_section(short_run):
    md = short_run["markdown"]
    assert "## Machine" in md and "| CPU |" in md and "| Chromium | Chromium " in md and "aiortc " in md
    assert "SHORT mode" in md
    assert "| benchmark | metric | target | measured | met |" in md
    assert "| av_sync | `av_sync_abs_ms` | <= 45 |" in md
    for title in ("## Avatar rendering", "## A/V sync at the client", "## Start-up", "## Autoscaling simulation",
                  "## Expression layer"):  # fmt: skip
        assert title in md
    assert md.index("## Targets") < md.index("## Avatar rendering")  # the headline table comes first
    assert "not measured in short mode" in md
    assert md.rstrip().endswith(run_all.BENCH.joinpath("benchmarks_notes.md").read_text().rstrip())
    # One progress line per script.
    assert [line.split(" ... ")[1].split()[0] for line in short_run["stdout"].splitlines() if " ... " in line] == [
        "ok"
    ] * 5


@pytest.mark.parametrize("name", MINE)
def test_each_script_writes_the_interface_json(short_run, name):
    data = short_run["json"][name]
    assert run_all.check_interface(data) == []
    assert data["name"] == name and data["markdown"].strip()
    assert "--short" in data["command"]
    assert all(isinstance(v, int | float) for v in data["headline"].values())


def test_av_sync_is_a_real_per_turn_measurement(short_run):
    data = short_run["json"]["av_sync"]
    offsets = [turn["jawLagMs"] for turn in data["turns"]]
    assert len(offsets) >= 2
    assert all(turn["peakCorrelation"] > 0.4 for turn in data["turns"])  # a clear peak, not noise
    assert math.isfinite(data["headline"]["av_sync_ms"]) and abs(data["headline"]["av_sync_ms"]) < 500
    assert data["headline"]["av_sync_abs_ms"] == abs(data["headline"]["av_sync_ms"])
    (target,) = data["targets"]
    assert target["met"] == (data["headline"]["av_sync_abs_ms"] <= 45)


def test_render_and_startup_headlines(short_run):
    render = short_run["json"]["render_fps"]["headline"]
    assert render["render_fps_default"] > 0 and 0 < render["render_ratio_default"] < 5
    assert render["render_fps_lam"] > 0  # the real LAM export, p2-1 (a shared fixture)
    startup = short_run["json"]["startup"]["headline"]
    assert 0 < startup["startup_healthz_ms"] <= startup["startup_ready_ms"] < 60_000
    assert "first_conversation_s" not in startup


def test_expression_layer_leaves_the_jaw_alone_in_every_mood(short_run):
    details = short_run["json"]["expression_layer"]["details"]
    assert set(details["moods"]) == {"happy", "sad", "angry", "surprised", "fearful", "disgusted", "thinking"}
    for mood, measured in details["moods"].items():
        assert measured["jaw_identical"] and measured["jaw_rms_r"] == details["neutral_jaw_rms_r"], mood
        assert measured["delta"] > 0.1, mood  # and the mood shows
    assert details["neutral_jaw_rms_r"] > 0.5


def test_short_mode_never_overwrites_docs_benchmarks():
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.stat().st_mtime_ns if docs.exists() else None
    done = subprocess.run([sys.executable, "hack/bench/run_all.py", "--short", "--only", "autoscale_sim"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    wrote = Path(done.stdout.strip().splitlines()[-1].removeprefix("wrote "))
    assert wrote.exists() and wrote.resolve() != docs.resolve()
    assert (docs.stat().st_mtime_ns if docs.exists() else None) == before


def test_missing_and_failing_scripts_are_reported_not_hidden(tmp_path):
    missing = run_all.run_bench(run_all.Bench("nope", "does_not_exist.py"), True, 10, tmp_path)
    assert missing["status"] == "missing" and "does not exist" in missing["error"]
    md = run_all.render({"CPU": "x"}, "now", "cmd", True, [missing], "# B", "notes")
    assert "Not measured (missing or failed): nope." in md and "**MISSING**" in md
    assert run_all.check_interface({"name": "x"})  # incomplete JSON is caught
    bad = {"name": "x", "title": "t", "command": "c", "markdown": "m", "headline": {}, "targets": [
        {"metric": "m", "op": "<", "value": 1, "met": True}]}  # fmt: skip
    assert run_all.check_interface(bad) == ["bad target {'metric': 'm', 'op': '<', 'value': 1, 'met': True}"]


def test_targets_table_and_legacy_output():
    results = [{"name": "b", "headline": {"lat": 512.4}, "targets": [
        {"metric": "lat", "op": "<=", "value": 500, "met": False}]}]  # fmt: skip
    assert "| b | `lat` | <= 500 | 512 | ❌ no |" in run_all.targets_table(results)
    legacy = run_all.legacy_markdown(run_all.BY_NAME["autoscale_sim"], "seed 1\n| a | b |\n|---|---|\n| 1 | 2 |\ntail")
    assert "```\nseed 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ntail\n```" in legacy
