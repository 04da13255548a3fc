"""Fixtures shared by the end-to-end and browser tests: models loaded once, a runtime per test, a stub LLM."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from avatar_runtime.config import RuntimeConfig, load_config
from avatar_runtime.engines.base import ASREngine, TTSEngine
from avatar_runtime.engines.llm_openai import OpenAILLM
from avatar_runtime.engines.loader import build_engines
from avatar_runtime.expression.cues import TOOLS
from avatar_runtime.pipeline.reply import Engines

from tests.support.openai_server import OpenAIStubServer
from tests.support.runtime_server import RuntimeServer


@pytest.fixture(scope="session")
def shared_engines() -> Engines:
    """VAD, ASR, TTS and A2E as `make run` loads them (default config), loaded once for all tests."""
    return build_engines(load_config(env={}))


@pytest.fixture
def serve(shared_engines):
    """`serve(stub, config=None, tts=None, asr=None, **server_settings)` → a running RuntimeServer whose LLM is the
    given stub server (and whose TTS / ASR are `tts` / `asr` when given, e.g. a recorder around the shared engine)."""
    stack = contextlib.ExitStack()

    def start(
        stub: OpenAIStubServer | None,
        config: RuntimeConfig | None = None,
        *,
        tts: TTSEngine | None = None,
        asr: ASREngine | None = None,
        **server,
    ) -> RuntimeServer:
        config = config or load_config(env={})
        for key, value in server.items():
            setattr(config.server, key, value)
        llm = shared_engines.llm
        if stub is not None:
            config.llm.base_url = stub.base_url
            config.llm.model = "stub-model"
            llm = OpenAILLM(
                base_url=stub.base_url,
                api_key=config.llm.api_key or "test-key",
                model="stub-model",
                timeout_s=config.llm.timeout_s,
                tools=TOOLS if config.expression.llm_control == "tools" else None,
            )
        tts, asr = tts or shared_engines.tts, asr or shared_engines.asr
        engines = Engines(shared_engines.vad, asr, llm, tts, shared_engines.a2e)
        return stack.enter_context(RuntimeServer(config, engines))

    yield start
    stack.close()


@pytest.fixture
def stub() -> Iterator[OpenAIStubServer]:
    with OpenAIStubServer() as server:
        yield server
