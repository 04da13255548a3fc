"""The browser client (web/) against the real runtime, in Debian Chromium with a fake microphone.

Each test starts the runtime on loopback (shared engines, a stub OpenAI server as the LLM, the p2-1 LAM avatar),
and runs one Node script (tests/web/client_*.mjs) that drives the page and reports what it saw as JSON; the
thresholds live here. WebGL is SwiftShader (software, ~1 FPS for the LAM renderer on 2 cores), so the scripts wait
on what the page shows, with generous timeouts, and never measure FPS.

Measured on the 2-core reference machine (800x600, body clips frozen, head box ≈ 150x200 px):
- full loop ≈ 35-55 s; while the avatar speaks (11-15 rendered frames), the mouth/jaw region differs from the
  resting face by up to mean |ΔRGB| 8-12.6 / 830-1200 px changed (frames with jawOpen 0.2-0.36), the upper face by
  0-90 px in all; after the reply the stills are bit-identical (0 / 0) and equal to the face before the
  conversation. Software WebGL stalls the page's main thread for up to ~1-3 s, longer than the playout delay, so
  a few of the renderer's requests find their frame not yet handled (reported as weightCallsWhileSpeaking).
- lip sync (loudness of the reply audio as heard vs jawOpen handed to the renderer): correlation peak at -15..-5 ms
  with the playout delay compensated (jitter buffer 30-440 ms + ~40 ms output), -70..-440 ms when frames play on
  arrival (negative: the mouth moves before the sound).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from avatar_runtime.config import load_config

from tests.support.openai_server import OpenAIStubServer
from tests.support.speech import speak, write_wav
from tests.web.browser import REPO, run_script

WEB = REPO / "web"
DIST = WEB / "dist"
P21 = REPO.parent / "shared" / "fixtures" / "lam" / "p2-1.zip"
QUESTION = "Hello, can you tell me your name, please?"  # plain words: Whisper tiny garbles "avatar"
REPLY = (
    "My name is Ava, and I am a talking avatar made of thousands of tiny colored splats. I listen to what you "
    "say, think about it, and answer you out loud. Ask me anything you like!"
)
RATE = 48000
TAIL_SILENCE_S = 90  # Chromium loops the fake-microphone file: the question must not come back within a test

# Thresholds (see the module docstring for the measurements behind them).
MIN_FOREGROUND = 0.02  # head and shoulders cover ~6 % of the 800x600 canvas; blank is 0
SPEAKING_MOUTH_MIN = (3.0, 200)  # the strongest speaking frame vs the resting face: (mean, changed px)
MOUTH_OVER_UPPER_MIN = 2.0  # changed px summed over speaking frames: mouth/jaw vs upper face (measured ~6x)
STILL_MAX = 0.5  # mean |ΔRGB| between resting stills (measured 0)
SYNC_MAX_MS = 45  # |lag| of the loudness/jawOpen correlation peak


def _sources_newer_than(target: Path) -> bool:
    sources = [WEB / "index.html", WEB / "vite.config.js", WEB / "package.json", *(WEB / "src").rglob("*")]
    built = target.stat().st_mtime
    return any(path.is_file() and path.stat().st_mtime > built for path in sources)


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """web/dist, built now if missing or older than its sources (the install script builds it too)."""
    index = DIST / "index.html"
    if not index.exists() or _sources_newer_than(index):
        built = subprocess.run(["npx", "vite", "build", "--logLevel", "warn"], cwd=WEB, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert built.returncode == 0, f"vite build failed:\n{built.stdout}\n{built.stderr}"
    return DIST


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Fake-microphone files: the spoken question (1 s lead-in, long silent tail) and plain silence."""
    tmp = tmp_path_factory.mktemp("web-media")
    question = speak(QUESTION, sample_rate=RATE)
    padded = np.concatenate([np.zeros(RATE, np.float32), question, np.zeros(TAIL_SILENCE_S * RATE, np.float32)])
    write_wav(tmp / "question.wav", padded, RATE)
    write_wav(tmp / "silence.wav", np.zeros(5 * RATE, np.float32), RATE)
    return {"question": tmp / "question.wav", "silence": tmp / "silence.wav"}


