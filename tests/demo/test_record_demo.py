"""hack/demo/record_demo.py for real (~40 s on 2 cores): the runtime with the embedded defaults, the built web client
in headless Chromium, the scripted conversation, and what it writes — so the README's demo can always be re-recorded
(the script hooks into the page's App object, which this notices changing)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.browser import require_browser

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["greeting", "listening", "thinking", "answering-happy", "answering-sad", "idle"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    require_browser()
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "hack/demo/record_demo.py", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return {"out": out, "stdout": done.stdout, "meta": json.loads((out / "frames.json").read_text())}


def test_writes_six_frames_a_contact_sheet_and_their_description(demo):
    out, meta = demo["out"], demo["meta"]
    assert [f["label"] for f in meta["frames"]] == LABELS
    for f in meta["frames"]:
        assert png_size(out / f["file"]) == (360, 360)
        assert f["bytes"] == (out / f["file"]).stat().st_size
        assert set(f["weights"]) >= {"mouthSmileLeft", "mouthSmileRight", "browInnerUp", "jawOpen", "eyeBlinkLeft"}
    assert png_size(out / "expressive-avatar.png") == (meta["sheet"]["width"], meta["sheet"]["height"])
    assert sum(p.stat().st_size for p in out.iterdir()) < 1_500_000
    assert "expressive-avatar.png" in demo["stdout"]


def test_the_conversation_happened_with_its_moods(demo):
    turns = demo["meta"]["conversation"]
    assert len(turns) == 2
    assert turns[0]["avatar"].startswith("Hello") and "mood happy" in turns[0]["cues"]
    assert turns[1]["avatar"].startswith("I'm sorry to hear that") and "mood sad" in turns[1]["cues"]


def test_each_frame_shows_its_moment(demo):
    frames = {f["label"]: f for f in demo["meta"]["frames"]}
    for label in ("greeting", "listening", "answering-happy", "answering-sad", "idle"):  # thinking lasts ~0.1 s
        assert frames[label]["inWindow"], frames[label]
    assert frames["greeting"]["trigger"]["event"] == "gesture hello"
    assert frames["greeting"]["weights"]["mouthSmile"] > 0.2
    assert frames["listening"]["chatState"] == "Listening"
    happy, sad = frames["answering-happy"], frames["answering-sad"]
    assert happy["chatState"] == sad["chatState"] == "Responding"
    assert (happy["moodShown"], sad["moodShown"]) == ("happy", "sad")
    assert happy["weights"]["mouthSmile"] > 0.3 > sad["weights"]["mouthSmile"]
    assert sad["weights"]["browInnerUp"] > 0.3 and sad["weights"]["mouthFrown"] > 0.1
    assert frames["idle"]["chatState"] == "Idle" and frames["idle"]["weights"]["mouthSmile"] < 0.1
