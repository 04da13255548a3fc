"""The message list one reply asks the LLM with: system prompt, the history the user heard, the new words.

Pure: the session passes its history and settings. What ASR heard besides words (SenseVoice: the user's
emotion, laughter, applause…) is prefixed to the new message as a short note, for this request only; the
history keeps the plain words, so old notes never pile up in the context.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..engines.base import Transcription
from ..expression.cues import TAG_INSTRUCTIONS, voice_context


def build_messages(
    system_prompt: str,
    history: Sequence[dict],
    user_text: str,
    *,
    history_turns: int,
    heard: Transcription | None = None,
    voice_cues: bool = True,
    tag_instructions: bool = False,
) -> list[dict]:
    keep = 2 * history_turns
    recent = list(history[-keep:]) if keep else []
    if recent and recent[-1] == {"role": "user", "content": user_text}:
        recent = recent[:-1]  # a committed reply's own question is already in the history
    system = f"{system_prompt}\n\n{TAG_INSTRUCTIONS}" if tag_instructions else system_prompt
    note = voice_context(heard.emotion, heard.events) if voice_cues and heard is not None else None
    content = f"{note} {user_text}" if note else user_text
    return [{"role": "system", "content": system}, *recent, {"role": "user", "content": content}]
