"""The spoken questions of the benchmark, with the reply the stub LLM gives to each.

Topics and lengths vary (3 to 20 words) and so do the espeak-ng voice and speaking rate, so VAD, ASR and the
turn detector see a spread of utterances, not one clip 30 times. Replies are two short sentences, as the
runtime's system prompt asks for; their first sentence is 4-9 words long, so neither pipeline is flattered by
a one-word first sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (question, reply) pairs; the reply is what the stub LLM streams, whatever ASR heard.
_PAIRS = [
    ("What time is it?", "It is a quarter past ten in the morning. Plenty of day left."),
    ("What is the weather like today in Paris?", "Paris is mild today with a few clouds. Take a light jacket."),
    ("Please open the window and turn on the light.", "I cannot reach the window from here. The light is on now."),
    ("Tell me a joke about computers.", "My laptop needed a break, so it crashed. Then it felt much better."),
    ("How many legs does a spider have?", "A spider has eight legs in total. Insects have only six."),
    (
        "Can you recommend a good book to read this weekend?",
        "Try a short mystery novel this weekend. It is easy to finish.",
    ),
    ("My name is Alice and I live in Berlin.", "Nice to meet you, Alice from Berlin. It is a lovely city."),
    ("Why is the sky blue?", "Air scatters blue light more than red light. So the sky looks blue."),
    ("How far away is the moon?", "The moon is about four hundred thousand kilometres away. Light needs a second."),
    (
        "What should I cook for dinner tonight if I only have rice, eggs and some spinach?",
        "Make a simple fried rice with egg and spinach. It takes fifteen minutes.",
    ),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa. It hangs in the Louvre."),
    ("Set a timer for ten minutes.", "Your timer is set for ten minutes. I will tell you when it ends."),
    ("How do I say thank you in Japanese?", "You say arigato in Japanese. Add gozaimasu to be more polite."),
    ("What is the capital of Australia?", "The capital of Australia is Canberra. Many people guess Sydney."),
    (
        "Could you explain in simple words how a rainbow forms after the rain?",
        "Sunlight bends inside raindrops and splits into colours. You see it with the sun behind you.",
    ),
    ("Is it going to snow tomorrow?", "Snow is unlikely tomorrow where you are. Expect cold rain instead."),
    ("Play some relaxing music.", "Here is some calm piano music for you. Enjoy the quiet."),
    ("How long should I boil an egg?", "Boil it for about seven minutes. That gives a firm but soft yolk."),
    (
        "What is the difference between a virus and a bacterium?",
        "Bacteria are living cells that can grow alone. Viruses need a host cell to copy themselves.",
    ),
    ("Remind me to call my mother on Sunday.", "I will remind you to call your mother on Sunday. She will be glad."),
    (
        "How many people live in India?",
        "India has about one point four billion people. It is the most populous country.",
    ),
    ("Give me a quick tip to fall asleep faster.", "Keep the room dark and cool tonight. Put your phone away early."),
    (
        "What year did the first person walk on the moon?",
        "That was in nineteen sixty nine. Neil Armstrong stepped out first.",
    ),
    (
        "I am feeling a bit stressed about my exam next week, do you have any advice?",
        "Plan short study sessions with breaks. Sleep well the night before.",
    ),
    ("Translate good morning into Spanish.", "Good morning is buenos dias in Spanish. It is used until noon."),
    ("What is two hundred divided by eight?", "Two hundred divided by eight is twenty five. That one is exact."),
    ("Which planet is the largest?", "Jupiter is the largest planet by far. It could hold a thousand Earths."),
    ("Hello there!", "Hello, it is nice to hear from you. How can I help today?"),
    (
        "Can you tell me something interesting about octopuses and how smart they are?",
        "Octopuses can open jars and solve puzzles. Each arm has its own cluster of neurons.",
    ),
    ("How do I reset my password?", "Open the settings page and choose reset password. A link comes by email."),
    (
        "What does a healthy breakfast look like?",
        "Oats with fruit and yoghurt is a good start. Add some nuts for protein.",
    ),
    ("Thanks, that is all for now.", "You are welcome, talk to you soon. Have a good day."),
]

# espeak-ng voices (all English, so the ASR model has a fair chance) and rates in words per minute.
_VOICES = ["en-us", "en-gb", "en-gb-x-rp", "en-029", "en-us", "en-gb-scotland"]
_RATES = [150, 165, 140, 175, 155, 160, 145]


@dataclass(frozen=True)
class Question:
    text: str
    reply: str
    voice: str
    rate_wpm: int


QUESTIONS = [
    Question(text, reply, _VOICES[i % len(_VOICES)], _RATES[i % len(_RATES)]) for i, (text, reply) in enumerate(_PAIRS)
]


def pick(turns: int) -> list[Question]:
    """`turns` questions, cycling through all of them (the first ones cover short and long utterances alike)."""
    if turns < 1:
        raise ValueError(f"turns must be at least 1, got {turns}")
    return [QUESTIONS[i % len(QUESTIONS)] for i in range(turns)]


def speech_of(question: Question) -> np.ndarray:
    """The question spoken by the espeak-ng CLI, mono float32 at 16 kHz (the same audio both modes hear)."""
    from tests.support.speech import speak

    return speak(question.text, 16000, voice=question.voice, rate_wpm=question.rate_wpm)
