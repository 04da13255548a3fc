"""SentenceChunker: early first hand-off, safe sentence ends, markdown removal, CJK, long pieces."""

from __future__ import annotations

import pytest
from avatar_runtime.pipeline.sentences import SentenceChunker, ends_sentence


def chunk(text: str, step: int = 1, **kwargs) -> list[str]:
    """Feed `text` in `step`-character deltas (like a token stream) and return every piece, flush included."""
    chunker = SentenceChunker(**kwargs)
    pieces: list[str] = []
    for i in range(0, len(text), step):
        pieces += chunker.push(text[i : i + step])
    return pieces + chunker.flush()


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_split_does_not_depend_on_delta_size(step: int) -> None:
    text = "Hello there. How are you today? I am fine! Thanks for asking."
    assert chunk(text, step) == ["Hello there.", "How are you today?", "I am fine!", "Thanks for asking."]


def test_sentence_is_handed_off_as_soon_as_the_next_word_starts() -> None:
    chunker = SentenceChunker()
    assert chunker.push("It works.") == []  # "works." could still be "works.com"; wait for the next token
    assert chunker.push(" Next") == ["It works."]
    assert chunker.push(" sentence") == []
    assert chunker.flush() == ["Next sentence"]


def test_first_piece_hands_off_early_at_a_clause_boundary() -> None:
    chunker = SentenceChunker(first_clause_min_chars=12)
    out = []
    for delta in ["Well", " honestly", ",", " I", " think", " so", ",", " but", " later", " clauses", " wait", "."]:
        out += chunker.push(delta)
    # The first clause went out before the sentence finished; the second clause had to wait for the sentence end.
    assert out == ["Well honestly,"]
    assert chunker.flush() == ["I think so, but later clauses wait."]


def test_short_first_clause_is_not_split_off() -> None:
    # "Sure," is under first_clause_min_chars: a two-syllable TTS call would sound choppy.
    assert chunk("Sure, I can help with that. Next, we go on.") == ["Sure, I can help with that.", "Next, we go on."]


def test_first_clause_threshold_is_configurable() -> None:
    assert chunk("Sure, I can help.", first_clause_min_chars=4) == ["Sure,", "I can help."]


def test_numbers_with_commas_and_colons_are_not_clause_boundaries() -> None:
    text = "It costs 1,000,000 dollars at 10:30 sharp today."
    assert chunk(text, first_phrase_min_words=0) == [text]


@pytest.mark.parametrize(
    "text",
    [
        "Pi is about 3.14159 and e is 2.718 roughly.",
        "Fruits, e.g. apples, and i.e. pears are fine.",
        "Dr. Smith met Mr. Jones and Mrs. Brown yesterday.",
        "The book is by J. R. R. Tolkien and it is long.",
        "It was approx. five meters.",
        'She shouted "Wow!" and ran away.',
        "It happened in the U.S. last year.",
    ],
)
def test_decimals_abbreviations_and_initials_are_not_sentence_ends(text: str) -> None:
    assert chunk(text, first_clause_min_chars=1000, first_phrase_min_words=0) == [text]


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_long_first_sentence_is_cut_before_a_phrase_opener(step: int) -> None:
    text = "It is a quarter past ten in the morning. Plenty of day left in the week and more."
    # Only the first piece is cut early: later sentences go whole, openers or not.
    assert chunk(text, step) == [
        "It is a quarter past ten",
        "in the morning.",
        "Plenty of day left in the week and more.",
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Sure, I can help with that.", "Sure, I can help with that."),  # two words after the opener: no seam
        ("You say arigato in Japanese today.", "You say arigato in Japanese today."),  # opener before word 4
        ("Try a short mystery novel this weekend.", "Try a short mystery novel this weekend."),  # no opener
        ("The book of the year is on the shelf there.", "The book of the year is"),  # "of" binds: not a cut
        ("Sunlight bends inside raindrops and splits into colours.", "Sunlight bends inside raindrops"),
    ],
)
def test_phrase_cut_needs_enough_words_on_both_sides(text: str, first: str) -> None:
    assert chunk(text)[0] == first
    assert " ".join(chunk(text)) == text  # nothing lost or reordered


