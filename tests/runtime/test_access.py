"""Session tokens, per-client rate limits and the client's address: the rules, with a clock we move by hand."""

from __future__ import annotations

import ipaddress

import pytest
from avatar_runtime.access import (
    AccessDenied,
    Admission,
    RateLimiter,
    SessionTokens,
    client_address,
    mint_session_token,
    parse_networks,
)
from avatar_runtime.config import DEFAULT_TRUSTED_PROXIES, ServerConfig

SECRET = "s" * 32


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _denied(call) -> AccessDenied:
    with pytest.raises(AccessDenied) as denied:
        call()
    return denied.value


# -- tokens ------------------------------------------------------------------------------------------------
def test_a_minted_token_opens_one_session_only():
    clock = Clock()
    tokens = SessionTokens(SECRET, max_ttl_s=300, clock=clock)
    token = mint_session_token(SECRET, 60, now=clock.now)
    tokens.check(token)
    replay = _denied(lambda: tokens.check(token))
    assert (replay.status, replay.code) == (401, "token_used")
    tokens.check(mint_session_token(SECRET, 60, now=clock.now))  # a fresh one still works


def test_a_refunded_token_can_be_used_again():
    tokens = SessionTokens(SECRET, max_ttl_s=300, clock=Clock())
    token = mint_session_token(SECRET, 60, now=Clock().now)
    nonce = tokens.check(token)
    tokens.refund(nonce)  # e.g. the server was full: the client retries with the same token
    tokens.check(token)


def test_expired_tokens_are_refused_and_forgotten():
    clock = Clock()
    tokens = SessionTokens(SECRET, max_ttl_s=300, clock=clock)
    token = mint_session_token(SECRET, 30, now=clock.now)
    tokens.check(token)
    clock.now += 31
    assert _denied(lambda: tokens.check(token)).code == "token_expired"
    clock.now += 10
    tokens.check(mint_session_token(SECRET, 30, now=clock.now))
    assert len(tokens._used) == 1  # the expired nonce was dropped from memory


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # signature bit flipped
        lambda t: t.replace("v1.", "v2.", 1),
        lambda t: "v1." + str(int(t.split(".")[1]) + 1000) + "." + ".".join(t.split(".")[2:]),  # expiry extended
        lambda t: t + ".extra",
        lambda t: "",
        lambda t: "v1.abc.def.ghi",
        lambda t: "v1." + "9" * 300,  # oversized
        lambda t: t.split(".")[0] + ".100." + ".".join(t.split(".")[2:]),
    ],
)
def test_forged_and_malformed_tokens_are_refused(mangle):
    clock = Clock()
    tokens = SessionTokens(SECRET, max_ttl_s=300, clock=clock)
    denied = _denied(lambda: tokens.check(mangle(mint_session_token(SECRET, 60, now=clock.now))))
    assert denied.status == 401 and denied.code in ("unauthorized", "token_expired")


def test_a_token_signed_with_another_secret_or_living_too_long_is_refused():
    clock = Clock()
    tokens = SessionTokens(SECRET, max_ttl_s=300, clock=clock)
    assert _denied(lambda: tokens.check(mint_session_token("x" * 32, 60, now=clock.now))).code == "unauthorized"
    too_long = _denied(lambda: tokens.check(mint_session_token(SECRET, 3600, now=clock.now)))
    assert too_long.code == "unauthorized" and "300" in str(too_long)


def test_a_flood_of_valid_tokens_is_refused_rather_than_forgotten():
    clock = Clock()
    tokens = SessionTokens(SECRET, max_ttl_s=300, clock=clock, max_remembered=3)
    for _ in range(3):
        tokens.check(mint_session_token(SECRET, 60, now=clock.now))
    busy = _denied(lambda: tokens.check(mint_session_token(SECRET, 60, now=clock.now)))
    assert (busy.status, busy.code, busy.retry_after_s) == (503, "busy", 5)


