"""LLM engines: OpenAILLM against a real OpenAI-protocol HTTP server on loopback, and the offline EmbeddedLLM."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
import openai
import pytest
from avatar_runtime.engines.base import LLMEngine
from avatar_runtime.engines.llm_embedded import NOTICE_MARKER, EmbeddedLLM
from avatar_runtime.engines.llm_openai import LLMError, OpenAILLM
from avatar_runtime.expression.cues import ExpressionCue
from avatar_runtime.pipeline.sentences import SentenceChunker

from tests.support import openai_server
from tests.support.openai_server import OpenAIStubServer, StubError, closed_port_url

openai_stub = openai_server.openai_stub  # the shared fixture: a running stub server with the echo reply
Stub = OpenAIStubServer
MakeLLM = Callable[..., OpenAILLM]

HISTORY = [
    {"role": "system", "content": "You are a friendly avatar. Answer in one or two short sentences."},
    {"role": "user", "content": "Hi, I'm testing you."},
    {"role": "assistant", "content": "Hello! Happy to help."},
    {"role": "user", "content": "Tell me something nice."},
]


@pytest.fixture
async def make_llm() -> AsyncIterator[MakeLLM]:
    """Builds OpenAILLMs and closes their HTTP clients after the test (pooled keep-alive sockets otherwise leak)."""
    made: list[OpenAILLM] = []

    def make(*args: Any, **kwargs: Any) -> OpenAILLM:
        made.append(OpenAILLM(*args, **kwargs))
        return made[-1]

    yield make
    for llm in made:
        await llm.aclose()


async def collect(llm: LLMEngine, messages: list[dict[str, str]]) -> list[str]:
    return [delta async for delta in llm.stream(messages)]


async def failure(llm: OpenAILLM) -> LLMError:
    with pytest.raises(LLMError) as info:
        await collect(llm, HISTORY)
    return info.value


async def test_stream_yields_the_scripted_reply_and_sends_the_request(make_llm: MakeLLM, openai_stub: Stub) -> None:
    reply = "You are doing great, and the sun is out. Have a lovely day!"
    openai_stub.replies = [reply]
    llm = make_llm(openai_stub.base_url, api_key=None, model="stub-model", temperature=0.3, max_tokens=64)
    assert isinstance(llm, LLMEngine) and llm.name == "openai" and llm.embedded is False

    deltas = await collect(llm, HISTORY)

    assert "".join(deltas) == reply
    assert len(deltas) == len(reply.split())  # streamed token by token, no empty role/finish chunks
    assert all(deltas)
    rec = openai_stub.last_request
    assert (rec.method, rec.path, rec.status, rec.completed) == ("POST", "/v1/chat/completions", 200, True)
    assert rec.body["model"] == "stub-model"
    assert rec.body["messages"] == HISTORY
    assert rec.body["stream"] is True
    assert rec.body["temperature"] == 0.3 and rec.body["max_tokens"] == 64
    assert rec.headers["authorization"] == "Bearer not-needed"  # placeholder key for Ollama-style servers


async def test_each_turn_sends_the_growing_history_and_the_api_key(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.api_key = "sk-test-123"
    llm = make_llm(openai_stub.base_url, api_key="sk-test-123", model="stub-model")
    history = [{"role": "user", "content": "first question"}]
    first = "".join(await collect(llm, history))
    assert first == "You said: first question"  # the stub's default echo reply
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "second question"}]
    second = "".join(await collect(llm, history))
    assert second == "You said: second question"
    assert [r.messages for r in openai_stub.requests] == [history[:1], history]
    assert openai_stub.last_request.headers["authorization"] == "Bearer sk-test-123"


async def test_connection_refused_is_a_clear_error(make_llm: MakeLLM) -> None:
    url = closed_port_url()
    started = time.monotonic()
    err = await failure(make_llm(url, api_key=None, model="m", max_retries=0))
    assert str(err) == f"LLM at {url} refused the connection; is the server running and listening on that port?"
    assert (err.kind, err.base_url, err.status) == ("connection", url, None)
    assert isinstance(err.__cause__, openai.APIConnectionError)
    assert time.monotonic() - started < 2


async def test_wrong_api_key_is_a_clear_error(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.api_key = "right-key"
    err = await failure(make_llm(openai_stub.base_url, api_key="wrong-key", model="m", max_retries=0))
    assert (err.kind, err.status) == ("auth", 401)
    assert str(err).startswith(f"LLM at {openai_stub.base_url} rejected the API key (HTTP 401")
    assert "OPENAI_API_KEY" in str(err)


async def test_unknown_model_is_a_clear_error(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.models = ["llama3.2"]
    err = await failure(make_llm(openai_stub.base_url, api_key=None, model="no-such-model", max_retries=0))
    assert (err.kind, err.status) == ("model", 404)
    assert str(err) == (
        f"LLM at {openai_stub.base_url} does not have model 'no-such-model' "
        "(HTTP 404: The model 'no-such-model' does not exist)."
    )


async def test_wrong_path_404_hints_at_the_base_url(make_llm: MakeLLM, openai_stub: Stub) -> None:
    base = openai_stub.base_url.removesuffix("/v1")  # a classic mistake: forgetting /v1
    err = await failure(make_llm(base, api_key=None, model="m", max_retries=0))
    assert (err.kind, err.status) == ("http", 404)
    assert f"LLM at {base} " in str(err) and "ends in /v1" in str(err)


async def test_server_error_is_a_clear_error(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.replies = [StubError(500, "CUDA out of memory", type="server_error")]
    err = await failure(make_llm(openai_stub.base_url, api_key=None, model="m", max_retries=0))
    assert (err.kind, err.status) == ("http", 500)
    assert str(err) == f"LLM at {openai_stub.base_url} failed with HTTP 500: CUDA out of memory."


async def test_stalled_stream_times_out(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.first_token_delay_s = 5
    started = time.monotonic()
    err = await failure(make_llm(openai_stub.base_url, api_key=None, model="m", timeout_s=0.3, max_retries=0))
    assert err.kind == "timeout"
    assert str(err) == f"LLM at {openai_stub.base_url} did not respond within 0.3 s."
    assert time.monotonic() - started < 2


async def test_cancelling_the_consumer_closes_the_http_stream(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.replies = [" ".join(f"word{i}" for i in range(200))]
    openai_stub.token_delay_s = 0.02  # 4 s for the whole reply: far longer than the test waits
    llm = make_llm(openai_stub.base_url, api_key=None, model="m")
    got: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:  # what a session turn does: read deltas until barge-in cancels it
        async for delta in llm.stream(HISTORY):
            got.append(delta)
            if len(got) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), 2)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await openai_stub.await_disconnect(within_s=1.0)
    rec = openai_stub.last_request
    assert rec.client_disconnected and not rec.completed
    assert rec.disconnected_at is not None and rec.disconnected_at - cancelled_at < 1.0
    assert rec.tokens_sent < 100


async def test_aclose_closes_the_http_stream(make_llm: MakeLLM, openai_stub: Stub) -> None:
    openai_stub.replies = [" ".join(f"word{i}" for i in range(200))]
    openai_stub.token_delay_s = 0.02
    stream = make_llm(openai_stub.base_url, api_key=None, model="m").stream(HISTORY)
    assert await stream.__anext__() == "word0"
    assert await stream.__anext__() == " word1"
    closed_at = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]  # what `async for ... break` does
    assert await openai_stub.await_disconnect(within_s=1.0)
    assert openai_stub.last_request.disconnected_at - closed_at < 1.0


def test_stub_server_speaks_the_openai_protocol_from_sync_code() -> None:
    with OpenAIStubServer(replies=["Hi there.", "Plain answer."], models=["m"]) as srv:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line]
        plain = httpx.post(f"{srv.base_url}/chat/completions", json={**body, "stream": False}).json()
        assert plain["choices"][0]["message"]["content"] == "Plain answer."
        assert [m["id"] for m in httpx.get(f"{srv.base_url}/models").json()["data"]] == ["m"]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hi there."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert srv.requests[0].completed and not srv.requests[0].client_disconnected


class Conversation:
    """Drives EmbeddedLLM the way a session does: append the user turn, stream the reply, append it."""

    def __init__(self, llm: EmbeddedLLM | None = None) -> None:
        self.llm = llm or EmbeddedLLM()
        self.messages: list[dict[str, str]] = [{"role": "system", "content": "You are a friendly avatar."}]

    async def say(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        reply = "".join(i for i in await collect(self.llm, self.messages) if isinstance(i, str))
        self.messages.append({"role": "assistant", "content": reply})
        return reply


async def test_embedded_is_an_llm_engine_that_streams_word_by_word() -> None:
    llm = EmbeddedLLM()
    assert isinstance(llm, LLMEngine) and llm.name == "embedded" and llm.embedded is True
    messages = [{"role": "user", "content": "Hello there!"}]
    items = await collect(llm, messages)
    # The mood (and gesture) it speaks in come first, as a model's set_mood tool call would.
    cues = [i for i in items if isinstance(i, ExpressionCue)]
    assert [(c.action, c.name) for c in cues] == [("mood", "happy"), ("gesture", "hello")]
    assert items[: len(cues)] == cues
    deltas = items[len(cues) :]
    assert len(deltas) > 3
    assert deltas[0] == "Hello!" and all(d.startswith(" ") for d in deltas[1:])
    assert "".join(deltas) == llm.reply(messages)


async def test_embedded_greets_and_answers_small_talk() -> None:
    chat = Conversation()
    assert (await chat.say("Hi!")).startswith("Hello!")
    assert "how are you" in (await chat.say("How are you doing?")).lower()
    assert (await chat.say("Thanks a lot.")).startswith("You're welcome")
    assert (await chat.say("Goodbye!")).startswith("Goodbye")
    assert "Gaussian Avatar" in await chat.say("Who are you?")
    assert await chat.say("I feel a bit lost lately") == "Why do you feel a bit lost lately?"
    assert await chat.say("I think you are smart") == "What makes you think I am smart?"


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is 12 times 7?", "12 times 7 is 84."),
        ("what's 100 divided by 8", "100 divided by 8 is 12.5."),
        ("15 - 20", "15 minus 20 is minus 5."),
        ("What is 3 + 4 * 2?", "3 plus 4 times 2 is 11."),
        ("What is seven plus five?", "7 plus 5 is 12."),
        ("calculate 2.5 x 4", "2.5 times 4 is 10."),
        ("What is twenty-one plus one hundred and five?", "21 plus 105 is 126."),
        ("what is 1 divided by 3", "1 divided by 3 is about 0.3333."),
        ("How much is 9 multiplied by 9 minus 1?", "9 times 9 minus 1 is 80."),
    ],
)
async def test_embedded_does_arithmetic(question: str, answer: str) -> None:
    assert await Conversation().say(question) == answer


async def test_embedded_arithmetic_edge_cases() -> None:
    assert "divide by zero" in await Conversation().say("What is 5 divided by 0?")
    assert not re.search(r"\bis 5\b", await Conversation().say("I have 2 kids and 3 dogs"))  # not a sum


async def test_embedded_remembers_the_users_name() -> None:
    chat = Conversation()
    assert "haven't told me your name" in await chat.say("What's my name?")
    assert await chat.say("My name is anna.") == "Nice to meet you, Anna! What would you like to talk about?"
    await chat.say("What is 2 plus 2?")
    assert await chat.say("Do you remember my name?") == "Your name is Anna."
    assert (await chat.say("Hello again")).startswith("Hello, Anna!")
    assert "Bob" in await chat.say("Actually, call me Bob.")
    assert await chat.say("What's my name?") == "Your name is Bob."


async def test_embedded_tells_time_and_date_from_the_clock() -> None:
    chat = Conversation(EmbeddedLLM(clock=lambda: datetime(2024, 3, 5, 15, 7)))
    assert await chat.say("What time is it?") == "It's 3:07 PM."
    assert await chat.say("What's the date today?") == "Today is Tuesday, March 5, 2024."


async def test_embedded_offline_notice_is_present_but_not_every_turn() -> None:
    chat = Conversation(EmbeddedLLM(notice_every=4))
    questions = [
        "What is the capital of France?",
        "Why is the sky blue?",
        "Who wrote Hamlet?",
        "Can you swim?",
        "Where do penguins live?",
        "What is quantum physics?",
        "How do planes fly?",
        "Is it going to rain?",
    ]
    notices = [NOTICE_MARKER in await chat.say(q) for q in questions]
    assert notices[0]  # the first unanswerable question explains how to get a real model
    assert notices == [True, False, False, False, True, False, False, False]
    reply = chat.messages[2]["content"]
    assert "OPENAI_BASE_URL" in reply and "http://localhost:11434/v1" in reply


async def test_embedded_is_deterministic_and_speakable() -> None:
    script = [
        "Hello!",
        "My name is Sam.",
        "What can you do?",
        "Tell me a joke.",
        "I think robots are funny.",
        "What is 6 times 7?",
        "The weather is nice.",
        "Are you a robot?",
        "",
    ]
    first, second = Conversation(), Conversation()
    for line in script:
        a, b = await first.say(line), await second.say(line)
        assert a == b and a
        assert not re.search(r"[*#`\[\]]|[\U0001F300-\U0001FAFF\u2600-\u27BF]", a)  # no markdown, no emoji
        chunker = SentenceChunker(first_clause_min_chars=10_000)
        pieces = chunker.push(a) + chunker.flush()
        assert 1 <= len(pieces) <= 3, a  # 1-3 sentences: it is spoken aloud
