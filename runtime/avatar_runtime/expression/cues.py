"""How the conversation asks for expressions: LLM tool calls, inline tags, the user's detected emotion.

Models with tool calling get three OpenAI-style tools (`TOOLS`); for models without it the system prompt asks
for inline tags such as `[mood:happy]`, which `InlineCueFilter` takes out of the streamed text before anything
else sees it (the sentence splitter, TTS, the `reply` events, the history). Either way the result is an
`ExpressionCue`, which the reply carries in order with its sentences so it takes effect with the speech that
follows it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from .catalogue import GESTURES, MOODS

CueAction = Literal["mood", "expression", "gesture"]
# The gestures a model may ask for ("acknowledge" is the listening reaction, not the model's to make).
MODEL_GESTURES = tuple(name for name in GESTURES if name != "acknowledge")
DEFAULT_INTENSITY = 0.7
DEFAULT_EXPRESSION_S = 1.5
MAX_EXPRESSION_S = 10.0


class BadCue(ValueError):
    """A tool call or tag the layer cannot perform; the message is what the model is told."""


@dataclass(frozen=True)
class ExpressionCue:
    """One request for the face: a lasting mood, a passing expression of a mood, or a gesture."""

    action: CueAction
    name: str
    intensity: float = DEFAULT_INTENSITY
    duration_s: float | None = None  # expression: how long it is held

    def as_event(self) -> dict | None:
        """The data-channel event the browser gets when the cue takes effect; a passing expression is all in
        the frames, so it has none."""
        if self.action == "gesture":
            return {"type": "gesture", "name": self.name}
        if self.action == "mood":
            return {"type": "mood", "mood": self.name, "intensity": round(self.intensity, 2)}
        return None


def make_cue(action: str, name: str, intensity: object = None, duration_s: object = None) -> ExpressionCue:
    """Validate and build a cue; BadCue says what was wrong in words a model can act on."""
    name = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if action in ("mood", "expression"):
        if name not in MOODS:
            raise BadCue(f"unknown mood '{name}'; use one of: {', '.join(MOODS)}")
    elif action == "gesture":
        if name not in MODEL_GESTURES:
            raise BadCue(f"unknown gesture '{name}'; use one of: {', '.join(MODEL_GESTURES)}")
    else:
        raise BadCue(f"unknown action '{action}'")
    level = _number(intensity, DEFAULT_INTENSITY, "intensity")
    duration = None
    if action == "expression":
        duration = min(_number(duration_s, DEFAULT_EXPRESSION_S, "duration_s", upper=None), MAX_EXPRESSION_S)
    return ExpressionCue(action, name, min(max(level, 0.0), 1.0), duration)  # type: ignore[arg-type]


def _number(value: object, default: float, field: str, upper: float | None = 1.0) -> float:
    """A non-negative number; with an upper bound of 1, values up to 100 are read as percentages (70 → 0.7)."""
    if value is None:
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadCue(f"{field} must be a number") from None
    if number != number or number < 0:  # NaN or negative
        raise BadCue(f"{field} must be a positive number")
    if upper is None:
        return number
    if number > 100 * upper:
        raise BadCue(f"{field} must be between 0 and {upper:g}")
    return number / 100 if number > upper else number


# -- tool calling ------------------------------------------------------------------------------------------
_TOOL_TO_ACTION: dict[str, CueAction] = {"set_mood": "mood", "expression": "expression", "gesture": "gesture"}

TOOLS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "set_mood",
            "description": "Set your face's mood for what you say next; it lasts until you set another. "
            "Use it when the feeling of the conversation changes, not in every reply.",
            "parameters": {
                "type": "object",
                "properties": {
                    "mood": {"type": "string", "enum": list(MOODS)},
                    "intensity": {"type": "number", "minimum": 0, "maximum": 1, "description": "default 0.7"},
                },
                "required": ["mood"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "expression",
            "description": "Show a passing facial expression with the next sentence, then return to your mood.",
            "parameters": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [m for m in MOODS if m != "neutral"]},
                    "intensity": {"type": "number", "minimum": 0, "maximum": 1},
                    "duration_s": {"type": "number", "minimum": 0.3, "maximum": MAX_EXPRESSION_S},
                },
                "required": ["name"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "gesture",
            "description": "Make a gesture with the next sentence (hello also waves).",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": list(MODEL_GESTURES)}},
                "required": ["name"],
            },
        },
    },
]
TOOL_NAMES = frozenset(_TOOL_TO_ACTION)


def cue_from_tool_call(name: str, arguments: str) -> ExpressionCue:
    """An OpenAI tool call (function name + JSON arguments text) → a cue; BadCue if it cannot be done."""
    action = _TOOL_TO_ACTION.get(name)
    if action is None:
        raise BadCue(f"unknown tool '{name}'")
    try:
        args = json.loads(arguments or "{}")
    except (json.JSONDecodeError, RecursionError):
        raise BadCue("the arguments are not valid JSON") from None
    if not isinstance(args, dict):
        raise BadCue("the arguments must be a JSON object")
    key = "mood" if action == "mood" else "name"
    if key not in args:
        raise BadCue(f"'{key}' is required")
    return make_cue(action, args[key], args.get("intensity"), args.get("duration_s"))


# -- inline tags -------------------------------------------------------------------------------------------
TAG_INSTRUCTIONS = (
    "Your face shows feelings: to change your mood, start a sentence with a tag such as [mood:happy] "
    f"(moods: {', '.join(MOODS)}); for a gesture write [gesture:wink] (gestures: {', '.join(MODEL_GESTURES)}). "
    "Tags are not spoken; use them only when the feeling changes."
)
_TAG = re.compile(
    r"\[\s*(mood|expression|gesture)\s*[:=]\s*([A-Za-z_\- ]{1,24}?)\s*(?:[,:]\s*([0-9]*\.?[0-9]+)\s*)?\]",
    re.IGNORECASE,
)
_MAX_TAG_CHARS = 48  # longer than any tag: a '[' followed by more is ordinary text


# Emoji a model writes although it was asked not to: never read out (TTS would say "smiling face" or worse),
# and the common faces become what they show, as in browser avatar libraries (TalkingHead's emoji expressions).
_EMOJI_RUN = re.compile(r" ?[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B50-\u2B55\uFE0E\uFE0F\u200D\u20E3]+")
_EMOJI_CUES: dict[str, tuple[CueAction, str]] = {
    **dict.fromkeys("😀😃😄😁😆😊🙂☺😍🥰😘😺😸😹😂🤣😅😇🥳", ("expression", "happy")),
    **dict.fromkeys("😢😭😞😔🙁☹😟😿💔", ("expression", "sad")),
    **dict.fromkeys("😮😯😲😳🤯", ("expression", "surprised")),
    **dict.fromkeys("😨😰😱", ("expression", "fearful")),
    **dict.fromkeys("😠😡🤬", ("expression", "angry")),
    **dict.fromkeys("🤢🤮😖", ("expression", "disgusted")),
    **dict.fromkeys("🤔🧐", ("expression", "thinking")),
    **dict.fromkeys("😉😜", ("gesture", "wink")),
    "🙄": ("gesture", "eye_roll"),
    "🤷": ("gesture", "shrug"),
    "👋": ("gesture", "hello"),
}


class InlineCueFilter:
    """Streaming text → text without tags or emoji, and the cues they asked for, in order.

    A tag may arrive split over several deltas ("[mo", "od:happy]"): text from a '[' on is held back until it
    is a whole tag, or cannot become one. A well-formed tag naming something unknown is still removed (it is
    markup, never speech); a bracket that is not a tag stays text. Emoji are removed; faces become passing
    expressions (😊 → happy), 😉 👋 🙄 🤷 gestures.
    """

    def __init__(self) -> None:
        self._pending = ""
        self.rejected: list[str] = []  # tags removed without effect, for the log
        self._last_emoji_cue: ExpressionCue | None = None  # "😂😂😂" is one laugh, however it was split

    def push(self, delta: str) -> list[str | ExpressionCue]:
        self._pending += delta
        out: list[str | ExpressionCue] = []
        while self._pending:
            start = self._pending.find("[")
            if start < 0:
                out.append(self._pending)
                self._pending = ""
                break
            if start:
                out.append(self._pending[:start])
                self._pending = self._pending[start:]
            end = self._pending.find("]")
            if end < 0:
                if len(self._pending) < _MAX_TAG_CHARS and "\n" not in self._pending:
                    break  # may still become a tag
                out.append(self._pending[0])  # an ordinary '[': let it through, look again after it
                self._pending = self._pending[1:]
                continue
            candidate, self._pending = self._pending[: end + 1], self._pending[end + 1 :]
            out.extend(self._tag_or_text(candidate))
        out = _merge_text(out)
        if out and isinstance(out[-1], str) and out[-1].endswith(" "):
            # An emoji may follow (after a tag, maybe) and takes the space before it along: keep that space back.
            self._pending, out[-1] = " " + self._pending, out[-1][:-1]
        return _merge_text(self._emoji_to_cues(_merge_text(out)))

    def flush(self) -> list[str | ExpressionCue]:
        pending, self._pending = self._pending, ""
        return _merge_text(self._emoji_to_cues([pending]))

    def _emoji_to_cues(self, items: list[str | ExpressionCue]) -> list[str | ExpressionCue]:
        """Emoji runs (and the space before each) removed from the text; each known face becomes its cue, once
        for a repeated one (consecutive, nothing but emoji between)."""
        out: list[str | ExpressionCue] = []

        def text(piece: str) -> None:
            if piece:
                out.append(piece)
                self._last_emoji_cue = None

        for item in items:
            if not isinstance(item, str):
                out.append(item)
                self._last_emoji_cue = None
                continue
            last = 0
            for run in _EMOJI_RUN.finditer(item):
                text(item[last : run.start()])
                for known in (_EMOJI_CUES[ch] for ch in run.group() if ch in _EMOJI_CUES):
                    cue = make_cue(*known)
                    if cue != self._last_emoji_cue:
                        out.append(cue)
                        self._last_emoji_cue = cue
                last = run.end()
            text(item[last:])
        return out

    def _tag_or_text(self, candidate: str) -> list[str | ExpressionCue]:
        match = _TAG.fullmatch(candidate)
        if match is None:
            if len(candidate) > 1 and "[" in candidate[1:]:  # "[a [mood:x]": the first '[' is text
                return [candidate[0], *self._filter_rest(candidate[1:])]
            return [candidate]
        action, name, level = match.group(1).lower(), match.group(2), match.group(3)
        try:
            return [make_cue(action, name, level)]
        except BadCue as exc:
            self.rejected.append(f"{candidate}: {exc}")
            return []

    def _filter_rest(self, text: str) -> list[str | ExpressionCue]:
        """Filter a complete piece of text (what followed a '[' that turned out to be text)."""
        inner = InlineCueFilter()
        out = inner.push(text) + inner.flush()
        self.rejected.extend(inner.rejected)
        return out


def _merge_text(items: list[str | ExpressionCue]) -> list[str | ExpressionCue]:
    merged: list[str | ExpressionCue] = []
    for item in items:
        if isinstance(item, str):
            if not item:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += item
                continue
        merged.append(item)
    return merged


# -- the user's voice --------------------------------------------------------------------------------------
_UNREMARKABLE_EMOTIONS = frozenset({"neutral", "unknown", "emo_unknown", ""})


def voice_context(emotion: str | None, events: tuple[str, ...] = ()) -> str | None:
    """What the ASR heard besides words, as a short note for the LLM, or None when there is nothing to say."""
    notes = []
    if emotion and emotion.lower() not in _UNREMARKABLE_EMOTIONS:
        notes.append(f"the user sounds {emotion.lower()}")
    heard = [e.lower() for e in events if e and e.lower() not in ("speech",)]
    if heard:
        notes.append(f"heard: {', '.join(heard)}")
    return f"[voice: {'; '.join(notes)}]" if notes else None
