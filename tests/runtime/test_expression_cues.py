"""How expressions are asked for: inline tags taken out of streamed text, tool calls, voice notes, prompts."""

from __future__ import annotations

import json

import pytest
from avatar_runtime.engines.base import Transcription
from avatar_runtime.expression.cues import (
    TAG_INSTRUCTIONS,
    TOOLS,
    BadCue,
    ExpressionCue,
    InlineCueFilter,
    cue_from_tool_call,
    make_cue,
    voice_context,
)
from avatar_runtime.pipeline.prompt import build_messages

TEXT = "[mood:happy] Oh, [that] is great news! [gesture: wink]See you [expression:surprised,0.9] soon. [mood:bogus]Bye"


def run_filter(deltas: list[str]) -> tuple[str, list[ExpressionCue], list[str]]:
    cue_filter = InlineCueFilter()
    items = [i for d in deltas for i in cue_filter.push(d)] + cue_filter.flush()
    text = "".join(i for i in items if isinstance(i, str))
    return text, [i for i in items if isinstance(i, ExpressionCue)], cue_filter.rejected


def test_tags_come_out_of_the_text_as_cues_in_order():
    text, cues, rejected = run_filter([TEXT])
    assert text == " Oh, [that] is great news! See you  soon. Bye"
    assert [(c.action, c.name) for c in cues] == [("mood", "happy"), ("gesture", "wink"), ("expression", "surprised")]
    assert cues[2].intensity == pytest.approx(0.9) and cues[2].duration_s == pytest.approx(1.5)
    assert len(rejected) == 1 and "bogus" in rejected[0]


def test_a_tag_split_anywhere_across_deltas_is_still_found():
    expected = run_filter([TEXT])
    for cut in range(1, len(TEXT)):
        assert run_filter([TEXT[:cut], TEXT[cut:]]) == expected, cut
    assert run_filter(list(TEXT)) == expected  # one character per delta


def test_brackets_that_are_not_tags_stay_text():
    for text in ["array[0] and [1, 2]", "a [ b", "[mood happy]", "[" + "x" * 80, "see [note]\n[mood", "[[mood:sad]"]:
        out, cues, _ = run_filter([text])
        if text == "[[mood:sad]":
            assert out == "[" and cues[0].name == "sad"
        else:
            assert out == text and not cues
    assert run_filter(["Hi [mood:sad]there"])[0] == "Hi there"


def test_text_is_released_without_waiting_except_after_an_open_bracket():
    cue_filter = InlineCueFilter()
    assert cue_filter.push("Hello there") == ["Hello there"]
    assert cue_filter.push(" and [mo") == [" and"]  # held: may become a tag (and the space an emoji's)
    assert cue_filter.push("od:sad] so") == [" ", ExpressionCue("mood", "sad"), " so"]


def test_tool_calls_become_cues_and_bad_ones_say_why():
    assert cue_from_tool_call("set_mood", '{"mood": "Happy", "intensity": 0.9}') == ExpressionCue("mood", "happy", 0.9)
    assert cue_from_tool_call("gesture", '{"name": "eye-roll"}') == ExpressionCue("gesture", "eye_roll")
    cue = cue_from_tool_call("expression", '{"name": "sad", "duration_s": 99}')
    assert cue.duration_s == 10.0
    for name, args, why in [
        ("set_mood", '{"mood": "ecstatic"}', "unknown mood 'ecstatic'"),
        ("set_mood", "{}", "'mood' is required"),
        ("set_mood", "not json", "not valid JSON"),
        ("set_mood", "[1]", "JSON object"),
        ("set_mood", '{"mood": "sad", "intensity": "very"}', "intensity must be a number"),
        ("gesture", '{"name": "acknowledge"}', "unknown gesture"),
        ("dance", "{}", "unknown tool"),
    ]:
        with pytest.raises(BadCue, match=why):
            cue_from_tool_call(name, args)
    assert make_cue("mood", "sad", 70).intensity == pytest.approx(0.7)  # a percentage


def test_tools_are_valid_openai_function_declarations():
    names = [t["function"]["name"] for t in TOOLS]
    assert names == ["set_mood", "expression", "gesture"]
    for tool in TOOLS:
        assert tool["type"] == "function" and tool["function"]["parameters"]["type"] == "object"
        json.dumps(tool)  # serialisable as it is sent
    mood_enum = TOOLS[0]["function"]["parameters"]["properties"]["mood"]["enum"]
    assert "happy" in mood_enum and "thinking" in mood_enum and "neutral" in mood_enum
    assert "acknowledge" not in TOOLS[2]["function"]["parameters"]["properties"]["name"]["enum"]


def test_cue_events_for_the_browser():
    assert ExpressionCue("mood", "sad", 0.66).as_event() == {"type": "mood", "mood": "sad", "intensity": 0.66}
    assert ExpressionCue("gesture", "hello").as_event() == {"type": "gesture", "name": "hello"}
    assert ExpressionCue("expression", "surprised", 0.9, 1.5).as_event() is None  # all in the frames


def test_voice_notes_say_what_was_heard_besides_words():
    assert voice_context("HAPPY", ("laughter",)) == "[voice: the user sounds happy; heard: laughter]"
    assert voice_context("neutral", ()) is None and voice_context(None, ()) is None
    assert voice_context(None, ("applause", "speech")) == "[voice: heard: applause]"


def test_messages_carry_the_voice_note_for_this_request_only():
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    heard = Transcription("I got the job", language="en", emotion="happy", events=("laughter",))
    messages = build_messages("Be kind.", history, "I got the job", history_turns=8, heard=heard)
    assert messages == [
        {"role": "system", "content": "Be kind."},
        *history,
        {"role": "user", "content": "[voice: the user sounds happy; heard: laughter] I got the job"},
    ]
    plain = build_messages("Be kind.", history, "I got the job", history_turns=8, heard=heard, voice_cues=False)
    assert plain[-1]["content"] == "I got the job"
    tags = build_messages("Be kind.", [], "x", history_turns=0, tag_instructions=True)
    assert tags[0]["content"] == f"Be kind.\n\n{TAG_INSTRUCTIONS}" and "[mood:happy]" in TAG_INSTRUCTIONS
    repeated = build_messages("S", [*history, {"role": "user", "content": "x"}], "x", history_turns=8)
    assert [m["content"] for m in repeated] == ["S", "Hi", "Hello!", "x"]  # its own question is not doubled
    assert len(build_messages("S", history * 10, "x", history_turns=1)) == 4


def test_emoji_are_never_spoken_and_faces_become_expressions():
    text, cues, _ = run_filter(["Great news 😊! See you", " 👋🏽 soon ✨. Oh 😢", " I ❤️ 👩‍💻 code 🤔"])
    assert text == "Great news! See you soon. Oh I code"
    assert [(c.action, c.name) for c in cues] == [
        ("expression", "happy"), ("gesture", "hello"), ("expression", "sad"), ("expression", "thinking")]  # fmt: skip
    assert run_filter(list("Great news 😊! See you 👋🏽 soon")) == run_filter(["Great news 😊! See you 👋🏽 soon"])
    assert run_filter(["中文没有表情。😉"])[0] == "中文没有表情。"
