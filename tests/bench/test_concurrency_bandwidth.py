"""The concurrency and bandwidth benchmarks (hack/bench/concurrency.py, bandwidth.py): their arithmetic on known
inputs, and each script run standalone in its short mode against a real `avatar-runtime serve` process, checked
for what the numbers must satisfy — not for the numbers this box happens to give."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "bench"))

import bandwidth  # noqa: E402
import concurrency  # noqa: E402
from livesessions.driver import (  # noqa: E402
    LoopLag,
    SessionRecord,
    Turn,
    WireSample,
    playout_underruns,
    reply_gaps,
    underrun_spans,
)

# -- arithmetic ------------------------------------------------------------------------------------------------


def test_a_steady_20_ms_stream_never_underruns():
    arrivals = [i * 0.02 for i in range(100)]
    assert playout_underruns(arrivals, [0.02] * 100, 0.0, 2.0) == 0
    assert max(reply_gaps(arrivals, 0.0, 2.0)) == pytest.approx(0.02)


def test_a_late_packet_underruns_once_and_the_buffer_restarts_from_it():
    arrivals = [i * 0.02 for i in range(10)] + [0.18 + 0.10 + i * 0.02 for i in range(10)]  # a 100 ms hole
    assert playout_underruns(arrivals, [0.02] * 20, 0.0, 1.0) == 1
    assert playout_underruns(arrivals, [0.02] * 20, 0.0, 1.0, buffer_s=0.12) == 0  # a deeper buffer absorbs it


def test_a_burst_after_a_stall_is_absorbed_when_the_buffer_was_ahead():
    # 50 ms late, then everything at once: with 60 ms buffered the listener hears no gap.
    arrivals = [0.0, 0.02, 0.04, 0.09, 0.09, 0.09, 0.10, 0.12]
    assert playout_underruns(arrivals, [0.02] * len(arrivals), 0.0, 1.0) == 0


def test_an_underrun_during_a_stall_of_the_client_is_told_apart():
    arrivals = [i * 0.02 for i in range(10)] + [0.28 + i * 0.02 for i in range(10)]
    (span,) = underrun_spans(arrivals, [0.02] * 20, 0.0, 1.0)
    assert span == (pytest.approx(0.18), pytest.approx(0.28))
    lag = LoopLag()
    lag.stalls = [(0.20, 0.27)]
    assert lag.overlaps(span)
    lag.stalls = [(0.50, 0.60)]
    assert not lag.overlaps(span)


def test_underruns_only_count_inside_the_reply():
    arrivals = [0.0, 0.5, 0.52, 0.54, 2.0]  # holes before and after the reply window [0.5, 0.6]
    assert playout_underruns(arrivals, [0.02] * 5, 0.5, 0.6) == 0


def test_per_session_cost_is_the_slope_over_sessions_with_the_idle_server_as_zero():
    assert concurrency.per_session_slope([(0, 1.0), (1, 16.0), (2, 31.0)]) == pytest.approx(15.0)
    assert math.isnan(concurrency.per_session_slope([(0, 1.0)]))


def step(sessions: int, passed: bool) -> concurrency.Step:
    record = SessionRecord([Turn(0.0, 0.5 if passed else 1.5, 2.0, "done", 0, 20.0)])
    return concurrency.Step(sessions, [record] * sessions, 10.0, 400.0, None, 1.0, 10.0, 0.0, 0.0)


def test_the_headline_counts_only_the_unbroken_run_of_passing_steps():
    assert concurrency.unbroken_passes([step(1, True), step(2, True), step(3, False)]) == 2
    assert concurrency.unbroken_passes([step(1, True), step(2, False), step(3, True)]) == 1  # --keep-going
    assert concurrency.unbroken_passes([step(1, False)]) == 0
    assert step(1, False).worst_p95_ms == pytest.approx(1500)


def wire(at: float, down: int, up: int) -> WireSample:
    return WireSample(at, bytes_sent=up, bytes_received=down, packets_sent=int(at * 50), packets_received=int(at * 80))


def test_rates_over_the_session_and_while_speaking():
    # 10 s: 2 kB/s of downlink except 12 kB/s while the avatar speaks between 2 and 4 s; uplink a flat 4 kB/s.
    def down(t: float) -> int:
        return int(2000 * t + 10000 * min(max(t - 2, 0), 2))

    samples = [wire(t / 10, down(t / 10), 4000 * t // 10) for t in range(101)]
    turn = Turn(speech_end=1.5, first_audio=2.0, reply_end=4.0, reason="done", underruns=0, max_gap_ms=20)
    traffic = bandwidth.Traffic(samples, SessionRecord([turn]), [(3.0, 600), (9.0, 100)], 0.0, 10.0)
    summary = bandwidth.summarise(traffic)
    assert summary["downlink_kBps"] == pytest.approx(4.0)
    assert summary["downlink_speaking_kBps"] == pytest.approx(12.0)
    assert summary["uplink_kBps"] == pytest.approx(4.0)
    assert summary["downlink_ip_kBps"] == pytest.approx(4.0 + 28 * 80 / 1000)  # 80 datagrams/s of 28-byte headers
    assert summary["channel_speaking_kBps"] == pytest.approx(0.3)
    assert summary["speaking_s"] == pytest.approx(2.0)


# -- the scripts, standalone, short mode -----------------------------------------------------------------------


def run_short(script: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    result = subprocess.run([sys.executable, str(ROOT / "hack" / "bench" / f"{script}.py"), "--short", "--json",
                             str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    check_interface(document, script)
    return document


def check_interface(document: dict, name: str) -> None:
    """The shape every benchmark's --json shares (the orchestrator builds docs/benchmarks.md from it)."""
    assert document["name"] == name
    assert document["title"] and document["markdown"].count("|") > 10  # a setup sentence and a table
    assert document["command"].startswith(".venv/bin/python hack/bench/") and "--short" in document["command"]
    assert document["headline"] and all(isinstance(v, (int, float)) for v in document["headline"].values())
    for goal in document["targets"]:
        assert set(goal) == {"metric", "op", "value", "met"}
        assert goal["metric"] in document["headline"] and goal["op"] in ("<=", ">=")
        assert goal["met"] is None  # a short run does not judge the target


