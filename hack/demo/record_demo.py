#!/usr/bin/env python3
"""Record the README's demo: the default avatar greeting, listening, thinking and answering in two moods.

The real runtime (`avatar-runtime serve --no-tls`, embedded offline defaults, a fixed `expression.seed` so the idle
motion repeats) serves the built web client and the default avatar; headless Chromium opens the page with a fake
microphone playing a WAV made here with espeak-ng:

    0 s       silence — the avatar greets (on connect the server sends `gesture hello`)
    6 s       "Hi there!"          → "Hello! How can I help you today?" in the happy mood, with a hello gesture
    ~17 s     "I feel so tired and sad today."  → "I'm sorry to hear that. …" in the sad mood
    then      silence (the fake microphone loops the file: it is long enough to end first)

("Hi there!" rather than "Hello there!": Whisper tiny.en hears espeak-ng's "Hello there" as "The low air".)
hack/demo/record_demo.mjs frames the head and photographs the avatar at moments set by the data-channel events
(see its header), and writes into --out (default docs/demo/): one PNG per moment, the contact sheet
expressive-avatar.png (composed with a 2D canvas in the browser) and frames.json (per frame: time since connect,
the triggering event, the rule that chose it, the ARKit weights it shows).

    .venv/bin/python hack/demo/record_demo.py [--out docs/demo] [--keep]      (or: make demo)

Takes ~1 minute (software WebGL; the web client is built first when web/dist is missing or older than web/src).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from livesessions.server import ServeProcess  # noqa: E402

WEB = ROOT / "web"
RECORDER = Path(__file__).with_name("record_demo.mjs")
AVATAR = ROOT / "avatars" / "default.zip"
SEED = 7  # expression.seed: the same blinks and glances on every run
RATE = 48000
# The user's side: (silence before, words); the rest of the file is silence.
SCRIPT = [(6.0, "Hi there!"), (10.0, "I feel so tired and sad today.")]
TAIL_S = 30.0  # after the last words: the conversation ends long before the file loops
WPM = 140  # espeak-ng's speed: Whisper tiny.en transcribes both lines correctly at this rate


class DemoError(Exception):
    """A failure with a message for the person running the script."""


def log(start: float, line: str) -> None:
    print(f"[{time.monotonic() - start:5.1f} s] {line}", flush=True)


def check_tools() -> None:
    missing = [tool for tool in ("node", "npx", "espeak-ng", "sox") if shutil.which(tool) is None]
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(chromium).exists():
        missing.append(f"chromium ({chromium})")
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        missing.append("web/node_modules/playwright-core")
    if missing:
        raise DemoError(f"missing: {', '.join(missing)} — run `make test` once (it installs the browser test stack)")
    if not AVATAR.is_file():
        raise DemoError(f"{AVATAR.relative_to(ROOT)} is missing — `make install` generates it "
                        "(hack/make_default_avatar.py)")  # fmt: skip


def ensure_web_dist(start: float) -> Path:
    """web/dist, built now when missing or older than its sources (as tests/web does)."""
    dist = WEB / "dist"
    index = dist / "index.html"
    sources = [WEB / "index.html", WEB / "vite.config.js", WEB / "package.json", *(WEB / "src").rglob("*")]
    if index.exists() and not any(p.is_file() and p.stat().st_mtime > index.stat().st_mtime for p in sources):
        return dist
    log(start, "building the web client (npx vite build) …")
    built = subprocess.run(["npx", "vite", "build", "--logLevel", "warn"], cwd=WEB, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    if built.returncode != 0:
        raise DemoError(f"vite build failed:\n{built.stdout}\n{built.stderr}")
    return dist


def make_microphone(tmp: Path) -> tuple[Path, list[dict]]:
    """The fake microphone's WAV (48 kHz mono) and when each line starts and ends in it."""
    parts, lines, at = [], [], 0.0
    for i, (pause_s, text) in enumerate(SCRIPT):
        spoken = tmp / f"line{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(WPM), "-w", str(spoken), "--", text], check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        part = tmp / f"part{i}.wav"
        tail = TAIL_S if i == len(SCRIPT) - 1 else 0.0
        subprocess.run(["sox", str(spoken), "-r", str(RATE), "-b", "16", "-c", "1", str(part), "pad", str(pause_s),
                        str(tail)], check=True, capture_output=True, timeout=60)  # fmt: skip
        with wave.open(str(spoken)) as w:
            length = w.getnframes() / w.getframerate()
        lines.append({"text": text, "from_s": round(at + pause_s, 2), "to_s": round(at + pause_s + length, 2)})
        with wave.open(str(part)) as w:
            at += w.getnframes() / w.getframerate()
        parts.append(part)
    mic = tmp / "microphone.wav"
    subprocess.run(["sox", *map(str, parts), str(mic)], check=True, capture_output=True, timeout=60)
    return mic, lines


