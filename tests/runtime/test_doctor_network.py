"""`avatar-runtime doctor`, the network checks, against real servers on loopback: a held port, the runtime itself,
coturn (Debian's `turnserver`, installed by hack/install-test.sh) with the right and a wrong secret, the
OpenAI-compatible stub server, and a plain listening socket standing for a CosyVoice server."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from avatar_runtime.app import create_app
from avatar_runtime.config import RuntimeConfig, TLSConfig
from avatar_runtime.doctor import network, services, turn
from avatar_runtime.doctor.target import make_target
from avatar_runtime.tls import ensure_certificate

from tests.support.net import free_port
from tests.support.openai_server import OpenAIStubServer
from tests.support.threaded_server import ThreadedUvicorn

SECRET = "doctor-test-secret"


def target(config: dict | None = None, **options):
    options.setdefault("host", "127.0.0.1")
    options.setdefault("network_timeout_s", 1.0)
    return make_target(RuntimeConfig.model_validate(config or {}), **options)


# -- the serve port -------------------------------------------------------------------------------------------


def test_a_free_port_and_a_port_held_by_another_program():
    port = free_port()
    [free] = network.check_port(target(port=port))
    assert free.status == "ok" and free.finding == f"127.0.0.1:{port} is free for serve"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        [held] = network.check_port(target(port=port))
    assert held.status == "fail" and f"127.0.0.1:{port} is in use by another program" in held.finding
    assert f"ss -ltnp 'sport = :{port}'" in held.fix and "--port" in held.fix


def test_an_address_not_on_this_machine_fails():
    [result] = network.check_port(target(host="192.0.2.1", port=free_port()))  # TEST-NET-1, never local
    assert result.status == "fail" and "not an address of this machine" in result.finding


@pytest.fixture
def unready_runtime(tmp_path) -> Iterator[int]:
    """The real runtime app, up but not ready: SenseVoice is configured and the model cache is empty."""
    config = RuntimeConfig.model_validate(
        {"asr": {"engine": "sensevoice"}, "tts": {"engine": "espeak"}, "model_dir": str(tmp_path / "models")}
    )
    server = ThreadedUvicorn(create_app(config), "runtime")
    server.start()
    deadline = time.monotonic() + 30
    while "still loading" in httpx.get(f"http://127.0.0.1:{server.port}/readyz").text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield server.port
    server.stop()


def test_a_runtime_already_serving_is_asked_whether_it_is_ready(unready_runtime):
    results = network.check_port(target(port=unready_runtime, no_tls=True))
    assert [(r.name, r.status) for r in results] == [("port", "info"), ("running runtime", "fail")]
    assert "a runtime already answers" in results[0].finding and "port check skipped" in results[0].finding
    finding = results[1].finding
    assert finding.startswith(f"http://127.0.0.1:{unready_runtime}/readyz answers 503: not ready: EngineUnavailable")
    assert "asr: model 'sensevoice-small' is not in the model cache" in finding


# -- the microphone's secure context --------------------------------------------------------------------------


def test_microphone_needs_https_off_localhost():
    assert network.check_secure_context(target(no_tls=True)).status == "ok"  # http://127.0.0.1
    remote = network.check_secure_context(target(host="10.1.2.3", no_tls=True))
    assert remote.status == "fail" and "http://10.1.2.3:8282 block the microphone" in remote.finding
    assert "tls.enabled: true" in remote.fix
    everywhere = network.check_secure_context(target(host="0.0.0.0", no_tls=True))
    assert everywhere.status == "warn" and "getUserMedia" in everywhere.finding
    named = network.check_secure_context(target(host="0.0.0.0", public_hosts=["avatar.lan"]))
    assert named.status == "ok" and "https://avatar.lan:8282" in named.finding


# -- TURN: a real coturn ---------------------------------------------------------------------------------------

needs_turnserver = pytest.mark.skipif(
    shutil.which("turnserver") is None, reason="coturn's turnserver is not installed (hack/install-test.sh)"
)


class Coturn:
    """turnserver on 127.0.0.1 with use-auth-secret (as docker-compose.yml and the operator run it), TURNS too."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.tls_port = free_port(), free_port()
        self.cert, key = ensure_certificate(TLSConfig(self_signed_dir=str(tmp / "certs")))
        relay = 50100 + self.port % 400 * 10  # a small relay range of its own, away from other tests' ranges
        args = [
            "turnserver", "--log-file=stdout", f"--pidfile={tmp}/turnserver.pid", f"--userdb={tmp}/turndb",
            "--realm=doctor.test", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}", f"--tls-listening-port={self.tls_port}", f"--cert={self.cert}",
            f"--pkey={key}", f"--min-port={relay}", f"--max-port={relay + 9}", "--use-auth-secret",
            f"--static-auth-secret={SECRET}", "--no-cli", "--no-dtls", "--fingerprint",
        ]  # fmt: skip
        self.log = tmp / "turnserver.log"
        self.process = subprocess.Popen(args, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def coturn(tmp_path) -> Iterator[Coturn]:
    server = Coturn(tmp_path)
    yield server
    server.stop()


def turn_urls(port: int) -> list[str]:
    return [f"turn:127.0.0.1:{port}?transport=udp", f"turn:127.0.0.1:{port}?transport=tcp"]


@needs_turnserver
def test_turn_allocates_with_the_runtimes_credentials(coturn):
    config = {"turn": {"urls": turn_urls(coturn.port), "static_auth_secret": SECRET}}
    results = turn.check(target(config))
    assert [r.status for r in results] == ["ok", "ok"], results
    assert "relayed address 127.0.0.1:" in results[0].finding and "(UDP)" in results[0].finding
    assert "(TCP)" in results[1].finding and "turn.static_auth_secret accepted" in results[1].finding
    served_to_others = turn.check(target(config, host="0.0.0.0"))  # a relay on 127.0.0.1 helps nobody elsewhere
    assert [r.status for r in served_to_others] == ["warn", "warn"]
    assert "browsers on other machines cannot reach 127.0.0.1" in served_to_others[0].finding


@needs_turnserver
def test_turn_with_a_wrong_secret_fails_naming_the_credentials(coturn):
    config = {"turn": {"urls": turn_urls(coturn.port), "static_auth_secret": "not-the-secret"}}
    results = turn.check(target(config))
    assert [r.status for r in results] == ["fail", "fail"]
    assert all(r.finding.startswith("credentials refused: 127.0.0.1") and "401" in r.finding for r in results)
    assert "static-auth-secret" in results[0].fix


@needs_turnserver
def test_turns_trusts_only_what_the_client_trusts(coturn):
    config = {"turn": {"urls": [f"turns:127.0.0.1:{coturn.tls_port}"], "static_auth_secret": SECRET}}
    [trusted] = turn.check(target(config), ssl_context=ssl.create_default_context(cafile=str(coturn.cert)))
    assert trusted.status == "ok" and "(TLS)" in trusted.finding
    [untrusted] = turn.check(target(config))  # the system store: the self-signed certificate is refused
    assert untrusted.status == "fail" and "CERTIFICATE_VERIFY_FAILED" in untrusted.finding


def test_turn_with_nothing_listening_fails_as_unreachable():
    config = {"turn": {"urls": turn_urls(free_port()), "static_auth_secret": SECRET}}
    udp, tcp = turn.check(target(config, network_timeout_s=0.5))
    assert udp.status == tcp.status == "fail"
    assert udp.finding.startswith("unreachable: no answer from 127.0.0.1") and "nothing listens on udp/" in udp.finding
    assert tcp.finding.startswith("unreachable: 127.0.0.1") and "refused" in tcp.finding.lower()
    assert "firewall" in udp.fix


def test_turn_urls_are_parsed_like_browsers_do():
    assert turn.parse_turn_url("turn:turn.example.com") == turn.TurnURL(
        "turn:turn.example.com", False, "turn.example.com", 3478, "udp"
    )
    secure = turn.parse_turn_url("turns:[2001:db8::1]:443?transport=tcp")
    assert (secure.secure, secure.host, secure.port, secure.transport) == (True, "2001:db8::1", 443, "tcp")
    for bad in ("stun:x", "turn:", "turns:x?transport=udp", "turn:x:abc"):
        with pytest.raises(ValueError):
            turn.parse_turn_url(bad)
    [result] = turn.check(target({"turn": {"urls": ["turn:x:abc"]}}))
    assert result.status == "fail" and "port 'abc'" in result.finding


def test_no_turn_warns_off_loopback_and_network_checks_can_be_skipped():
    [local] = turn.check(target())
    assert local.status == "ok" and "not needed on loopback" in local.finding
    [exposed] = turn.check(target(host="0.0.0.0"))
    assert exposed.status == "warn" and "behind NAT" in exposed.finding and "coturn" in exposed.fix
    [skipped] = turn.check(target({"turn": {"urls": ["turn:127.0.0.1:9"]}}, skip_network=True))
    assert skipped.status == "skip"


# -- LLM and online voices -------------------------------------------------------------------------------------


def test_llm_endpoint_lists_the_configured_model():
    with OpenAIStubServer(models=["llama3.2", "qwen2.5"]) as stub:
        found = services.check_llm(target({"llm": {"base_url": stub.base_url, "model": "qwen2.5"}}))
        absent = services.check_llm(target({"llm": {"base_url": stub.base_url, "model": "gpt-4o-mini"}}))
        no_v1 = services.check_llm(target({"llm": {"base_url": stub.base_url.removesuffix("/v1")}}))
        assert [r.path for r in stub.requests] == ["/v1/models", "/v1/models", "/models"]
    assert found.status == "ok" and "serves 'qwen2.5'" in found.finding
    assert absent.status == "fail" and "does not serve model 'gpt-4o-mini' (it lists: llama3.2, qwen2.5)" in (
        absent.finding
    )
    assert "AVATAR_LLM_MODEL" in absent.fix
    assert no_v1.status == "warn" and "/v1" in no_v1.fix


def test_llm_unreachable_embedded_and_skipped():
    down = services.check_llm(target({"llm": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}}))
    assert down.status == "fail" and "is unreachable: ConnectError" in down.finding
    embedded = services.check_llm(target())
    assert embedded.status == "info" and "embedded offline responder" in embedded.finding
    assert "OPENAI_BASE_URL" in embedded.fix
    skipped = services.check_llm(target({"llm": {"base_url": "http://127.0.0.1:9/v1"}}, skip_network=True))
    assert skipped.status == "skip"


def test_online_voice_reachability_and_its_fallback():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        tts = {"engine": "cosyvoice", "cosyvoice": {"mode": "server", "url": url}}
        [up] = services.check_tts(target({"tts": tts}))
    assert up.status == "ok" and f"{url}/inference_sft is reachable" in up.finding
    gone = {**tts, "cosyvoice": {"mode": "server", "url": f"http://127.0.0.1:{free_port()}"}}
    [falls_back] = services.check_tts(target({"tts": gone}))
    assert falls_back.status == "warn" and "the piper voice will speak instead" in falls_back.finding
    [fails] = services.check_tts(target({"tts": {**gone, "fallback": "none"}}))
    assert fails.status == "fail" and "ConnectionRefusedError" in fails.finding


def test_cosyvoice_without_its_key_fails_before_any_connection(monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    [result] = services.check_tts(target({"tts": {"engine": "cosyvoice"}}, skip_network=True))
    assert result.status == "fail" and "no DashScope API key" in result.finding
