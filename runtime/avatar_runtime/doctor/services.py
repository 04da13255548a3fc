"""The online services the config uses: the OpenAI-compatible LLM endpoint and the online voices (edge, CosyVoice)."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import httpx

from ..engines.base import EngineUnavailable
from ..engines.loader import OFFLINE_LLM_NOTICE, build_tts
from .result import Result
from .target import Target

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"  # what the openai client uses without a base URL
EDGE_FALLBACK_HOST = "speech.platform.bing.com"
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def check_llm(target: Target) -> Result:
    llm = target.config.llm
    if not (llm.base_url or llm.api_key):
        notice, _, advice = OFFLINE_LLM_NOTICE.partition(". Set")
        return Result("llm", "endpoint", "info", notice, f"set{advice}")
    base = (llm.base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
    if target.skip_network:
        return Result("llm", "endpoint", "skip", f"{base}: not checked (--skip-network)")
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    try:
        with httpx.Client(timeout=target.network_timeout_s) as client:
            response = client.get(f"{base}/models", headers=headers)
    except httpx.HTTPError as exc:
        finding = f"{base} is unreachable: {type(exc).__name__}: {exc or 'no answer'}"
        fix = "start the server, or fix OPENAI_BASE_URL / llm.base_url (e.g. http://localhost:11434/v1 for Ollama)"
        return Result("llm", "endpoint", "fail", finding, fix)
    if response.status_code in (401, 403):
        finding = f"{base}/models answered {response.status_code}: the API key was refused"
        return Result("llm", "endpoint", "fail", finding, "set OPENAI_API_KEY (or llm.api_key) to a valid key")
    if response.status_code == 404:
        finding = f"{base}/models answered 404: not an OpenAI-compatible API root, so the model cannot be checked"
        fix = "OpenAI-compatible base URLs usually end in /v1 (OPENAI_BASE_URL / llm.base_url)"
        return Result("llm", "endpoint", "warn", finding, fix)
    try:
        response.raise_for_status()
        served = [str(m["id"]) for m in response.json()["data"]]
    except (httpx.HTTPStatusError, ValueError, KeyError, TypeError) as exc:
        finding = f"{base}/models answered {response.status_code} without a model list ({type(exc).__name__})"
        return Result("llm", "endpoint", "warn", finding, "check that llm.base_url is an OpenAI-compatible API root")
    if llm.model in served:
        return Result("llm", "model", "ok", f"{base} serves {llm.model!r}")
    shown = ", ".join(served[:10]) + (f" and {len(served) - 10} more" if len(served) > 10 else "") or "none"
    finding = f"{base} does not serve model {llm.model!r} (it lists: {shown})"
    fix = f"set AVATAR_LLM_MODEL (or llm.model) to one it lists, or load it there (e.g. `ollama pull {llm.model}`)"
    return Result("llm", "model", "fail", finding, fix)


def reachable(url: str, timeout_s: float) -> str | None:
    """None when a TCP connection (plus a TLS handshake for https/wss) to the URL's host succeeds, else why not."""
    parts = urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 443)
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if scheme in ("https", "wss"):
                with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                    pass
    except (OSError, ValueError) as exc:  # ssl.SSLError and socket.timeout are OSErrors
        return f"{type(exc).__name__}: {exc}"
    return None


def _edge_url(proxy: str | None) -> str:
    if proxy:
        return proxy  # edge-tts tunnels through the proxy: reaching it is what this machine can check
    try:
        from edge_tts.constants import WSS_URL

        return WSS_URL
    except ImportError:
        return f"wss://{EDGE_FALLBACK_HOST}/"


def check_tts(target: Target) -> list[Result]:
    tts = target.config.tts
    if tts.engine not in ("edge", "cosyvoice"):
        return []
    # The engine's own constructor checks its settings (DashScope key, server URL, prompt audio) without I/O.
    primary_only = target.config.model_copy(update={"tts": tts.model_copy(update={"fallback": "none"})})
    try:
        engine = build_tts(primary_only)
    except (EngineUnavailable, ValueError, ImportError) as exc:
        reason = f"{exc.name} is not installed" if isinstance(exc, ImportError) and exc.name else str(exc)
        return [Result("tts", tts.engine, "fail", f"{tts.engine} TTS cannot start: {reason}", _tts_fix(tts.engine))]
    url = _edge_url(tts.edge.proxy) if tts.engine == "edge" else engine.url
    shown = urlsplit(url)._replace(query="").geturl()
    if target.skip_network:
        return [Result("tts", tts.engine, "skip", f"{tts.engine} TTS at {shown}: not checked (--skip-network)")]
    problem = reachable(url, target.network_timeout_s)
    if problem is None:
        return [Result("tts", tts.engine, "ok", f"{tts.engine} TTS: {shown} is reachable")]
    fix = "allow outbound HTTPS to it (or set tts.edge.proxy)" if tts.engine == "edge" else _tts_fix(tts.engine)
    if tts.fallback != "none":
        finding = f"{tts.engine} TTS: {shown} is unreachable ({problem}): the {tts.fallback} voice will speak instead"
        return [Result("tts", tts.engine, "warn", finding, fix)]
    return [Result("tts", tts.engine, "fail", f"{tts.engine} TTS: {shown} is unreachable ({problem})", fix)]


def _tts_fix(engine: str) -> str:
    if engine == "edge":
        return "pip install edge-tts (bash hack/install.sh --production)"
    return (
        "tts.cosyvoice.mode: dashscope needs DASHSCOPE_API_KEY; mode: server needs tts.cosyvoice.url of a running "
        "CosyVoice server (e.g. http://cosyvoice:50000)"
    )


def check(target: Target) -> list[Result]:
    return [check_llm(target), *check_tts(target)]
