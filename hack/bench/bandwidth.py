#!/usr/bin/env python3
"""Bandwidth per session, both directions, counted on the wire, against the seed's "minimal" and a video avatar.

One real aiortc peer holds a conversation of fixed length with `avatar-runtime serve --no-tls` (its own
process, embedded defaults or `--config FILE`; the LLM is a local OpenAI-compatible server answering at once):
it asks a spoken question, the avatar answers (reply audio + expression frames), a 1–2 s pause, the next one.
The bytes are the peer connection's DTLS transport counters (aiortc `getStats()` → RTCTransportStats
bytesSent/bytesReceived, sampled every 0.1 s): every UDP payload after ICE — SRTP/SRTCP, and DTLS records carrying
SCTP for the data channel — so SRTP, DTLS and SCTP overhead is in; STUN consent checks and the IP/UDP headers are
not (the second figure adds 28 bytes per datagram from the packet counters).

    .venv/bin/python hack/bench/bandwidth.py [--short] [--seconds 60] [--config FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from avatar_runtime.config import RuntimeConfig  # noqa: E402
from avatar_runtime.transport.tuning import apply_tuning  # noqa: E402
from livesessions.driver import ANSWER, SessionRecord, WireSample, converse, spoken_questions, wire_sample  # noqa: E402
from livesessions.report import table, target, write_json  # noqa: E402
from livesessions.server import ServeProcess, bench_config  # noqa: E402

from tests.support.openai_server import OpenAIStubServer  # noqa: E402
from tests.support.peer import AvatarPeer  # noqa: E402

IP_UDP_HEADER = 28  # IPv4 (20) + UDP (8) bytes per datagram
VIDEO_MBIT_S = (0.5, 2.5)  # OpenAvatarChat's server-rendered avatar: H.264 at 0.5–2.5 Mbit/s (quoted, not measured)
TARGET_DOWNLINK_KBPS = 8.0
CLIENT_OPUS_BITRATE = 32000  # what a browser sends for a mono voice; aiortc's own default is 96 kbit/s


@dataclass
class Traffic:
    """The measured session: wire counters over time, the turns, the data channel's payload bytes."""

    samples: list[WireSample]
    record: SessionRecord
    channel_bytes: list[tuple[float, int]]  # (arrival, payload bytes) of each data channel message
    start: float
    end: float


def counter_at(samples: list[WireSample], field: str, at: float) -> float:
    """A cumulative counter at time `at`, linearly interpolated between the samples around it."""
    return float(np.interp(at, [s.at for s in samples], [getattr(s, field) for s in samples]))


def speaking_windows(record: SessionRecord, start: float, end: float) -> list[tuple[float, float]]:
    """When the avatar was speaking: first audible reply sample → turn_end, clipped to the measured span."""
    windows = [(max(t.first_audio, start), min(t.reply_end, end)) for t in record.turns]
    return [(a, b) for a, b in windows if b > a]


def summarise(traffic: Traffic) -> dict:
    """Pure arithmetic on the recording: rates in kB/s (1 kB = 1000 bytes) over the session and while speaking."""
    span = traffic.end - traffic.start
    windows = speaking_windows(traffic.record, traffic.start, traffic.end)
    speaking_s = sum(b - a for a, b in windows)

    def over(field: str, spans: list[tuple[float, float]]) -> float:
        return sum(counter_at(traffic.samples, field, b) - counter_at(traffic.samples, field, a) for a, b in spans)

    whole = [(traffic.start, traffic.end)]
    out: dict = {"seconds": span, "speaking_s": speaking_s, "turns": len(traffic.record.turns)}
    for direction, field in (("downlink", "bytes_received"), ("uplink", "bytes_sent")):
        packets = "packets_received" if direction == "downlink" else "packets_sent"
        total, datagrams = over(field, whole), over(packets, whole)
        out[f"{direction}_bytes"] = total
        out[f"{direction}_kBps"] = total / span / 1000
        out[f"{direction}_ip_kBps"] = (total + IP_UDP_HEADER * datagrams) / span / 1000
        if speaking_s > 0:
            spoken, spoken_datagrams = over(field, windows), over(packets, windows)
            out[f"{direction}_speaking_kBps"] = spoken / speaking_s / 1000
            out[f"{direction}_speaking_ip_kBps"] = (spoken + IP_UDP_HEADER * spoken_datagrams) / speaking_s / 1000
    in_window = sum(n for at, n in traffic.channel_bytes if any(a <= at <= b for a, b in windows))
    out["channel_kBps"] = sum(n for at, n in traffic.channel_bytes if traffic.start <= at <= traffic.end) / span / 1000
    out["channel_speaking_kBps"] = in_window / speaking_s / 1000 if speaking_s > 0 else float("nan")
    return out


async def record_session(url: str, seconds: float, speeches: list) -> Traffic:
    peer = AvatarPeer(url)
    await peer.connect()
    channel_bytes: list[tuple[float, int]] = []
    peer.channel.on("message", lambda m: channel_bytes.append((time.perf_counter(), len(m) if isinstance(m, bytes)
                                                               else len(m.encode()))))  # fmt: skip
    await asyncio.sleep(0.5)  # handshakes done: the span measures the conversation, not the set-up
    samples = [await wire_sample(peer)]
    start = samples[0].at
    end = start + seconds

    async def sample() -> None:
        while True:
            await asyncio.sleep(0.1)
            samples.append(await wire_sample(peer))

    sampler = asyncio.ensure_future(sample())
    record = await converse(peer, speeches, turns=10**6, seed=0, gap_s=(1.0, 2.0), start_within_s=0.5, stop_at=end)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    sampler.cancel()
    samples.append(await wire_sample(peer))
    await peer.close()
    return Traffic(samples, record, channel_bytes, start, min(end, samples[-1].at))