# -- rate limits ---------------------------------------------------------------------------------------------
def test_burst_then_the_sustained_rate():
    clock = Clock(0.0)
    limiter = RateLimiter(per_minute=6, burst=3, clock=clock)  # one every 10 s
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(10.0)
    assert limiter.take("b") == 0  # another client has its own bucket
    clock.now += 5
    assert limiter.take("a") == pytest.approx(5.0)  # half a token refilled: 5 s to go
    clock.now += 5
    assert limiter.take("a") == 0
    clock.now += 3600
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refills only up to the burst


def test_the_limiter_forgets_the_oldest_keys_past_its_size():
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock(0.0), max_keys=2)
    for key in ("a", "b", "c"):
        assert limiter.take(key) == 0
    assert len(limiter._buckets) == 2 and "a" not in limiter._buckets


# -- the client's address ----------------------------------------------------------------------------------
TRUSTED = parse_networks(DEFAULT_TRUSTED_PROXIES)


@pytest.mark.parametrize(
    ("peer", "xff", "client"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.7", "203.0.113.5"),  # an untrusted peer cannot name someone else
        ("10.1.2.3", "198.51.100.7", "198.51.100.7"),  # the ingress controller speaks for the client
        ("10.1.2.3", "1.2.3.4, 198.51.100.7", "198.51.100.7"),  # the client forged the left part: ignored
        ("10.1.2.3", "198.51.100.7, 10.9.9.9", "198.51.100.7"),  # two proxies: skip the trusted hops
        ("10.1.2.3", "10.9.9.9", "10.9.9.9"),  # only proxies: the left-most trusted one
        ("10.1.2.3", "not-an-ip", "10.1.2.3"),
        ("::1", "2001:db8::1", "2001:db8::1"),
        (None, None, "unknown"),
    ],
)
def test_client_address_trusts_forwarded_for_only_from_trusted_proxies(peer, xff, client):
    assert client_address(peer, xff, TRUSTED) == client


def test_bad_trusted_proxy_entries_are_config_errors():
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks(["10.0.0.0/8", "not-a-net"])
    with pytest.raises(ValueError, match="trusted_proxies"):
        ServerConfig(trusted_proxies=["300.1.1.1/8"])
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in TRUSTED)


# -- admission: the three together -------------------------------------------------------------------------
def _admission(**server) -> Admission:
    return Admission(ServerConfig(**server), clock=Clock(), monotonic=Clock(0.0))


def test_admission_without_auth_admits_everyone_within_the_rate():
    admission = _admission(sessions_per_minute=60, sessions_burst=2)
    assert admission.check("203.0.113.5", None, "") is None
    admission.check("203.0.113.5", None, "")
    limited = _denied(lambda: admission.check("203.0.113.5", None, ""))
    assert (limited.status, limited.code, limited.retry_after_s) == (429, "rate_limited", 1)
    for _ in range(10):  # loopback (this machine's own user) is never throttled
        admission.check("127.0.0.1", None, "")


def test_admission_with_a_bearer_token_and_session_tokens():
    admission = _admission(auth_token="shared-secret-token", session_token_secret=SECRET)
    assert admission.check("127.0.0.1", None, "Bearer shared-secret-token") is None
    assert admission.check("127.0.0.1", None, "Bearer " + mint_session_token(SECRET, 60, now=Clock().now))
    for header in ("", "Bearer", "Bearer wrong", "Basic shared-secret-token", "bearer shared-secret-token"):
        assert _denied(lambda h=header: admission.check("127.0.0.1", None, h)).code == "unauthorized"


def test_rate_limit_comes_before_the_token_check():
    admission = _admission(session_token_secret=SECRET, sessions_per_minute=60, sessions_burst=1)
    assert _denied(lambda: admission.check("203.0.113.5", None, "Bearer junk")).code == "unauthorized"
    assert _denied(lambda: admission.check("203.0.113.5", None, "Bearer junk")).code == "rate_limited"