@pytest.fixture(scope="module")
def concurrency_run(tmp_path_factory) -> dict:
    return run_short("concurrency", tmp_path_factory.mktemp("concurrency"))


@pytest.fixture(scope="module")
def bandwidth_run(tmp_path_factory) -> dict:
    return run_short("bandwidth", tmp_path_factory.mktemp("bandwidth"))


def test_concurrency_measures_every_session_of_every_step(concurrency_run):
    steps = concurrency_run["details"]["steps"]
    assert [s["sessions"] for s in steps][:1] == [1]
    for step in steps:
        assert len(step["per_session"]) == step["sessions"]
        for session in step["per_session"]:
            assert session["v2v_ms"] and not session["failures"]
            assert all(100 < ms < 10_000 for ms in session["v2v_ms"])  # after the speech, before a timeout
            assert session["max_gap_ms"] >= 15  # packets are 20 ms apart at best (a burst can come early)
        assert step["cpu_pct"] > 0 and step["rss_mb"] > 50
    headline = concurrency_run["headline"]
    unbroken = 0
    while unbroken < len(steps) and steps[unbroken]["passed"]:
        unbroken += 1
    assert headline["max_sessions_p95_1s"] == unbroken
    assert headline["cpu_pct_per_session"] > 0
    assert concurrency_run["targets"][0]["metric"] == "max_sessions_p95_1s"


def test_bandwidth_counts_both_directions_and_more_while_the_avatar_speaks(bandwidth_run):
    d = bandwidth_run["details"]
    assert d["turns"] >= 1 and d["speaking_s"] > 0.5
    assert d["downlink_bytes"] > 0 and d["uplink_bytes"] > 0
    assert d["downlink_speaking_kBps"] > d["downlink_kBps"] > 0
    assert d["downlink_ip_kBps"] > d["downlink_kBps"] and d["uplink_ip_kBps"] > d["uplink_kBps"]
    assert d["channel_messages"] > 0 and d["channel_speaking_kBps"] > 0  # expression frames flowed


def test_downlink_while_speaking_is_the_opus_bitrate_plus_frames_and_packet_overhead(bandwidth_run):
    d = bandwidth_run["details"]
    opus_kBps = d["opus_bitrate"] / 8000
    audio_kBps = d["downlink_speaking_kBps"] - d["channel_speaking_kBps"]  # reply audio + all per-packet overhead
    # 50 audio packets/s × ~40 B (RTP 12 + SRTP tag 10 + slack) and ~30 frame messages/s × ~60 B (DTLS+SCTP).
    overhead_kBps = 50 * 40 / 1000 + 30 * 60 / 1000
    assert 0.5 * opus_kBps < audio_kBps < 1.5 * opus_kBps + overhead_kBps
    uplink_opus_kBps = d["client_opus_bitrate"] / 8000
    assert 0.3 * uplink_opus_kBps < d["uplink_kBps"] < 1.5 * uplink_opus_kBps + overhead_kBps