def test_phrase_cut_waits_for_whole_words() -> None:
    chunker = SentenceChunker()
    out = []
    for delta in ["We", " can", " go", " to", " the", " park", " in"]:
        out += chunker.push(delta)
    assert out == []  # "in" may still become "inside", and no two words follow it yet
    assert chunker.push("side the gates") == []  # it did: "inside" opens nothing
    assert chunker.push(" and then") == []  # "and" has only "then" after it so far
    assert chunker.push(" we rest") == ["We can go to the park inside the gates"]
    assert chunker.flush() == ["and then we rest"]


def test_earlier_clause_boundary_wins_over_a_phrase_cut() -> None:
    assert chunk("My laptop needed a break, so it crashed in the end. Then it worked.")[:2] == [
        "My laptop needed a break,",
        "so it crashed in the end.",
    ]


def test_phrase_cut_can_be_turned_off() -> None:
    text = "It is a quarter past ten in the morning."
    assert chunk(text, first_phrase_min_words=0) == [text]


def test_pronoun_i_is_not_an_initial() -> None:
    assert chunk("Neither did I. Then we left.") == ["Neither did I.", "Then we left."]


def test_ellipsis_and_mixed_terminators() -> None:
    assert chunk("Wait... What?! No way…") == ["Wait...", "What?!", "No way…"]


def test_markdown_symbols_are_stripped() -> None:
    text = "## Summary\n**Bold** and *italic* with `code`.\n- first item\n- second item\n* third item\n\n---\n"
    text += "1. Numbered"
    pieces = chunk(text)
    assert pieces == ["Summary", "Bold and italic with code.", "first item", "second item", "third item", "1. Numbered"]
    assert not any(sym in p for p in pieces for sym in "*#`")


def test_links_keep_their_text_and_dashes_inside_lines_survive() -> None:
    assert chunk("See [the docs](http://example.com/a.b) now.\nIt is -5 degrees - brr.") == [
        "See the docs now.",
        "It is -5 degrees - brr.",
    ]


def test_newlines_split_and_whitespace_only_pieces_are_dropped() -> None:
    assert chunk("First line\n\n   \nSecond line\n") == ["First line", "Second line"]
    assert chunk("   \n\t\n") == []


def test_flush_returns_the_remainder_and_resets_for_the_next_reply() -> None:
    chunker = SentenceChunker()
    assert chunker.push("One sentence. And an unfinished") == ["One sentence."]
    assert chunker.flush() == ["And an unfinished"]
    assert chunker.flush() == []
    # After flush a new reply starts: the early first-clause hand-off applies again.
    assert chunker.push("A fresh long clause here, and more") == ["A fresh long clause here,"]


def test_cjk_punctuation() -> None:
    assert chunk("你好，我是你的虚拟助手，很高兴认识你。今天天气很好！你呢？") == [
        "你好，我是你的虚拟助手，",  # first piece: early hand-off at the CJK comma once long enough
        "很高兴认识你。",
        "今天天气很好！",
        "你呢？",
    ]
    assert chunk("他说：“你好。”然后走了。", first_clause_min_chars=100) == ["他说：“你好。”", "然后走了。"]


def test_long_piece_is_split_at_last_clause_boundary_then_space() -> None:
    clause = "this part goes on and on, "
    text = "Short one. Then " + clause * 12 + "end."
    pieces = chunk(text, max_chars=80)
    assert pieces[0] == "Short one."
    assert all(len(p) <= 80 for p in pieces)
    assert all(p.endswith(",") for p in pieces[1:-1])  # split at commas, never mid-clause
    assert " ".join(pieces) == " ".join(text.split())
    words = chunk("word " * 50, max_chars=40)
    assert all(len(p) <= 40 for p in words) and " ".join(words).split() == ["word"] * 50


@pytest.mark.parametrize(
    ("piece", "ends"),
    [("It works.", True), ('He said "yes!"', True), ("你好。", True), ("Well honestly,", False),
     ("It is a quarter past ten", False), ("", False), ("Really?)", True)],
)  # fmt: skip
def test_ends_sentence_tells_a_sentence_from_a_clause_or_a_phrase(piece, ends):
    assert ends_sentence(piece) is ends
