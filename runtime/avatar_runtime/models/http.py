"""The one HTTP client of the model cache, its retry policy and the errors that name host and file."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from .. import __version__

T = TypeVar("T")

# 408/429 and 5xx are the hub (or a CDN in front of it) being busy; anything else will not fix itself.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ModelCacheError(Exception):
    """A model could not be fetched or verified; the message is meant for the operator, one line."""


class HubError(ModelCacheError):
    """The hub or the network failed (after retries), or said no; names the host and what was asked for."""

    def __init__(self, url: str, what: str, reason: str) -> None:
        self.host = urlsplit(url).netloc
        self.url, self.what, self.reason = url, what, reason
        super().__init__(f"{self.host}: {what}: {reason}")


class RetryableStatus(Exception):
    """A response status worth another try (raised inside `with_retries`)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2**attempt)


def with_retries(
    call: Callable[[], T], policy: RetryPolicy, url: str, what: str, sleep: Callable[[float], None] = time.sleep
) -> T:
    """`call()`, tried again after connection errors and retryable statuses, with exponential backoff.

    `call` is expected to pick up where the previous try stopped (downloads re-read their `.part` size).
    """
    for attempt in range(policy.retries + 1):
        try:
            return call()
        except (httpx.TransportError, RetryableStatus) as exc:
            if attempt == policy.retries:
                raise HubError(url, what, f"{describe(exc)} (gave up after {attempt + 1} attempts)") from exc
            sleep(policy.delay(attempt))
    raise AssertionError("unreachable")


def describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc or type(exc).__name__})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


def status_reason(response: httpx.Response) -> str:
    """A short explanation of an error response, with the hub's own message when it sends one."""
    reason = f"HTTP {response.status_code}"
    hint = {
        401: "unauthorized (a gated or private repo needs a token: HF_TOKEN)",
        403: "forbidden (accept the model's terms on the hub, or check the token)",
        404: "not found (check repo, revision and file names)",
    }.get(response.status_code)
    if hint:
        reason += f" {hint}"
    detail = response.headers.get("x-error-message")
    if not detail:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            detail = body.get("error") or body.get("Message") or body.get("message")
    return f"{reason}: {str(detail)[:200]}" if detail else reason


def check_status(response: httpx.Response, url: str, what: str) -> None:
    """Raise RetryableStatus or HubError for an error response; return for 2xx/3xx."""
    if response.status_code in RETRYABLE_STATUS:
        raise RetryableStatus(response.status_code)
    if response.status_code >= 400:
        raise HubError(url, what, status_reason(response))


def make_client(timeout_s: float) -> httpx.Client:
    """The client every request goes through: redirects followed (the hubs answer downloads with a CDN URL).

    httpx drops the Authorization header when a redirect leaves the origin, so a token sent to the hub never
    reaches the CDN or another host.
    """
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
        headers={"User-Agent": f"avatar-runtime/{__version__} (models pull)"},
    )
