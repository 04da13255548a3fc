"""The offline default LLM: a small rule-based conversational responder that needs no model and no network.

It exists so a fresh install can hold a real (if simple) spoken conversation with nothing configured:
greetings, small talk, its own identity, the time and date, simple arithmetic, remembering the user's
name, and ELIZA-style reflections for everything else. From time to time it says that it is the offline
stand-in and how to plug in a real model (OPENAI_BASE_URL), so nobody mistakes it for the real thing.

Replies are a pure function of the message history (plus the clock for time questions): the engine is
shared by every session, so all per-conversation state is read back from the history each turn.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from fractions import Fraction

from ..expression.cues import ExpressionCue

# Marker used to find earlier notices in the history, so the notice is not repeated every turn.
NOTICE_MARKER = "OPENAI_BASE_URL"
NOTICE = (
    "By the way, I'm only the offline stand-in, and setting OPENAI_BASE_URL, for example to Ollama at "
    "http://localhost:11434/v1, gives me a real language model."
)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_NUMBER_WORDS = {**{w: i for i, w in enumerate(_ONES)}, **_TENS}
# Spoken operators, longest first so "multiplied by" wins over a bare "by".
_OPERATOR_WORDS = [
    ("multiplied by", "*"),
    ("divided by", "/"),
    ("take away", "-"),
    ("times", "*"),
    ("over", "/"),
    ("plus", "+"),
    ("minus", "-"),
    ("×", "*"),
    ("÷", "/"),
    ("−", "-"),
]
_SPOKEN_OP = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_MATH_TRIGGER = re.compile(r"\b(what|whats|how much|calculate|compute|solve|equals?|is)\b")

_NAME_PATTERNS = [
    re.compile(p, re.I)
    for p in (
        r"\bmy name is ([a-z][\w'-]*)",
        r"\bmy name's ([a-z][\w'-]*)",
        r"\bcall me ([a-z][\w'-]*)",
        r"\bi'?m called ([a-z][\w'-]*)",
    )
]
_NOT_NAMES = {"not", "a", "an", "the", "what", "is", "just", "me", "you", "it", "that", "this", "no", "so"}

_REFLECT = {
    "i": "you",
    "me": "you",
    "my": "your",
    "am": "are",
    "i'm": "you're",
    "mine": "yours",
    "myself": "yourself",
    "you": "I",
    "your": "my",
    "yours": "mine",
    "you're": "I'm",
    "yourself": "myself",
    "was": "were",
}
_ELIZA = [
    (r"\bi (?:feel|am feeling|'m feeling) (.+)", "Why do you feel {0}?"),
    (r"\bi need (.+)", "Why do you need {0}?"),
    (r"\bi want (.+)", "What would it mean to you if you got {0}?"),
    (r"\bi think (.+)", "What makes you think {0}?"),
    (r"\bi (?:like|love) (.+)", "What do you like most about {0}?"),
    (
        r"\bmy (mother|father|mom|dad|family|friend|wife|husband|partner|brother|sister|boss|job|work)\b",
        "Tell me more about your {0}.",
    ),
    (r"\bbecause (.+)", "Is that the real reason?"),
    (r"\bi(?: am|'m) (.+)", "How long have you been {0}?"),
]
_ELIZA_RE = [(re.compile(p, re.I), t) for p, t in _ELIZA]
_STATEMENT_REPLIES = [
    "I see. Tell me more about that.",
    "Interesting. How do you feel about that?",
    "Go on, I'm listening.",
    "Why do you say that?",
]
_QUESTION_REPLIES = [
    "That's a good question about {0}, but I don't know the answer.",
    "I'm not sure about {0}, to be honest.",
    "Hmm, {0} is beyond what I know.",
]
_JOKES = [
    "Why did the scarecrow win an award? Because he was outstanding in his field.",
    "I told my computer a joke about memory, but it forgot to laugh.",
    "Why don't skeletons fight each other? They don't have the guts.",
]
_GOOD_MOODS = r"(fine|good|great|well|not bad|excellent|wonderful|fantastic)"
_ANSWER_TAIL = r"( thanks?| thank you| and you| how about you| too)*"
_BAD_MOODS = r"(sad|tired|stressed|bored|lonely|angry|upset|sick|worried|anxious|exhausted|depressed)"


class EmbeddedLLM:
    """Rule-based stand-in for a language model; streams its reply word by word like a real one."""

    name = "embedded"
    embedded = True

    def __init__(self, notice_every: int = 4, clock: Callable[[], datetime] = datetime.now) -> None:
        self.notice_every = max(1, notice_every)  # the notice appears at most once per this many replies
        self.clock = clock  # injectable so tests can pin the time

    async def stream(self, messages: Sequence[dict[str, str]]) -> AsyncIterator[str | ExpressionCue]:
        """Yield the reply as word deltas, after the mood it is said in (as a model calling set_mood would);
        the sleep(0) lets barge-in and TTS run between words."""
        text = self.reply(messages)
        for cue in reply_cues(text):
            yield cue
        for i, word in enumerate(text.split()):
            yield word if i == 0 else " " + word
            await asyncio.sleep(0)

    def reply(self, messages: Sequence[dict[str, str]]) -> str:
        """The whole reply to the last user message, given the conversation so far."""
        users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
        said = users[-1].strip() if users else ""
        text = _normalize(said)
        name = _find_name(users)
        you = f", {name}" if name else ""
        turn = len(users)

        if not text:
            return "Sorry, I didn't catch that. Could you say it again?"
        if _find_name([said]):
            return f"Nice to meet you, {name}! What would you like to talk about?"
        if re.search(r"\b(whats|what is|do you know|do you remember|say) my name\b|\bwho am i\b", text):
            return f"Your name is {name}." if name else "You haven't told me your name yet. What should I call you?"
        math = _arithmetic(text)
        if math:
            return math
        now = self.clock()
        if re.search(r"\b(what time|whats the time|tell me the time|current time|time is it)\b", text):
            return f"It's {now:%I:%M %p}.".replace("It's 0", "It's ", 1)
        if re.search(r"\b(what day|the date|todays date|what date|date today|day is it)\b", text):
            return f"Today is {now:%A}, {now:%B} {now.day}, {now.year}."
        if re.search(r"\bwhat year\b", text):
            return f"It's {now.year}."
        if re.search(r"\bwhat (exactly )?are you$|\bare you (a |an )?(robot|human|real|ai|computer|bot)\b", text):
            return self._with_notice(
                "I'm a real-time talking avatar, and right now my words come from a small "
                "built-in responder rather than a language model.",
                messages,
            )
        if re.search(r"\b(your name|who are you|introduce yourself)\b", text):
            ask = f"Nice to be talking with you, {name}." if name else "What's your name?"
            return f"I'm the Gaussian Avatar, a talking avatar that runs in real time. {ask}"
        if re.search(r"\bhow are you\b|\bhow are things\b|\bhows it going\b|\bhow do you do\b", text):
            return f"I'm doing well, thank you{you}. How are you?"
        if re.search(r"\b(bye|goodbye|good night|see you later|talk to you later)\b", text):
            return f"Goodbye{you}! It was nice talking with you."
        if re.match(r"(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening))\b", text):
            return f"Hello{you}! How can I help you today?"
        # Whole-utterance match only: "well, I think..." is not an answer to "how are you".
        if re.fullmatch(rf"(i'?m|i am|im|feeling|doing)? ?(very |really |pretty )?{_GOOD_MOODS}{_ANSWER_TAIL}", text):
            return "Glad to hear it. What's on your mind today?"
        if re.search(rf"\b(i'?m|i am|im|feeling|feel) (so |very |really |a bit )?{_BAD_MOODS}\b", text):
            return "I'm sorry to hear that. Do you want to talk about what's going on?"
        if re.search(r"\b(thanks|thank you|thx|cheers)\b", text):
            return f"You're welcome{you}! Is there anything else?"
        if re.search(r"\b(what can you do|help me|what do you do|how do you work)\b", text):
            return self._with_notice(
                "I can chat a little, tell you the time and date, do simple arithmetic, and remember your name.",
                messages,
            )
        if re.search(r"\b(joke|make me laugh|something funny)\b", text):
            return _JOKES[turn % len(_JOKES)]
        if re.search(r"\b(weather|temperature outside|raining)\b", text):
            return "I can't check the weather, because I'm running offline without internet access."
        if re.search(r"\bwhat are you (doing|up to)\b", text):
            return "Just talking with you. What are you up to?"
        if re.search(r"\bcan you hear me\b", text):
            return "Yes, I can hear you."
        if re.fullmatch(r"(yes|yeah|yep|no|nope|ok|okay|sure|alright|right|cool|nice|great)( .{0,12})?", text):
            return "Okay. What would you like to talk about next?"
        return self._fallback(said, text, turn, messages)

    def _fallback(self, said: str, text: str, turn: int, messages: Sequence[dict[str, str]]) -> str:
        """Questions and statements it has no rule for: reflect them back, ELIZA style."""
        pick = zlib.crc32(f"{turn}:{text}".encode())  # deterministic, but varies when the user repeats
        plain = " ".join(re.sub(r"[^\w\s']", " ", said.replace("’", "'")).split())  # keeps the user's casing
        question = said.rstrip().endswith("?") or re.match(
            r"(what|who|where|when|why|how|which|can|could|do|does|did|is|are|will|would|should)\b", text
        )
        if question:
            # Only "what/who is X" names its topic cleanly; for other questions "that" reads better than a fragment.
            m = re.match(r"(?:what|who)(?:'s| is| are| was| were) (?!you\b|i\b|we\b|they\b|it\b)(.+)", plain, re.I)
            topic = _reflect(m.group(1)) if m and len(m.group(1).split()) <= 8 else "that"
            reply = _QUESTION_REPLIES[pick % len(_QUESTION_REPLIES)].format(topic)
            return self._with_notice(reply.replace("question about that,", "question,"), messages)
        for pattern, template in _ELIZA_RE:
            m = pattern.search(plain)
            if m and len(m.group(1).split()) <= 8:
                return template.format(_reflect(m.group(1)))  # a reflection is an answer: no notice here
        return self._with_notice(_STATEMENT_REPLIES[pick % len(_STATEMENT_REPLIES)], messages)

    def _with_notice(self, reply: str, messages: Sequence[dict[str, str]]) -> str:
        """Append the offline notice unless one of the last few replies already carried it."""
        recent = [str(m.get("content") or "") for m in messages if m.get("role") == "assistant"]
        recent = recent[-(self.notice_every - 1) :] if self.notice_every > 1 else []
        if any(NOTICE_MARKER in r for r in recent):
            return reply
        return f"{reply} {NOTICE}"


# The mood each kind of canned reply is said in (first match wins; anything else is neutral).
_REPLY_MOODS = (
    (re.compile(r"^(Hello|Hi)\b"), "happy", "hello"),
    (re.compile(r"^(Goodbye|Glad to hear|You're welcome|Nice to|I'm doing well)"), "happy", None),
    (re.compile("|".join(re.escape(joke) for joke in _JOKES)), "happy", None),
    (re.compile(r"^I'm sorry to hear"), "sad", None),
    (re.compile(r"^I can't check|^You haven't told me"), "neutral", "shrug"),
    (re.compile(r"^Hmm|question|wonder|think about|interesting", re.IGNORECASE), "thinking", None),
)


def reply_cues(reply: str) -> list[ExpressionCue]:
    """The mood (and maybe a gesture) a canned reply is said in: what a real model would ask for with tools."""
    for pattern, mood, gesture in _REPLY_MOODS:
        if pattern.search(reply):
            cues = [ExpressionCue("mood", mood, 0.7 if mood != "neutral" else 0.0)]
            return cues + ([ExpressionCue("gesture", gesture)] if gesture else [])
    return [ExpressionCue("mood", "neutral", 0.0)]


def _normalize(text: str) -> str:
    """Lowercase, keep apostrophes (dropped from "what's") and arithmetic symbols, drop other punctuation."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\b(what|how|today)'s\b", r"\1s", text)
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # "twenty-one" is a number, not a subtraction
    text = re.sub(r"[^\w\s'+\-*/×÷−.]", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    return " ".join(text.split())


def _find_name(user_messages: Sequence[str]) -> str | None:
    """The name the user most recently introduced themselves with ("my name is Anna"), if any."""
    for message in reversed(user_messages):
        for pattern in _NAME_PATTERNS:
            m = pattern.search(message)
            if m and m.group(1).lower() not in _NOT_NAMES:
                return m.group(1)[0].upper() + m.group(1)[1:]
    return None


def _reflect(fragment: str) -> str:
    """Swap first and second person so the fragment can be said back ("my job" -> "your job")."""
    words = " ".join(_REFLECT.get(w.lower(), w) for w in fragment.strip(" '").split())
    # "you" after a preposition or at the end is an object: "I love you" -> "... about me", not "about I".
    words = re.sub(r"\b(about|to|with|for|at|of|from|than|like|love) I\b", r"\1 me", words)
    words = re.sub(r"\bI$", "me", words)
    return re.sub(r"\bI are\b", "I am", re.sub(r"\byou am\b", "you are", words))


def _arithmetic(text: str) -> str | None:
    """Answer "what is 12 times 7" / "3.5 + 4 * 2" / "seven minus ten"; None when the text is not arithmetic."""
    for words, symbol in _OPERATOR_WORDS:
        text = re.sub(rf"(?<![a-z]){re.escape(words)}(?![a-z])", f" {symbol} ", text)
    text = re.sub(r"(?<=\d)\s*x\s*(?=\d)", " * ", text)
    text = re.sub(r"\b(hundred|thousand) and\b", r"\1", text)  # "one hundred and five"
    tokens: list[Fraction | str] = []
    for tok in re.findall(r"\d+(?:\.\d+)?|[+\-*/]|[a-z']+", text):
        if tok in _NUMBER_WORDS or tok in ("hundred", "thousand") or tok[0].isdigit():
            _add_number_token(tokens, tok)
        else:
            tokens.append(tok)
    for start in range(len(tokens)):  # the first run of the form [-] n (op [-] n)+
        expr: list[Fraction | str] = []
        expect_number = True
        for tok in tokens[start:]:
            if expect_number and isinstance(tok, Fraction):
                expr.append(tok)
                expect_number = False
            elif expect_number and tok == "-" and (not expr or expr[-1] != "neg"):
                expr.append("neg")
            elif not expect_number and tok in _SPOKEN_OP:
                expr.append(tok)
                expect_number = True
            else:
                break
        while expr and isinstance(expr[-1], str):  # drop a dangling operator
            expr.pop()
        if sum(1 for t in expr if isinstance(t, Fraction)) >= 2:
            whole = len(expr) == len(tokens)
            return _solve(expr) if whole or _MATH_TRIGGER.search(text) else None
    return None


def _add_number_token(tokens: list[Fraction | str], tok: str) -> None:
    """Fold number words into the previous number ("twenty" "one" -> 21, "two" "hundred" -> 200)."""
    if tok[0].isdigit():
        tokens.append(Fraction(tok))
        return
    prev = tokens[-1] if tokens and isinstance(tokens[-1], Fraction) else None
    if tok in ("hundred", "thousand"):
        scale = 100 if tok == "hundred" else 1000
        tokens[-1:] = [prev * scale] if prev is not None else [*tokens[-1:], Fraction(scale)]
        return
    value = _NUMBER_WORDS[tok]
    if prev is not None and ((prev % 100 == 0 and value < 100) or (prev % 10 == 0 and prev % 100 >= 20 and value < 10)):
        tokens[-1] = prev + value
    else:
        tokens.append(Fraction(value))


def _solve(expr: list[Fraction | str]) -> str:
    """Evaluate with the usual precedence and say it aloud: "12 times 7 is 84."."""
    spoken = " ".join("minus" if t == "neg" else _SPOKEN_OP[t] if isinstance(t, str) else _say(t) for t in expr)
    values: list[Fraction] = []
    ops: list[str] = []
    sign = 1
    for tok in expr:
        if tok == "neg":
            sign = -sign
        elif isinstance(tok, Fraction):
            value, sign = sign * tok, 1
            if ops and ops[-1] in "*/":
                op = ops.pop()
                if op == "/" and value == 0:
                    return "You can't divide by zero, so that one has no answer."
                value = values.pop() * value if op == "*" else values.pop() / value
            values.append(value)
        else:
            ops.append(tok)
    result = values[0]
    for op, value in zip(ops, values[1:], strict=True):
        result = result + value if op == "+" else result - value
    approx = "" if Fraction(_say(result).replace("minus ", "-")) == result else "about "
    return f"{spoken[0].upper()}{spoken[1:]} is {approx}{_say(result)}."


def _say(value: Fraction) -> str:
    """A number as TTS should read it: integers plainly, others to at most four decimals, sign as "minus"."""
    text = str(value.numerator // value.denominator) if value.denominator == 1 else f"{float(value):.4f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return f"minus {text[1:]}" if text.startswith("-") else text
