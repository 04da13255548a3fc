"""Split a streamed LLM reply into speakable pieces for TTS, handing each off as early as it safely can.

Latency matters most for the first piece: the avatar stays silent until TTS has something to say, and a
sentence-at-a-time TTS (Piper: ~45 ms per second of speech on 2 CPU cores) takes longer the longer the
piece. So the first piece may end at a clause boundary (", " "; " ": " "—" "，" "、") once it is long enough
to sound natural, or, in a long English sentence, before a word that opens a phrase ("in", "with", "and",
"because"…) after at least `first_phrase_min_words` words: "It is a quarter past ten | in the morning."
Both are places where a speaker may pause, so the seam sounds like a short pause, not a cut word. Later
pieces end at sentence ends and newlines only (TTS prosody is better on whole sentences), unless they grow
past `max_chars`. Decimals ("3.14"), abbreviations ("e.g.", "Dr.") and initials ("J. R.")
are not sentence ends. Markdown symbols that TTS would read aloud are removed.

A "." "!" "?" is only a sentence end once the next word has arrived and does not start in lowercase: until
then "3." might be "3.14", and '"Wow!" she said' or an unlisted abbreviation ("approx. five") is one
sentence. That costs at most one delta of latency; `flush()` releases whatever is left at the end.
"""

from __future__ import annotations

import re

_SENTENCE_END = ".!?…"  # ends a sentence when followed by whitespace (or CJK text)
_CJK_SENTENCE_END = "。！？"  # CJK text has no spaces: these end a sentence whatever follows
_CLOSERS = "\"')]}”’」』）》"  # closing quotes/brackets stay with the sentence they close
_CLAUSE_NEEDS_SPACE = ",;:–"  # "1,000", "10:30" and "1–5" are not clause boundaries
_CLAUSE_ANY = "—，、；："  # em dash and CJK clause marks need no following space
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "vs",
    "cf",
    "approx",
    "fig",
    "dept",
    "est",
    "mt",
    "inc",
    "ltd",
    "co",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
}
_DOTTED = re.compile(r"[a-z](\.[a-z])+")  # e.g, i.e, u.s, a.m
_MARKDOWN_CHARS = str.maketrans("", "", "*#`")  # emphasis, headings, code: spoken as "asterisk" otherwise
_LINE_MARKER = re.compile(r"^\s*(?:[-+•>]\s+)+")  # bullets and quotes at a line start
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # [text](url) -> text
# Words that open a prepositional phrase or a clause: a speaker may pause before them, so the first piece
# of a long sentence may end there. "of" and "that" are left out: they bind to the word before.
_PHRASE_OPENERS = {
    "about", "after", "and", "at", "because", "before", "but", "by", "for", "from", "if", "in", "into",
    "on", "or", "since", "so", "then", "to", "until", "when", "where", "while", "with", "without",
}  # fmt: skip
_WORD = re.compile(r"\S+")


def ends_sentence(piece: str) -> bool:
    """Whether a piece handed to TTS ends a sentence (rather than a clause or a phrase cut for latency)."""
    text = piece.rstrip().rstrip(_CLOSERS)
    return bool(text) and text[-1] in _SENTENCE_END + _CJK_SENTENCE_END


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uff00" <= ch <= "\uffef"


