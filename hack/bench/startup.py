#!/usr/bin/env python3
"""Start-up: how long the server takes to answer /healthz and /readyz, and the time to a first conversation on a
fresh machine (clone + install + start + the first spoken reply).

(a) `avatar-runtime serve --no-tls` on a free loopback port, as a user starts it; /healthz and /readyz polled every
    20 ms from the spawn; the median of the runs (3; 1 with --short).
(b) full mode only: `git clone` of this repository's HEAD into a temporary directory, `bash hack/install.sh` there
    (its own .venv, npm ci + vite build, the default avatar), `avatar-runtime serve` from that venv until /readyz,
    then a real aiortc peer (tests/support/peer.py) asks one spoken question and waits for the first reply audio.
    The LLM is the runtime's offline responder (what a fresh install without an endpoint answers with).

    .venv/bin/python hack/bench/startup.py [--runs 3] [--short] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.net import free_port  # noqa: E402
from tests.support.peer import AvatarPeer  # noqa: E402
from tests.support.speech import speak  # noqa: E402

QUESTION = "Hello, can you tell me your name, please?"
POLL_S = 0.02
CLEAN_CI_INSTALL = "~2 min"  # `make test`'s install on a clean GitHub-hosted runner (cold apt, pip and npm)


def spawn_server(repo: Path, venv: Path) -> tuple[subprocess.Popen, str, float]:
    """`avatar-runtime serve --no-tls` of `venv`, run in `repo` (its ./models, ./avatars, web/dist)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AVATAR_", "VIRTUAL_ENV"))}
    log = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(venv / "bin" / "avatar-runtime"), "serve", "--no-tls", "--host", "127.0.0.1", "--port", str(port)],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log = log  # type: ignore[attr-defined]
    return process, f"http://127.0.0.1:{port}", started


def wait_for(process: subprocess.Popen, url: str, started: float, timeout_s: float = 120) -> float:
    """Seconds from `started` until GET `url` answers 200; fails with the server's log when it dies or times out."""
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.perf_counter() - started > timeout_s:
            process.log.seek(0)  # type: ignore[attr-defined]
            raise RuntimeError(f"{url} not 200 (exit {process.poll()}):\n{process.log.read().decode()[-3000:]}")
        time.sleep(POLL_S)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_startup(repo: Path, venv: Path) -> dict:
    process, base, started = spawn_server(repo, venv)
    try:
        health = wait_for(process, f"{base}/healthz", started)
        ready = wait_for(process, f"{base}/readyz", started)
    finally:
        stop(process)
    return {"healthz_ms": health * 1000, "readyz_ms": ready * 1000}


async def first_reply(base: str) -> dict:
    """Connect a peer, ask one spoken question; seconds to connect and from end of speech to first reply audio."""
    started = time.perf_counter()
    peer = AvatarPeer(base)
    await peer.connect(timeout=60)
    connected = time.perf_counter()
    await asyncio.sleep(0.5)
    peer.mic.say(speak(QUESTION))
    deadline = time.perf_counter() + 60
    try:
        while time.perf_counter() < deadline:
            heard = [
                at
                for piece, at in zip(peer.received.audio, peer.received.audio_times, strict=False)
                if np.abs(piece).max() > 1e-3 and peer.mic.utterance_ended and at > peer.mic.utterance_ended[-1]
            ]
            if heard:
                return {
                    "connect_s": connected - started,
                    "reply_after_speech_s": heard[0] - peer.mic.utterance_ended[-1],
                    "question_to_reply_s": heard[0] - started,
                }
            await asyncio.sleep(0.05)
        raise RuntimeError("no reply audio within 60 s of the question")
    finally:
        await peer.close()


def fresh_machine(workdir: Path) -> dict:
    """Clone + install + serve + first reply, each step timed (seconds)."""
    steps: dict[str, float] = {}
    clone = workdir / "repo"
    t = time.perf_counter()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    steps["clone_s"] = time.perf_counter() - t
    print(f"  clone: {steps['clone_s']:.1f} s; installing (bash hack/install.sh) ...", flush=True)
    t = time.perf_counter()
    install = subprocess.run(["bash", "hack/install.sh"], cwd=clone, capture_output=True, text=True, timeout=1800)
    steps["install_s"] = time.perf_counter() - t
    if install.returncode != 0:
        raise RuntimeError(f"hack/install.sh failed:\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}")
    print(f"  install: {steps['install_s']:.1f} s; serving ...", flush=True)
    process, base, started = spawn_server(clone, clone / ".venv")
    try:
        steps["serve_ready_s"] = wait_for(process, f"{base}/readyz", started)
        reply = asyncio.run(first_reply(base))
    finally:
        stop(process)
    steps["question_to_reply_s"] = reply["question_to_reply_s"]
    steps["reply_after_speech_s"] = reply["reply_after_speech_s"]
    steps["first_conversation_s"] = sum(
        steps[k] for k in ("clone_s", "install_s", "serve_ready_s", "question_to_reply_s")
    )
    return steps


