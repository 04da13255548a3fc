"""Fuzzing what models send the expression layer: streamed text with tags, tool-call arguments."""

from __future__ import annotations

import json
import re

import numpy as np
from avatar_runtime.expression.catalogue import MOODS
from avatar_runtime.expression.cues import BadCue, ExpressionCue, InlineCueFilter, cue_from_tool_call
from avatar_runtime.expression.layer import ExpressionLayer
from hypothesis import given
from hypothesis import strategies as st

TAG = st.builds(
    lambda action, name, level: f"[{action}:{name}{level}]",
    st.sampled_from(["mood", "gesture", "expression", "Mood", "mod"]),
    st.sampled_from([*MOODS, "wink", "shrug", "hello", "bogus", ""]),
    st.sampled_from(["", ",0.5", ":2", ", 70"]),
)
PIECE = st.one_of(
    st.text(max_size=20),
    TAG,
    st.sampled_from(["[", "]", "[[", "[mood", "\n", "]["]),
    st.sampled_from(["😊", " 👋🏽", "❤️", "\u200d", " ", "  ", "🤷\u200d♀️", "😢!"]),
)
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")
WELL_FORMED = re.compile(
    r"\[\s*(mood|expression|gesture)\s*[:=]\s*[A-Za-z_\- ]{1,24}?\s*(?:[,:]\s*[0-9.]+\s*)?\]", re.I
)


def run(deltas: list[str]) -> tuple[str, list[ExpressionCue]]:
    cue_filter = InlineCueFilter()
    items = [i for d in deltas for i in cue_filter.push(d)] + cue_filter.flush()
    return "".join(i for i in items if isinstance(i, str)), [i for i in items if isinstance(i, ExpressionCue)]


@given(st.lists(PIECE, max_size=20), st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_tag_filtering_does_not_depend_on_how_the_text_is_split(pieces, steps):
    text = "".join(pieces)
    whole = run([text])
    deltas, i, k = [], 0, 0
    while i < len(text):
        step = steps[k % len(steps)]
        deltas.append(text[i : i + step])
        i, k = i + step, k + 1
    assert run(deltas) == whole
    out, cues = whole
    assert not WELL_FORMED.search(out), out  # no tag is ever spoken
    assert not EMOJI.search(out), out  # nor an emoji
    assert len(out) <= len(text) and all(0 <= c.intensity <= 1 for c in cues)


@given(
    st.sampled_from(["set_mood", "expression", "gesture", "other"]),
    st.one_of(
        st.text(max_size=80),
        st.builds(
            json.dumps,
            st.dictionaries(
                st.sampled_from(["mood", "name", "intensity", "duration_s", "x"]),
                st.one_of(st.text(max_size=12), st.floats(allow_nan=True), st.integers(), st.none()),
            ),
        ),
    ),
)
def test_tool_arguments_make_a_valid_cue_or_a_bad_cue(name, arguments):
    try:
        cue = cue_from_tool_call(name, arguments)
    except BadCue as exc:
        assert str(exc)
        return
    layer = ExpressionLayer(seed=0)
    layer.apply_cue(cue, 0.0)
    frames = [layer.speech_frame(np.full(52, 0.5, dtype=np.float32), t / 30) for t in range(60)]
    frames += [layer.ambient_frame(2 + t / 15) for t in range(30)]
    assert all(np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1 for f in frames)
