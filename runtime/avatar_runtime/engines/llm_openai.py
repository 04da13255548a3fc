"""LLM engine for any OpenAI-compatible chat completions server (OpenAI, Ollama, LM Studio, vLLM, llama.cpp).

Replies are streamed so the first sentence can go to TTS while the rest is still being generated. The
HTTP stream is tied to the consumer: when the session cancels the turn (barge-in) or closes the generator,
the response is closed at once, which makes the server stop generating instead of burning GPU time on a
reply nobody will hear.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import openai

log = logging.getLogger(__name__)

# Local servers (Ollama, LM Studio, llama.cpp) ignore the key, but the client refuses to run without one.
PLACEHOLDER_API_KEY = "not-needed"


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        # A single quick retry covers a dropped keep-alive connection; more would only make a dead server
        # look like a slow one to someone waiting for the avatar to answer.
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=api_key or PLACEHOLDER_API_KEY, timeout=timeout_s, max_retries=max_retries
        )

    async def stream(self, messages: Sequence[dict[str, str]]) -> AsyncIterator[str]:
        """Yield the reply to `messages` as text deltas; raises `LLMError` on any server or network failure."""
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]  # plain role/content dicts are valid params
                stream=True,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        # `async with` closes the HTTP response on every exit path: normal end, error, CancelledError from a
        # barge-in and GeneratorExit from aclose(). Closing an unfinished HTTP/1.1 response drops the
        # connection, which is how the server learns to stop generating.
        async with response:
            try:
                async for chunk in response:
                    for choice in chunk.choices or ():
                        delta = choice.delta.content if choice.delta is not None else None
                        if delta:  # role-only chunks and the final finish_reason chunk carry no text
                            yield delta
            except openai.OpenAIError as exc:
                raise self._translate(exc) from exc

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
