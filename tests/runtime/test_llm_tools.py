"""Expression tools over the real OpenAI protocol: streamed tool calls become cues in order with the text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from avatar_runtime.engines.llm_openai import OpenAILLM
from avatar_runtime.expression.cues import TOOLS, ExpressionCue

from tests.support.openai_server import OpenAIStubServer, StubError, StubReply, StubToolCall

ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I passed my exam!"}]
HAPPY = StubToolCall("set_mood", {"mood": "happy", "intensity": 0.9})


@pytest.fixture
async def llm_for() -> AsyncIterator:
    made: list[OpenAILLM] = []

    def make(stub: OpenAIStubServer, tools: list[dict] | None = TOOLS) -> OpenAILLM:
        made.append(OpenAILLM(stub.base_url, None, "stub-model", tools=tools))
        return made[-1]

    yield make
    for llm in made:
        await llm.aclose()


async def items_of(llm: OpenAILLM) -> list[str | ExpressionCue]:
    return [item async for item in llm.stream(ASK)]


async def test_tools_are_declared_and_a_call_before_the_text_comes_first(llm_for):
    with OpenAIStubServer([StubReply("Congratulations, that is wonderful!", (HAPPY,))]) as stub:
        items = await items_of(llm_for(stub))
        assert items[0] == ExpressionCue("mood", "happy", 0.9)
        assert "".join(i for i in items[1:] if isinstance(i, str)) == "Congratulations, that is wonderful!"
        assert [t["function"]["name"] for t in stub.last_request.body["tools"]] == ["set_mood", "expression", "gesture"]
        assert len(stub.requests) == 1  # it spoke: no follow-up request


async def test_a_call_after_some_text_stays_in_its_place(llm_for):
    reply = StubReply("Oh no.", (StubToolCall("expression", {"name": "sad"}),), calls_after_text=True)
    with OpenAIStubServer([reply]) as stub:
        items = await items_of(llm_for(stub))
        assert items[-1] == ExpressionCue("expression", "sad", 0.7, 1.5)
        assert "".join(i for i in items if isinstance(i, str)) == "Oh no."


async def test_only_tool_calls_get_their_results_and_a_second_request(llm_for):
    calls = (HAPPY, StubToolCall("gesture", {"name": "moonwalk"}), StubToolCall("gesture", '{"name": "wink"'))
    with OpenAIStubServer([StubReply("", calls), "Well done!"]) as stub:
        items = await items_of(llm_for(stub))
        assert items == [ExpressionCue("mood", "happy", 0.9), "Well", " done!"]
        assert len(stub.requests) == 2
        follow_up = stub.requests[1].messages
        assert follow_up[:2] == ASK
        assistant, *results = follow_up[2:]
        assert assistant["role"] == "assistant" and [c["function"]["name"] for c in assistant["tool_calls"]] == [
            "set_mood", "gesture", "gesture"]  # fmt: skip
        outcomes = {r["tool_call_id"]: json.loads(r["content"])["result"] for r in results}
        assert outcomes["call_0"] == "ok"
        assert "unknown gesture 'moonwalk'" in outcomes["call_1"] and "wink" in outcomes["call_1"]
        assert "not valid JSON" in outcomes["call_2"]


async def test_a_model_that_keeps_calling_tools_is_stopped(llm_for):
    with OpenAIStubServer(lambda _req: StubReply("", (HAPPY,))) as stub:
        items = await items_of(llm_for(stub))
        assert items == [ExpressionCue("mood", "happy", 0.9)] * 3
        assert len(stub.requests) == 3 and "tools" not in stub.requests[-1].body  # the last round offers none


async def test_a_server_that_refuses_tools_is_asked_again_without_them(llm_for):
    refusal = StubError(400, "registry.ollama.ai/library/gemma:2b does not support tools")
    with OpenAIStubServer([refusal, "Hello!", "Again."]) as stub:
        llm = llm_for(stub)
        assert await items_of(llm) == ["Hello!"]
        assert "tools" in stub.requests[0].body and "tools" not in stub.requests[1].body
        assert llm.tools is None
        assert await items_of(llm) == ["Again."]
        assert "tools" not in stub.requests[2].body


async def test_other_bad_requests_are_still_errors(llm_for):
    from avatar_runtime.engines.llm_openai import LLMError

    with OpenAIStubServer([StubError(400, "max_tokens is too large")]) as stub:
        with pytest.raises(LLMError, match="max_tokens is too large"):
            await items_of(llm_for(stub))
        assert len(stub.requests) == 1


async def test_without_tools_nothing_is_declared(llm_for):
    with OpenAIStubServer(["Fine."]) as stub:
        assert await items_of(llm_for(stub, tools=None)) == ["Fine."]
        assert "tools" not in stub.last_request.body
