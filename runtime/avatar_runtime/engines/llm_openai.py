"""LLM engine for any OpenAI-compatible chat completions server (OpenAI, Ollama, LM Studio, vLLM, llama.cpp).

Replies are streamed so the first sentence can go to TTS while the rest is still being generated. The
HTTP stream is tied to the consumer: when the session cancels the turn (barge-in) or closes the generator,
the response is closed at once, which makes the server stop generating instead of burning GPU time on a
reply nobody will hear.

With `tools` (the expression layer's set_mood / expression / gesture), tool calls are assembled from the
stream and yielded as `ExpressionCue`s in order with the text. A model that only calls tools and says nothing
gets the tools' results back and is asked again (at most twice), as the OpenAI protocol expects; a server that
refuses tools (HTTP 400 naming them) is asked again without, and not offered them any more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import openai

from ..expression.cues import BadCue, ExpressionCue, cue_from_tool_call

log = logging.getLogger(__name__)

# Local servers (Ollama, LM Studio, llama.cpp) ignore the key, but the client refuses to run without one.
PLACEHOLDER_API_KEY = "not-needed"
MAX_TOOL_ROUNDS = 2  # follow-up requests after a reply that was only tool calls


class LLMError(RuntimeError):
    """The LLM server could not produce a reply; the message is one sentence naming the server and the cause.

    `kind` is a short machine-readable cause ("connection", "timeout", "auth", "model", "http", "stream") and
    `status` the HTTP status when there was one, so callers can react without parsing the message.
    """

    def __init__(self, message: str, *, base_url: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.base_url = base_url
        self.kind = kind
        self.status = status


class OpenAILLM:
    """Streams replies from an OpenAI-compatible server; one instance (and HTTP client) is shared by all sessions."""

    name = "openai"
    embedded = False

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 256,
        timeout_s: float = 30,
        max_retries: int = 1,
        tools: list[dict] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.tools = tools or None
        # A single quick retry covers a dropped keep-alive connection; more would only make a dead server
        # look like a slow one to someone waiting for the avatar to answer.
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=api_key or PLACEHOLDER_API_KEY, timeout=timeout_s, max_retries=max_retries
        )

    async def stream(self, messages: Sequence[dict]) -> AsyncIterator[str | ExpressionCue]:
        """Yield the reply to `messages` as text deltas (and expression cues); raises `LLMError` on any failure."""
        conversation = list(messages)
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            calls = _ToolCalls()
            said = False
            async for item in self._one_request(conversation, calls, offer_tools=round_ < MAX_TOOL_ROUNDS):
                said = said or (isinstance(item, str) and bool(item.strip()))
                yield item
            if said or not calls.finished_with_tools or not calls.calls:
                return
            # Only tool calls and no words: the protocol wants their results before the model goes on.
            conversation += calls.follow_up_messages()

    async def _one_request(
        self, messages: list[dict], calls: _ToolCalls, offer_tools: bool
    ) -> AsyncIterator[str | ExpressionCue]:
        tools = self.tools if offer_tools else None
        try:
            response = await self._create(messages, tools)
        except openai.BadRequestError as exc:
            if not tools or "tool" not in str(exc).lower():
                raise self._translate(exc) from exc
            log.warning("LLM at %s refuses tool calls (%s); using inline tags instead", self.base_url, exc.message)
            self.tools = None
            try:
                response = await self._create(messages, None)
            except openai.OpenAIError as again:
                raise self._translate(again) from again
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        # `async with` closes the HTTP response on every exit path: normal end, error, CancelledError from a
        # barge-in and GeneratorExit from aclose(). Closing an unfinished HTTP/1.1 response drops the
        # connection, which is how the server learns to stop generating.
        async with response:
            try:
                async for chunk in response:
                    for choice in chunk.choices or ():
                        delta = choice.delta
                        if delta is not None and delta.content:  # role-only and final chunks carry no text
                            for cue in calls.close():  # text after a call: the call is whole, it goes first
                                yield cue
                            yield delta.content
                        if delta is not None and delta.tool_calls:
                            for cue in calls.add(delta.tool_calls):
                                yield cue
                        if choice.finish_reason:
                            calls.finished_with_tools = choice.finish_reason == "tool_calls"
            except openai.OpenAIError as exc:
                raise self._translate(exc) from exc
        for cue in calls.close():
            yield cue

    async def _create(self, messages: list[dict], tools: list[dict] | None):
        extra = {"tools": tools} if tools else {}
        return await self._client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]  # plain role/content dicts are valid params
            stream=True,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            **extra,  # type: ignore[arg-type]
        )

    async def aclose(self) -> None:
        """Close the shared HTTP client (at process shutdown)."""
        await self._client.close()

    def _translate(self, exc: openai.OpenAIError) -> LLMError:
        """Turn a client exception into one human sentence that says where we tried to go and what went wrong."""
        url = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(f"LLM at {url} did not respond within {self.timeout_s:g} s.", base_url=url, kind="timeout")
        if isinstance(exc, openai.APIConnectionError):
            if _caused_by_refusal(exc):
                msg = f"LLM at {url} refused the connection; is the server running and listening on that port?"
            else:
                msg = f"LLM at {url} could not be reached ({_root_cause(exc)})."
            return LLMError(msg, base_url=url, kind="connection")
        if isinstance(exc, openai.APIStatusError):
            status, detail = exc.status_code, _server_message(exc)
            if status in (401, 403):
                msg = f"LLM at {url} rejected the API key (HTTP {status}: {detail}); check OPENAI_API_KEY."
                return LLMError(msg, base_url=url, kind="auth", status=status)
            if status == 404:
                # Both "unknown model" and "wrong base URL (missing /v1?)" come back as 404; say which it looks like.
                if "model" in detail.lower():
                    msg = f"LLM at {url} does not have model '{self.model}' (HTTP 404: {detail})."
                    return LLMError(msg, base_url=url, kind="model", status=status)
                msg = (
                    f"LLM at {url} answered HTTP 404 for the chat completions endpoint ({detail}); "
                    f"check that the base URL ends in /v1 and that model '{self.model}' exists."
                )
                return LLMError(msg, base_url=url, kind="http", status=status)
            if status == 429:
                msg = f"LLM at {url} is rate limiting requests (HTTP 429: {detail})."
                return LLMError(msg, base_url=url, kind="http", status=status)
            msg = f"LLM at {url} failed with HTTP {status}: {detail}."
            return LLMError(msg, base_url=url, kind="http", status=status)
        detail = str(exc).strip().rstrip(".") or type(exc).__name__
        return LLMError(f"LLM at {url} sent an error while streaming: {detail}.", base_url=url, kind="stream")


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""
    result: str = "ok"


@dataclass
class _ToolCalls:
    """Tool calls assembled from stream deltas (each arrives in pieces, keyed by index)."""

    calls: dict[int, _Call] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    finished_with_tools: bool = False

    def add(self, deltas) -> list[ExpressionCue]:
        """Take some tool-call deltas; returns the cues of calls now complete (a later index has started)."""
        ready: list[ExpressionCue] = []
        for delta in deltas:
            index = delta.index if delta.index is not None else len(self.calls)
            for earlier in sorted(i for i in self.calls if i < index and i not in self.done):
                ready.extend(self._complete(earlier))
            call = self.calls.setdefault(index, _Call())
            call.id = delta.id or call.id
            if delta.function is not None:
                call.name += delta.function.name or ""
                call.arguments += delta.function.arguments or ""
        return ready

    def close(self) -> list[ExpressionCue]:
        """Complete every call still open (its arguments are whole once anything else follows)."""
        return [cue for index in sorted(self.calls) if index not in self.done for cue in self._complete(index)]

    def _complete(self, index: int) -> list[ExpressionCue]:
        self.done.add(index)
        call = self.calls[index]
        try:
            return [cue_from_tool_call(call.name, call.arguments)]
        except BadCue as exc:
            call.result = f"error: {exc}"
            log.info("LLM tool call %s(%s) not performed: %s", call.name, call.arguments[:200], exc)
            return []

    def follow_up_messages(self) -> list[dict]:
        """The assistant's tool calls and their results, to send back with the next request."""
        ordered = [self.calls[i] for i in sorted(self.calls)]
        for n, call in enumerate(ordered):
            call.id = call.id or f"call_{n}"
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                for c in ordered
            ],
        }
        results = [{"role": "tool", "tool_call_id": c.id, "content": json.dumps({"result": c.result})} for c in ordered]
        return [assistant, *results]


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own error text (OpenAI and Ollama put it in body.error.message or body.message)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(msg, str) and msg.strip():
            return msg.strip().rstrip(".")
    return exc.response.reason_phrase or "no details"


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def _caused_by_refusal(exc: BaseException) -> bool:
    # The refusal is buried under the HTTP library's ConnectError; its text is the only portable signal.
    return any(isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower() for e in _causes(exc))


def _root_cause(exc: BaseException) -> str:
    root = _causes(exc)[-1]
    return (str(root).strip() or type(root).__name__).rstrip(".")