def _pip_sources() -> str:
    """Where pip looks besides PyPI on this machine (PIP_FIND_LINKS, the cache), for the honesty note."""
    found = [f"find-links {os.environ['PIP_FIND_LINKS']}"] if os.environ.get("PIP_FIND_LINKS") else []
    cache = Path.home() / ".cache" / "pip"
    if cache.is_dir():
        found.append(f"cache {cache}")
    return ", ".join(found) or "no local wheel directory; pip's cache"


def markdown(server: list[dict], fresh: dict | None, head: str) -> str:
    med = {k: statistics.median(r[k] for r in server) for k in ("healthz_ms", "readyz_ms")}
    lines = [
        f"`avatar-runtime serve --no-tls` (the embedded engines: Silero VAD, Whisper tiny.en, Piper, audio-driven "
        f"A2E) on a free loopback port, /healthz and /readyz polled every {POLL_S * 1000:.0f} ms from the spawn, "
        f"median of {len(server)} run(s):",
        "",
        "| server start-up | median (ms) | runs (ms) |",
        "|---|---|---|",
        *(
            f"| spawn → {k.split('_')[0]} 200 | {med[k]:.0f} | {', '.join(f'{r[k]:.0f}' for r in server)} |"
            for k in ("healthz_ms", "readyz_ms")
        ),
        "",
    ]
    if fresh is None:
        lines.append("Time to first conversation on a fresh machine: not measured in short mode.")
        return "\n".join(lines)
    lines += [
        f"Time to first conversation: a fresh `git clone` of HEAD ({head}) into a temporary directory, "
        "`bash hack/install.sh` there (its own .venv, `npm ci` + `vite build`, the generated default avatar), "
        "`avatar-runtime serve --no-tls` from that venv until /readyz, then a real aiortc peer connects and asks one "
        "spoken question (~2.5 s of espeak-ng speech); the offline responder answers.",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| git clone (local, from this checkout; a network clone adds its download) | {fresh['clone_s']:.1f} |",
        f"| `bash hack/install.sh` | {fresh['install_s']:.1f} |",
        f"| serve → /readyz 200 (first start of the new venv) | {fresh['serve_ready_s']:.1f} |",
        f"| connect + spoken question + first reply audio | {fresh['question_to_reply_s']:.1f} "
        f"(reply {fresh['reply_after_speech_s'] * 1000:.0f} ms after the end of speech) |",
        f"| **total** | **{fresh['first_conversation_s']:.1f}** |",
        "",
        "What this machine had warm: the Debian packages (espeak-ng, sox, Node.js/npm, Chromium) were already "
        "installed, so the apt step only checked them; pip took most wheels from the machine's local wheel "
        f"directory and cache ({_pip_sources()}) and npm from its cache. A cold machine adds the apt downloads "
        "(espeak-ng, sox, nodejs/npm: tens of MB) and the pip/npm downloads (the largest wheels: onnxruntime, "
        "ctranslate2, av, piper's voice; a few hundred MB): the same install on a clean CI runner (`make test`, "
        f"cold apt, pip and npm) takes {CLEAN_CI_INSTALL}, so a cold first conversation is about "
        f"{fresh['first_conversation_s'] - fresh['install_s'] + 120:.0f} s plus network variance.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="server start-ups to time (default 3; 1 with --short)")
    parser.add_argument("--short", action="store_true", help="CI mode: one server start-up, no clone/install")
    parser.add_argument("--keep", action="store_true", help="keep the fresh clone (its path is printed)")
    parser.add_argument("--json", help="write the benchmark result (the run_all.py interface) to this file")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.short else 3)

    venv = ROOT / ".venv"
    print(f"server start-up, {runs} run(s) ...", flush=True)
    server = []
    for i in range(runs):
        server.append(server_startup(ROOT, venv))
        print(
            f"  run {i + 1}: /healthz {server[-1]['healthz_ms']:.0f} ms, /readyz {server[-1]['readyz_ms']:.0f} ms",
            flush=True,
        )
    fresh = None
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    if not args.short:
        print("time to first conversation on a fresh clone ...", flush=True)
        workdir = Path(tempfile.mkdtemp(prefix="startup-bench-"))
        try:
            fresh = fresh_machine(workdir)
        finally:
            if args.keep:
                print(f"  kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    body = markdown(server, fresh, head.strip())
    print("\n" + body)
    if args.json:
        headline = {
            "startup_ready_ms": statistics.median(r["readyz_ms"] for r in server),
            "startup_healthz_ms": statistics.median(r["healthz_ms"] for r in server),
        }
        if fresh:
            headline["first_conversation_s"] = fresh["first_conversation_s"]
            headline["install_s"] = fresh["install_s"]
        report = {
            "name": "startup",
            "title": "Start-up and time to first conversation — `hack/bench/startup.py`",
            "command": shlex.join([".venv/bin/python", "hack/bench/startup.py", *(argv or sys.argv[1:])]),
            "markdown": body,
            "headline": headline,
            "targets": [],
            "runs": server,
            "fresh_machine": fresh,
        }
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