def kbit(kbytes_per_s: float) -> float:
    return kbytes_per_s * 8


def render(summary: dict, opus_bitrate: int, setup: str) -> str:
    s, span = summary, summary["seconds"]
    rows = []
    for direction in ("downlink", "uplink"):
        speaking = s.get(f"{direction}_speaking_kBps", float("nan"))
        rows.append([direction, f"{s[f'{direction}_bytes'] / 1e6:.3f}", f"{s[f'{direction}_kBps']:.2f}",
                     f"{kbit(s[f'{direction}_kBps']):.1f}", f"{speaking:.2f}", f"{kbit(speaking):.1f}",
                     f"{s[f'{direction}_ip_kBps']:.2f}",
                     f"{s.get(f'{direction}_speaking_ip_kBps', float('nan')):.2f}"])  # fmt: skip
    low, high = (rate * 1e6 / 8 * span / 1e6 for rate in VIDEO_MBIT_S)
    ours = s["downlink_bytes"] / 1e6
    return "\n".join([
        f"One session of {span:.0f} s against `avatar-runtime serve --no-tls` ({setup}; LLM answering at once): "
        f"{s['turns']} spoken questions, each answered (the avatar spoke {s['speaking_s']:.1f} s in all, "
        f"{100 * s['speaking_s'] / span:.0f} % of the time), reply Opus at {opus_bitrate // 1000} kbit/s; the peer "
        f"(aiortc, standing in for the browser) sends its microphone as Opus at {CLIENT_OPUS_BITRATE // 1000} kbit/s "
        "all the time, as a browser does. Counted on the wire: the DTLS transport's byte counters (SRTP, SRTCP, "
        "DTLS/SCTP data channel — their overhead included; STUN and IP/UDP headers not), and again with 28 bytes "
        "of IPv4/UDP header per datagram. 1 kB = 1000 bytes. \"Speaking\" = first audible reply sample → end of "
        "the reply.",
        "",
        table(["direction", "MB", "kB/s", "kbit/s", "speaking kB/s", "speaking kbit/s", "kB/s +IP/UDP",
               "speaking kB/s +IP/UDP"], rows),  # fmt: skip
        "",
        f"Of the downlink, the data channel's payload (expression frames and events) is {s['channel_kBps']:.2f} kB/s "
        f"on average and {s['channel_speaking_kBps']:.2f} kB/s while speaking; the rest is the reply audio "
        "(silence between replies included: the track keeps sending).",
        "",
        f"The seed calls its bandwidth \"minimal\" without a number; this is the number. A video-streamed avatar "
        f"(OpenAvatarChat's server-rendered path, H.264 at 0.5–2.5 Mbit/s — a quoted range, not measured here) "
        f"would send {low:.1f}–{high:.1f} MB over the same {span:.0f} s; this session's downlink was {ours:.2f} MB "
        f"({low / ours:.0f}–{high / ours:.0f}× less).",
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="a 10 s session (CI)")
    parser.add_argument("--seconds", type=float, help="session length (default 60; short: 10)")
    parser.add_argument("--config", type=Path, help="runtime config file (default: the embedded defaults)")
    parser.add_argument("--json", help="write the section for docs/benchmarks.md to this file")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.short else 60.0)
    if seconds < 8:
        parser.error("--seconds must be at least 8 (one question and its answer)")
    if args.config is not None and not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")

    apply_tuning(CLIENT_OPUS_BITRATE, audio_prefetch=1)  # a browser-like client holds at least one packet
    speeches = spoken_questions()
    started = time.perf_counter()
    with OpenAIStubServer(replies=lambda _request: ANSWER) as llm:
        config = bench_config(llm.base_url, concurrent_limit=4, base=args.config)
        with ServeProcess(config) as server:
            print(f"bandwidth: one {seconds:.0f} s session (server ready in {server.started_in_s:.1f} s) ...")
            traffic = asyncio.run(record_session(server.url, seconds, speeches))
        opus_bitrate = RuntimeConfig.model_validate(config).server.opus_bitrate  # what the server was given
    summary = summarise(traffic)
    if not traffic.record.turns:
        print(f"no turn was answered: {traffic.record.failures}", file=sys.stderr)
        return 1
    setup = f"config {args.config}" if args.config else "embedded defaults"
    markdown = render(summary, opus_bitrate, setup)
    print("\n" + markdown + f"\n\nrun time {time.perf_counter() - started:.0f} s")
    if args.json:
        headline = {key: round(summary[key], 3) for key in ("downlink_kBps", "downlink_speaking_kBps", "uplink_kBps")}
        targets = [target("downlink_kBps", "<=", TARGET_DOWNLINK_KBPS, summary["downlink_kBps"],
                          evaluated=not args.short)]  # fmt: skip
        details = {**summary, "opus_bitrate": opus_bitrate, "client_opus_bitrate": CLIENT_OPUS_BITRATE,
                   "channel_messages": len(traffic.channel_bytes)}  # fmt: skip
        write_json(args.json, "bandwidth", "Bandwidth per session", markdown, headline, targets, details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