def runtime_config(dist: Path) -> dict:
    """The embedded offline defaults, plus what a demo needs: our web client and avatar, a fixed idle seed."""
    return {
        "server": {"web_dir": str(dist), "drain_timeout_s": 0.0},
        "avatar": {"dir": str(AVATAR.parent), "name": AVATAR.stem},
        "expression": {"seed": SEED},
        "tls": {"enabled": False},
    }


def record(url: str, mic: Path, out: Path, timeout_s: float, levels: int, clock_s: float) -> dict:
    """Run record_demo.mjs (its progress lines pass through); its last stdout line is the result."""
    env = {"NODE_PATH": str(WEB / "node_modules"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if "CHROMIUM_PATH" in os.environ:
        env["CHROMIUM_PATH"] = os.environ["CHROMIUM_PATH"]
    args = ["node", str(RECORDER), "--url", url, "--wav", str(mic), "--out", str(out), "--timeout", str(timeout_s),
            "--levels", str(levels), "--clock", f"{clock_s:.1f}"]  # fmt: skip
    try:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=None, text=True, cwd=WEB, env=env,
                              timeout=timeout_s + 240)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DemoError(f"the browser did not finish within {timeout_s + 240:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise DemoError(f"record_demo.mjs exited {done.returncode} without a result:\n{done.stdout}") from None
    if not result.get("ok"):
        raise DemoError(f"recording failed: {result.get('error')}\npage: {json.dumps(result.get('page'))}\n"
                        f"browser log: {json.dumps(result.get('logs'))}")  # fmt: skip
    return result


def summary(out: Path, lines: list[dict]) -> list[str]:
    """frames.json completed with the microphone's script; lines for the end of the run."""
    meta = json.loads((out / "frames.json").read_text(encoding="utf-8"))
    meta["microphone"] = {"wpm": WPM, "lines": lines}
    (out / "frames.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    rows = []
    for f in meta["frames"]:
        w = f["weights"]
        rows.append(
            f"  {f['file']:<24} {f['bytes'] / 1000:5.0f} kB  {f['tSinceConnectS']:6.2f} s  "
            f"smile {w['mouthSmile']:.2f}  inner brows {w['browInnerUp']:.2f}  frown {w['mouthFrown']:.2f}  "
            f"jaw {w['jawOpen']:.2f}  blink {w['eyeBlinkLeft']:.2f}  gaze up {w['eyeLookUp']:.2f}"
            + ("" if f["inWindow"] else "  (outside its moment)")
        )
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    for turn in meta["conversation"]:
        cues = ", ".join(turn["cues"])
        rows.append(f"  turn {turn['turn']}: user “{turn['user']}” → avatar “{turn['avatar']}” ({cues})")
    sheet = meta["sheet"]
    rows.append(f"  {sheet['file']} {sheet['width']}×{sheet['height']} {sheet['bytes'] / 1000:.0f} kB; "
                f"{out} holds {total / 1e6:.2f} MB")  # fmt: skip
    return rows


def run(args: argparse.Namespace, tmp: Path, start: float) -> list[str]:
    check_tools()
    dist = ensure_web_dist(start)
    mic, lines = make_microphone(tmp)
    log(start, "microphone: " + "; ".join(f"{x['from_s']:.1f}–{x['to_s']:.1f} s “{x['text']}”" for x in lines))
    out = args.out.resolve()
    with ExitStack() as stack:
        try:
            server = stack.enter_context(ServeProcess(runtime_config(dist)))
        except RuntimeError as e:
            raise DemoError(f"the runtime did not start: {e}") from None
        log(start, f"runtime ready at {server.url} in {server.started_in_s:.1f} s; opening headless Chromium …")
        recorded = tmp / "out"  # written into --out only when complete: a failed run leaves the old demo alone
        try:
            result = record(server.url, mic, recorded, args.timeout, args.levels, time.monotonic() - start)
        except DemoError as e:
            tail = [line for line in server.output().splitlines() if "aioice" not in line][-30:]
            raise DemoError(f"{e}\n--- runtime log (last lines) ---\n" + "\n".join(tail)) from None
    out.mkdir(parents=True, exist_ok=True)
    for old in [out / "frames.json", out / "expressive-avatar.png", *out.glob("[0-9][0-9]-*.png")]:
        old.unlink(missing_ok=True)
    for new in recorded.iterdir():
        shutil.copyfile(new, out / new.name)
    rows = summary(out, lines)
    log(start, f"done: {len(result['frames'])} frames and the contact sheet in {out}")
    if result.get("outside"):
        rows.append(f"note: no shot inside its moment for {', '.join(result['outside'])}: the nearest one is shown")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo", help="output folder (default docs/demo)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds allowed for the conversation")
    parser.add_argument("--levels", type=int, default=256,
                        help="colour levels per channel in the PNGs (256: lossless; 32 saves ~30 %%)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the microphone WAV and print where it is")
    args = parser.parse_args(argv)
    start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="avatar-demo-"))
    try:
        rows = run(args, tmp, start)
    except DemoError as e:
        print(f"record_demo: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"microphone WAV kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
