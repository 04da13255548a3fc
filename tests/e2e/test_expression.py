"""The expressive avatar over real WebRTC: the LLM's set_mood tool call and inline tags change the frames that
follow, without changing the lip-sync; the silent avatar is alive (idle and listening frames)."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
from avatar_runtime.config import load_config
from avatar_runtime.engines.base import Transcription
from avatar_runtime.expression.cues import TAG_INSTRUCTIONS
from avatar_runtime.protocol import INDEX

from tests.e2e.analysis import loudness_and_jaw
from tests.support.openai_server import OpenAIStubServer, StubReply, StubToolCall
from tests.support.peer import AvatarPeer
from tests.support.speech import speak

REPLY = "I think that is a lovely idea. Let us talk about it for a while, shall we?"
SMILE = [INDEX["mouthSmileLeft"], INDEX["mouthSmileRight"]]
CHEEKS = [INDEX["cheekSquintLeft"], INDEX["cheekSquintRight"]]
BROWS_UP = [INDEX["browInnerUp"], INDEX["browOuterUpLeft"], INDEX["browOuterUpRight"]]


class EmotionalASR:
    """The shared Whisper engine's words, with the emotion and events SenseVoice would add (it cannot run here with
    real weights, and a random tiny SenseVoice tags at random): what the session does with them is under test."""

    def __init__(self, inner, emotion: str, events: tuple[str, ...]) -> None:
        self.inner, self.name, self.emotion, self.events = inner, "sensevoice-like", emotion, events

    async def transcribe(self, samples_16k):
        heard = await self.inner.transcribe(samples_16k)
        return Transcription(heard.text, "en", self.emotion, self.events)


class RecordingTTS:
    """The shared TTS engine, with every text it is asked to speak written down."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.texts = inner, inner.name, []

    def synthesize(self, text: str):
        self.texts.append(text)
        return self.inner.synthesize(text)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


async def typed_turn(peer: AvatarPeer, text: str) -> int:
    before = len(peer.received.events)
    peer.send({"type": "text", "text": text})
    done = await peer.wait_event("turn_end", timeout=30, after=before)
    assert done["reason"] == "done"
    return done["turn"]


def reply_frames(peer: AvatarPeer, turn: int) -> np.ndarray:
    return np.array([f.weights for _, f in peer.received.frames if f.turn == turn])


async def test_set_mood_tool_call_changes_the_face_but_not_the_lip_sync(serve):
    happy = StubReply("", (StubToolCall("set_mood", {"mood": "happy", "intensity": 0.9}),))
    with OpenAIStubServer([REPLY, happy, REPLY], token_delay_s=0.002) as stub:
        server = serve(stub)
        peer = AvatarPeer(server.url)
        await peer.connect()
        neutral_turn = await typed_turn(peer, "Shall we talk?")
        happy_turn = await typed_turn(peer, "I got the job!")

        # The model called only the tool: it got the result back and then spoke, in the mood it asked for.
        assert "tools" in stub.requests[1].body and len(stub.requests) == 3
        tool_result = {"role": "tool", "tool_call_id": "call_0", "content": '{"result": "ok"}'}
        assert stub.requests[2].messages[-1] == tool_result
        moods = peer.received.of_type("mood")
        assert moods == [{"type": "mood", "mood": "happy", "intensity": 0.9}]
        first_frame = next(at for at, f in peer.received.frames if f.turn == happy_turn)
        assert abs(peer.event_time("mood") - first_frame) < 0.1  # told with the speech it goes with

        neutral, happy_frames = reply_frames(peer, neutral_turn), reply_frames(peer, happy_turn)
        settled = slice(15, None)  # after the 0.25 s onset
        assert happy_frames[settled][:, SMILE].mean() > neutral[settled][:, SMILE].mean() + 0.2
        assert happy_frames[settled][:, CHEEKS].mean() > neutral[settled][:, CHEEKS].mean() + 0.15

        # Same words, same voice: the jaw follows the audio exactly as well as before.
        rms_n, jaw_n = loudness_and_jaw(peer.received, neutral_turn)
        rms_h, jaw_h = loudness_and_jaw(peer.received, happy_turn)
        corr_n, corr_h = np.corrcoef(rms_n, jaw_n)[0, 1], np.corrcoef(rms_h, jaw_h)[0, 1]
        assert corr_h > 0.5 and abs(corr_h - corr_n) < 0.1, (corr_n, corr_h)
        assert abs(jaw_h.mean() - jaw_n.mean()) < 0.02 and abs(jaw_h.std() - jaw_n.std()) < 0.02

        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{server.url}/metrics")).text
        assert 'avatar_expression_cues_total{action="mood",name="happy"} 1.0' in metrics
        assert 'avatar_expression_cues_total{action="gesture",name="hello"} 1.0' in metrics  # the greeting
        await peer.close()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