@pytest.fixture
def runtime(serve, web_dist, tmp_path):
    """`runtime(llm="stub", **server_settings)` → the runtime serving web/dist and the p2-1 avatar; its LLM the
    stub server, or with llm="embedded" the offline responder (what a runtime without an endpoint uses)."""
    avatars = tmp_path / "avatars"
    avatars.mkdir()
    shutil.copy(P21, avatars / "p2-1.zip")
    stub = OpenAIStubServer(replies=lambda _request: REPLY, token_delay_s=0.01).start()

    def start(llm: str = "stub", avatar: str = "p2-1", **server):
        config = load_config(env={})
        config.avatar.dir = str(avatars)
        config.avatar.name = avatar
        config.server.web_dir = str(web_dist)
        return serve(stub if llm == "stub" else None, config=config, **server)

    yield start
    stub.stop()


def _artifacts(tmp_path: Path) -> str:
    """Where the scripts save screenshots: $WEB_TEST_SCREENSHOTS when set (to look at them), else tmp_path."""
    out = Path(os.environ.get("WEB_TEST_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return str(out)


def test_full_loop_spoken_question_answered_with_moving_mouth(runtime, media, tmp_path):
    server = runtime()
    out = _artifacts(tmp_path)
    r = run_script("client_full_loop.mjs", "--url", server.url, "--wav", str(media["question"]), "--out", out,
                   timeout_s=240)  # fmt: skip
    Path(out, "web_full_loop.json").write_text(json.dumps(r, indent=1))  # the measurements, for a failure's reader
    assert "error" not in r, r.get("error")
    assert r["avatar"]["avatar"] == "ready", r["avatar"]
    assert r["foregroundFraction"] > MIN_FOREGROUND, "the avatar canvas is blank"
    assert not [line for line in r["logs"] if line.startswith("pageerror")], r["logs"]

    # The fake microphone's question was heard and transcribed; the stub's reply streamed into the transcript.
    heard = " ".join(r["text"]["user"]).lower()
    assert "your name" in heard, r["text"]["user"]
    assert any(REPLY[:40] in line for line in r["text"]["avatar"]), r["text"]["avatar"]
    assert r["stats"]["framesReceived"] > 100  # ~10 s of speech at 30 fps

    # While it speaks, the mouth moves on screen (the body is frozen: only the expression changes pixels)…
    speaking = r["speakingVsRest"]
    assert r["speakingFrames"] >= 3, r["frames"]
    strongest = max(speaking, key=lambda m: m["mouth"]["mean"])["mouth"]
    assert strongest["mean"] >= SPEAKING_MOUTH_MIN[0] and strongest["changed"] >= SPEAKING_MOUTH_MIN[1], speaking
    mouth = sum(m["mouth"]["changed"] for m in speaking)
    upper = sum(m["upperFace"]["changed"] for m in speaking)
    assert mouth >= MOUTH_OVER_UPPER_MIN * max(upper, 1), (mouth, upper)
    # The body follows the conversation: it listens while the server hears the user (`user_speech`), thinks,
    # speaks, and idles once the reply has been heard. (The chat states are sampled from before the connection;
    # the event log starts after it, so it may miss the first `user_speech`: the states are what is checked.)
    states = [s for i, s in enumerate(r["chatStates"]) if i == 0 or s != r["chatStates"][i - 1]]
    assert states[-3:] == ["Thinking", "Responding", "Idle"], r["chatStates"]
    assert "Listening" in states[:-3], r["chatStates"]
    # …and once it is done, the face settles: back to the neutral face it had before the conversation, or, where
    # the runtime sends ambient frames (idle life: blinks, gaze, breathing), at least no more speech on the mouth.
    assert len(r["settledConsecutive"]) >= 2
    if r["stats"]["ambientFramesReceived"]:
        calm = strongest["mean"] / 2
        assert all(m["mouth"]["mean"] <= calm for m in r["settledConsecutive"]), r["settledConsecutive"]
    else:
        assert all(m["mouth"]["mean"] <= STILL_MAX for m in r["settledConsecutive"]), r["settledConsecutive"]
        assert r["restVsIdle"]["mouth"]["mean"] <= STILL_MAX, r["restVsIdle"]


def test_lip_sync_follows_the_audio_as_heard(runtime, media, tmp_path):
    server = runtime()
    r = run_script("client_sync.mjs", "--url", server.url, "--wav", str(media["silence"]), timeout_s=180)
    Path(_artifacts(tmp_path), "web_lip_sync.json").write_text(json.dumps(r, indent=1))
    assert "error" not in r, r.get("error")
    assert r["speechFraction"] > 0.2, "the reply audio did not play in the page"
    assert r["playoutDelayMs"] and r["playoutDelayMs"]["p50"] > 0, "no playout delay measured from getStats()"
    assert r["peakCorrelation"] > 0.4, r["curve"]
    assert abs(r["jawLagMs"]) <= SYNC_MAX_MS, r


def test_server_full_shows_message_and_countdown_then_gets_in(runtime, media, tmp_path):
    server = runtime(llm="embedded", concurrent_limit=1, retry_after_s=3)
    r = run_script("client_errors.mjs", "--scenario", "full", "--url", server.url, "--wav", str(media["silence"]),
                   "--out", _artifacts(tmp_path))  # fmt: skip
    assert "error" not in r, (r.get("error"), r["steps"])
    assert r["notice"] and "offline" in r["notice"], "no notice that replies come from the offline responder"
    refused = next(s for s in r["steps"] if s["name"] == "second refused")
    assert refused["alertKind"] == "capacity" and "full" in refused["alert"] and "busy" in refused["alert"], refused
    assert "Retrying in" in r["countdownText"]
    assert r["steps"][-1]["connection"] == "connected"
    assert r["retriedAfterS"] < 30
    assert not r["pageErrors"], r["pageErrors"]


def test_denied_microphone_offers_text_only_mode_where_typing_and_interrupt_work(runtime, media, tmp_path):
    server = runtime()
    r = run_script("client_errors.mjs", "--scenario", "nomic", "--url", server.url, "--wav", str(media["silence"]),
                   "--out", _artifacts(tmp_path))  # fmt: skip
    assert "error" not in r, (r.get("error"), r["steps"])
    refused, answered, interrupted = r["steps"]
    assert refused["alertKind"] == "microphone" and "denied" in refused["alert"], refused
    assert "text only" in refused["alert"]
    assert r["modeVisible"], "the page does not say it is in text-only mode"
    assert answered["user"] == ["Hello from the keyboard"], answered
    assert any(REPLY[:40] in line for line in answered["avatar"]), answered
    assert interrupted["avatar"][-1].endswith("(interrupted)"), interrupted["avatar"]
    assert not r["pageErrors"], r["pageErrors"]


def test_lost_connection_says_so_and_reconnects(runtime, media, tmp_path):
    server = runtime()
    r = run_script("client_errors.mjs", "--scenario", "lost", "--url", server.url, "--wav", str(media["silence"]),
                   "--out", _artifacts(tmp_path))  # fmt: skip
    assert "error" not in r, (r.get("error"), r["steps"])
    lost, back = r["steps"]
    assert lost["alertKind"] == "lost" and "Reconnect" in lost["alert"] and lost["connection"] == "idle", lost
    assert back["connection"] == "connected" and any(REPLY[:40] in line for line in back["avatar"]), back


def test_server_shutdown_reconnects_by_itself(runtime, media, tmp_path):
    """A draining server ends its sessions with `error server_shutdown`: the page says so and opens a new session
    on its own (behind a load balancer: another pod), without the "connection lost" banner."""
    server = runtime()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        page = pool.submit(run_script, "client_errors.mjs", "--scenario", "shutdown", "--url", server.url,
                           "--wav", str(media["silence"]), "--out", _artifacts(tmp_path))  # fmt: skip

        # Wait for the session's data channel, not just the session: a session counts from its POST, and a
        # shutdown before the channel opens cannot tell the page anything (it then shows "connection lost").
        def channel_open() -> bool:
            sessions = server.runtime.sessions._sessions.values()
            return any(s._channel is not None and s._channel.readyState == "open" for s in sessions)

        deadline = time.monotonic() + 60
        while not server.call(channel_open):
            assert time.monotonic() < deadline and not page.done(), "the page never opened a session"
            time.sleep(0.1)
        server.submit(server.runtime.sessions.close_all())
        r = page.result()
    assert "error" not in r, (r.get("error"), r["steps"])
    first, second = r["sessions"]
    assert first != second, r
    assert any("shutting down" in line for line in r["system"]), r["system"]
    (back,) = r["steps"]
    assert back["alert"] is None and back["connection"] == "connected", back
    assert any(REPLY[:40] in line for line in back["avatar"]), back


def test_bad_token_asks_for_one_and_the_right_token_connects(runtime, media, tmp_path):
    server = runtime(auth_token="s3cret-token")
    r = run_script("client_errors.mjs", "--scenario", "auth", "--url", server.url, "--wav", str(media["silence"]),
                   "--token", "s3cret-token", "--out", _artifacts(tmp_path))  # fmt: skip
    assert "error" not in r, (r.get("error"), r["steps"])
    assert r["tokenFieldVisible"], "authRequired but no token field"
    missing, wrong, right = r["steps"]
    assert missing["alertKind"] == "auth" and "needs an access token" in missing["alert"], missing
    assert wrong["alertKind"] == "auth" and "not accepted" in wrong["alert"], wrong
    assert right["connection"] == "connected" and right["alert"] is None, right


@pytest.mark.parametrize(
    ("scenario", "avatar", "expected"),
    [("nowebgl", "p2-1", "no WebGL2"), ("noavatar", "missing", "'missing' is not in")],
)
def test_without_the_avatar_the_conversation_still_works(runtime, media, tmp_path, scenario, avatar, expected):
    server = runtime(avatar=avatar)
    r = run_script("client_errors.mjs", "--scenario", scenario, "--url", server.url, "--wav", str(media["silence"]),
                   "--out", _artifacts(tmp_path))  # fmt: skip
    assert "error" not in r, (r.get("error"), r["steps"])
    failed, talked = r["steps"]
    status = failed["avatarStatus"]
    assert status.startswith("The avatar cannot be shown") and expected in status, failed
    assert "conversation still works" in status
    assert talked["connection"] == "connected" and any(REPLY[:40] in line for line in talked["avatar"]), talked
    assert r["framesReceived"] > 0  # expression frames still flow; nothing breaks without a renderer
    assert not r["pageErrors"], r["pageErrors"]


def test_every_avatar_in_the_directory_is_offered_and_can_be_picked(runtime, tmp_path):
    avatars = tmp_path / "avatars"  # the `runtime` fixture's avatar directory, holding p2-1.zip
    with zipfile.ZipFile(P21) as source, zipfile.ZipFile(avatars / "second.zip", "w") as copy:
        for item in source.infolist():  # the same avatar under another name: a "dropped-in" LAM export
            copy.writestr(item.filename.replace("p2-1", "second", 1), source.read(item))
    (avatars / "broken.zip").write_bytes(b"this is not a zip file")
    server = runtime(avatar="p2-1")
    r = run_script("client_avatars.mjs", "--url", server.url, "--pick", "second", timeout_s=300)
    by_name = {o["name"]: o for o in r["options"]}
    assert set(by_name) == {"broken", "p2-1", "second"} and r["visible"]
    assert by_name["p2-1"]["selected"] and not by_name["second"]["disabled"]
    assert by_name["broken"]["disabled"] and "zip" in by_name["broken"]["title"].lower()
    assert r["avatarState"] == "ready" and "avatar=second" in r["search"]
    assert "second" in r["zipRequests"]  # the picked avatar was really fetched