class SentenceChunker:
    """Incremental splitter: `push()` each LLM delta, speak what it returns, then `flush()` at the end of a reply.

    `flush()` also resets the chunker, so one instance can be reused for the next reply.
    """

    def __init__(self, first_clause_min_chars: int = 12, max_chars: int = 200, first_phrase_min_words: int = 4) -> None:
        self.first_clause_min_chars = first_clause_min_chars
        self.first_phrase_min_words = first_phrase_min_words  # 0 turns the phrase cut off
        self.max_chars = max(16, max_chars)
        self._buf = ""
        self._pieces = 0  # pieces handed out in this reply; 0 means the early clause hand-off is allowed
        self._line_start = True  # the buffer starts a new line (bullet markers are only stripped there)

    def push(self, delta: str) -> list[str]:
        """Add streamed text; returns the pieces that are now complete (often none)."""
        # These symbols are never spoken, so drop them before scanning: "**Note:** x" then splits like "Note: x".
        self._buf += delta.translate(_MARKDOWN_CHARS)
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            end, resume = cut
            self._emit(self._buf[:end], out)
            self._line_start = self._buf[end:resume] == "\n"
            self._buf = self._buf[resume:]
        return out

    def flush(self) -> list[str]:
        """End of the reply: returns whatever is left as a final piece and resets for the next reply."""
        out: list[str] = []
        self._emit(self._buf, out)
        self._buf, self._pieces, self._line_start = "", 0, True
        return out

    def _emit(self, raw: str, out: list[str]) -> None:
        text = _LINK.sub(r"\1", raw)
        if self._line_start:
            text = _LINE_MARKER.sub("", text)
        text = " ".join(text.split())
        # Pieces with nothing to pronounce ("---", "...", a lone bullet) would make TTS glitch or pause oddly.
        if any(ch.isalnum() for ch in text):
            out.append(text)
            self._pieces += 1

    def _find_cut(self) -> tuple[int, int] | None:
        """Where the next piece ends: (end of piece, start of the rest), or None to wait for more text."""
        buf, n = self._buf, len(self._buf)
        early = self._pieces == 0
        i = 0
        while i < n:
            ch = buf[i]
            if ch == "\n":
                return self._phrase_cut_before(i) or (i, i + 1)
            if ch in _SENTENCE_END or ch in _CJK_SENTENCE_END:
                j = i
                while j < n and (buf[j] in _SENTENCE_END or buf[j] in _CJK_SENTENCE_END):
                    j += 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j >= n:
                    break  # can't tell yet ("3." may become "3.14", a closing quote may follow)
                run = buf[i:j]
                if any(c in _CJK_SENTENCE_END for c in run):
                    return self._phrase_cut_before(i) or (j, j)
                k = j
                while k < n and buf[k] in " \t":
                    k += 1
                if k >= n:
                    break  # wait for the next word: a lowercase one means this was not a sentence end
                if _is_cjk(buf[j]) or (buf[j].isspace() and not buf[k].islower() and not self._is_non_final(i, run)):
                    return self._phrase_cut_before(i) or (j, j)
                i = j
                continue
            if early and (ch in _CLAUSE_ANY or ch in _CLAUSE_NEEDS_SPACE):
                if ch in _CLAUSE_NEEDS_SPACE and i + 1 >= n:
                    break  # wait for the next character to tell "1,000" from "well, "
                if (ch in _CLAUSE_ANY or buf[i + 1].isspace()) and self._speakable_len(buf[: i + 1]) >= (
                    self.first_clause_min_chars
                ):
                    return self._phrase_cut_before(i) or (i + 1, i + 1)
            i += 1
        if (phrase := self._phrase_cut_before(i, last_word_complete=i < n or buf[-1:].isspace())) is not None:
            return phrase
        if n > self.max_chars:
            return self._overflow_cut()
        return None

    def _phrase_cut_before(self, limit: int, last_word_complete: bool = True) -> tuple[int, int] | None:
        """The first piece's cut before a phrase opener in the buffer's first `limit` characters, if any.

        `limit` is where a boundary was found (the phrase cut wins if it comes first) or where the scan stopped.
        The opener must come after `first_phrase_min_words` words and be followed by two more whole words: a
        short tail ("…help with that.") is not worth a seam. A word still streaming does not count ("in" may
        become "inside")."""
        if self._pieces or not self.first_phrase_min_words:
            return None
        text = self._buf[:limit]
        words = list(_WORD.finditer(text))
        if not last_word_complete:
            words = words[:-1]
        for index in range(self.first_phrase_min_words, len(words) - 2):
            if words[index].group().lower() in _PHRASE_OPENERS:
                start = words[index].start()
                return len(text[:start].rstrip()), start
        return None

    def _overflow_cut(self) -> tuple[int, int]:
        """A piece is too long for one TTS call: cut at the last clause boundary, else the last space."""
        window = self._buf[: self.max_chars]
        for k in range(len(window) - 1, 0, -1):
            ch = window[k]
            if ch in _CLAUSE_ANY or (ch in _CLAUSE_NEEDS_SPACE and self._buf[k + 1].isspace()):
                return k + 1, k + 1
        space = max(window.rfind(" "), window.rfind("\t"))
        if space > 0:
            return space, space + 1
        return self.max_chars, self.max_chars  # one endless "word": a hard cut is all that is left

    def _is_non_final(self, dot: int, run: str) -> bool:
        """Whether the "." at `dot` ends an abbreviation, an initial or a list number rather than a sentence."""
        if run != ".":
            return False
        start = dot
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        word = self._buf[start:dot].lstrip("\"'([{“‘")
        if not word:
            return False
        if word.isdigit() and not self._buf[:start].strip():
            return True  # "1. First item": a list number is not a sentence of its own
        if word.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(word.lower()):
            return True
        return len(word) == 1 and word.isupper() and word != "I"  # "J. R. R. Tolkien", but not "Neither did I."

    @staticmethod
    def _speakable_len(text: str) -> int:
        return len(" ".join(_LINE_MARKER.sub("", text).split()))