async def test_inline_tags_never_reach_tts_the_browser_or_the_history(serve, shared_engines):
    config = load_config(env={})
    config.expression.llm_control = "tags"
    config.expression.ambient_fps = 0  # and: no ambient frames when switched off
    tagged = "[mood: sad] I am sorry to hear that. [gesture: shrug] Maybe [mood:bogus] tomorrow [will] be better."
    spoken = "I am sorry to hear that. Maybe tomorrow [will] be better."
    tts = RecordingTTS(shared_engines.tts)
    with OpenAIStubServer([tagged, "Okay."], token_delay_s=0.002) as stub:
        peer = AvatarPeer(serve(stub, config, tts=tts).url)
        await peer.connect()
        turn = await typed_turn(peer, "I lost my keys.")
        request = stub.requests[0]
        assert "tools" not in request.body and request.messages[0]["content"].endswith(TAG_INSTRUCTIONS)

        assert tts.texts and not any(re.search(r"mood|gesture|shrug|bogus", t) for t in tts.texts), tts.texts
        assert _words(" ".join(tts.texts)) == _words(spoken)
        shown = "".join(e["text"] for e in peer.received.of_type("reply") if e["turn"] == turn)
        assert " ".join(shown.split()) == spoken
        assert [e["mood"] for e in peer.received.of_type("mood")] == ["sad"]
        # The hello gesture greeted the user when the session connected; the shrug came with its sentence.
        assert [e["name"] for e in peer.received.of_type("gesture")] == ["hello", "shrug"]
        sad = reply_frames(peer, turn)
        assert sad[15:, INDEX["browInnerUp"]].mean() > 0.3  # sad brows over the speech

        await typed_turn(peer, "Thanks.")
        remembered = [m["content"] for m in stub.requests[1].messages if m["role"] == "assistant"]
        assert remembered and " ".join(remembered[0].split()) == spoken
        assert not peer.received.ambient
        assert peer.received.frames[0][1].pts_ms == 0  # without ambient frames the timeline starts with the reply
        await peer.close()


async def test_idle_and_listening_frames_are_alive_and_join_the_reply_timeline(serve):
    with OpenAIStubServer(["Hello there, it is nice to meet you."]) as stub:
        peer = AvatarPeer(serve(stub).url)
        await peer.connect()
        await asyncio.sleep(3.0)
        pts = np.array([f.pts_ms for _, f in peer.received.ambient])
        ambient = np.array([f.weights for _, f in peer.received.ambient])
        # Computed at 15 fps, sent when the face moved (and every 0.5 s): fewer than 15 a second, never > 0.6 s apart.
        assert 6 <= len(ambient) < 45 and np.diff(pts).max() <= 600 and pts[-1] > 2400
        assert ambient.std(axis=0).max() > 0.05 and ambient[:, INDEX["eyeBlinkLeft"]].max() > 0.5
        assert len({tuple(np.round(w, 3)) for w in ambient}) > 0.7 * len(ambient)  # never a still face
        # The greeting (a hello gesture: smile, brows up) is over after 1.4 s; then the face idles.
        greeting, idle = ambient[pts < 1000], ambient[pts > 1700]
        assert greeting[:, SMILE].max() > idle[:, SMILE].max() + 0.2

        peer.mic.say(speak("Could you tell me a little bit about yourself, please?"))
        await peer.wait_event("user_speech", timeout=20, speaking=True)
        await peer.wait_event("user_speech", timeout=20, speaking=False)
        started, ended = peer.event_time("user_speech", speaking=True), peer.event_time("user_speech", speaking=False)
        listening = np.array([f.weights for at, f in peer.received.ambient if started + 0.5 < at < ended])
        assert len(listening) >= 3 and listening.std(axis=0).max() > 0.02
        assert listening[:, BROWS_UP].mean() > idle[:, BROWS_UP].mean() + 0.05  # attention
        acknowledged = [at for at, e in peer.received.events if e.get("name") == "acknowledge"]
        assert acknowledged and started < acknowledged[0] <= ended + 0.05  # "mm-hm" at a pause (a nod, in a browser)

        done = await peer.wait_event("turn_end", timeout=30)
        await asyncio.sleep(1.0)
        reply = [f for _, f in peer.received.frames if f.turn == done["turn"]]
        first_pts, last_pts = reply[0].pts_ms, reply[-1].pts_ms
        everything = sorted(peer.received.frames + peer.received.ambient, key=lambda pair: pair[0])
        pts = [f.pts_ms for _, f in everything]
        assert pts == sorted(pts)  # one timeline, in order
        assert not [f for _, f in peer.received.ambient if first_pts <= f.pts_ms <= last_pts]  # none during speech
        after = [f for _, f in peer.received.ambient if f.pts_ms > last_pts]
        assert len(after) >= 3 and after[0].pts_ms - last_pts < 100  # idle life resumes at once ...
        assert np.abs(after[0].weights - reply[-1].weights).max() < 0.2  # ... from the last spoken pose
        await peer.close()


async def test_the_users_emotion_reaches_the_llm_and_the_face(serve, shared_engines):
    asr = EmotionalASR(shared_engines.asr, "happy", ("laughter",))
    # The model takes 0.6 s to answer: the face's reaction shows while it thinks.
    with OpenAIStubServer(["That is wonderful news!"], first_token_delay_s=0.6) as stub:
        peer = AvatarPeer(serve(stub, asr=asr).url)
        await peer.connect()
        await asyncio.sleep(2.0)  # past the greeting
        peer.mic.say(speak("I got the job today."))
        transcript = await peer.wait_event("transcript", timeout=30)
        assert transcript["emotion"] == "happy" and transcript["events"] == ["laughter"]
        await peer.wait_event("turn_end", timeout=30)
        asked = stub.last_request.messages[-1]["content"]
        assert asked == f"[voice: the user sounds happy; heard: laughter] {transcript['text']}"
        # The face mirrored the user's joy between their words and the answer (ambient frames, thinking).
        heard_at = peer.event_time("transcript")
        reply_starts = min(at for at, _ in peer.received.frames)
        mirrored = np.array([f.weights for at, f in peer.received.ambient if heard_at <= at < reply_starts])
        before = np.array([f.weights for at, f in peer.received.ambient if heard_at - 1.5 <= at < heard_at - 0.5])
        assert len(mirrored) >= 3 and mirrored[:, SMILE].max() > before[:, SMILE].max() + 0.15
        await peer.close()
