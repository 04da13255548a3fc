"""docker-compose.yml, .env.example and hack/compose-init.sh: the single GPU host setup, checked without Docker.

The chain a user runs is run here: compose-init.sh writes .env (random TURN secret) and a certificate in a copy of
the checkout; that .env fills the compose file, which then passes the Compose Specification's JSON schema and the
real Docker Compose v2 `config`; the runtime config it mounts loads with the runtime's own loader; coturn's command
line is the operator's; and Debian's turnserver, started with it on loopback, answers STUN and allocates a relay
for the credentials the runtime would hand a browser, to the runtime container's address only.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import ipaddress
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aioice import stun
from aioice.turn import TurnClientUdpProtocol
from avatar_operator.builders import coturn, runtime_config
from avatar_operator.builders.common import RUNTIME_PORT, Owner
from avatar_operator.spec import parse_deployment
from avatar_runtime.config import load_config
from avatar_runtime.ice import ice_servers
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.packaging.compose import (
    InterpolationError,
    compose_binary,
    interpolate,
    interpolate_text,
    read_env_file,
    variables,
)
from tests.packaging.images import REPO, exec_form, parse_dockerfile
from tests.support.net import free_port

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
HOST = "avatar.example.com"
OWNER = Owner("AvatarDeployment", "compose", "default", "uid")


def compose_init(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "hack/compose-init.sh", *args], cwd=tree, capture_output=True, text=True, timeout=30)


def checkout_copy(tmp: Path) -> Path:
    """What compose-init.sh needs of a checkout: itself and .env.example."""
    (tmp / "hack").mkdir(parents=True)
    shutil.copy(REPO / "hack" / "compose-init.sh", tmp / "hack")
    shutil.copy(ENV_EXAMPLE, tmp)
    return tmp


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Path:
    """A checkout copy after `bash hack/compose-init.sh avatar.example.com`."""
    tree = checkout_copy(tmp_path_factory.mktemp("checkout"))
    result = compose_init(tree, HOST)
    assert result.returncode == 0, result.stderr
    return tree


@pytest.fixture(scope="module")
def env(initialised) -> dict[str, str]:
    return read_env_file(initialised / ".env")


@pytest.fixture(scope="module")
def compose(env) -> dict[str, Any]:
    """docker-compose.yml as Compose reads it with that .env (interpolated; YAML merge keys resolved)."""
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's schema, as vendored (with its sha256 and licence) by PyPI check-jsonschema."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))


def test_compose_init_writes_env_secret_and_certificate(tmp_path):
    tree = checkout_copy(tmp_path)
    first = compose_init(tree, HOST)
    assert first.returncode == 0, first.stderr
    env_file = tree / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # API keys and the TURN secret go in there
    values = read_env_file(env_file)
    assert values["AVATAR_PUBLIC_HOST"] == HOST
    secret = values["AVATAR_TURN_SECRET"]
    assert coturn.valid_secret(secret) and len(secret) == 43  # 32 random bytes, URL-safe base64
    # Only those two lines differ from .env.example.
    example = read_env_file(ENV_EXAMPLE)
    assert {k for k in values if values[k] != example[k]} == {"AVATAR_PUBLIC_HOST", "AVATAR_TURN_SECRET"}
    cert = x509.load_pem_x509_certificate((tree / "certs" / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [HOST, "localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    key = subprocess.run(["openssl", "pkey", "-in", tree / "certs" / "tls.key", "-pubout"], capture_output=True)
    assert key.stdout == cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if os.getuid() == 0:  # the container's user (uid 1000) must read the key
        assert (tree / "certs" / "tls.key").stat().st_uid == 1000
    # Idempotent: nothing is regenerated; a different host is refused instead of silently changing the .env.
    before = (env_file.read_text(), (tree / "certs" / "tls.crt").read_bytes())
    assert compose_init(tree).returncode == 0
    assert compose_init(tree, HOST).returncode == 0
    assert (env_file.read_text(), (tree / "certs" / "tls.crt").read_bytes()) == before
    other = compose_init(tree, "other.example.com")
    assert other.returncode == 2 and "already 'avatar.example.com'" in other.stderr


def test_compose_init_certifies_an_ip_address_and_refuses_nonsense(tmp_path):
    tree = checkout_copy(tmp_path / "ip")
    assert compose_init(tree, "203.0.113.7").returncode == 0
    cert = x509.load_pem_x509_certificate((tree / "certs" / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["203.0.113.7", "127.0.0.1"]
    bad = compose_init(checkout_copy(tmp_path / "bad"), "not a host")
    assert bad.returncode == 2 and "not a DNS name or an IP address" in bad.stderr


def test_compose_file_follows_the_compose_specification(compose):
    validator = jsonschema.Draft202012Validator(compose_schema())
    assert [error.message for error in validator.iter_errors(compose)] == []
    # The schema is strict where it matters: a misspelt key or a wrong type is reported.
    typo = json.loads(json.dumps(compose))
    typo["services"]["runtime"]["deploy"]["resources"]["reservations"]["device"] = []
    typo["services"]["coturn"]["network_mode"] = 5
    errors = sorted(error.message for error in validator.iter_errors(typo))
    assert any(error.startswith("'device' does not match") for error in errors), errors
    assert any("5 is not of type 'string'" in error for error in errors), errors


def _docker_compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "HOME": str(project)}  # no stray variable overrides the .env file
    command = [compose_binary(), "-f", COMPOSE_FILE, "--project-directory", project, "--env-file", project / ".env"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=clean, timeout=60)


def test_docker_compose_reads_it_as_we_do(initialised, compose, tmp_path):
    result = _docker_compose(initialised, "--profile", "models", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert set(model["services"]) == {"runtime", "models", "coturn"}
    assert model["configs"]["runtime-config"]["content"] == compose["configs"]["runtime-config"]["content"]
    assert model["services"]["coturn"]["command"] == compose["services"]["coturn"]["command"]
    assert model["services"]["runtime"]["environment"] == compose["services"]["runtime"]["environment"]
    assert model["services"]["runtime"]["deploy"]["resources"] == compose["services"]["runtime"]["deploy"]["resources"]
    # The one-shot models service is not part of a plain `up`.
    plain = json.loads(_docker_compose(initialised, "config", "--format", "json").stdout)
    assert set(plain["services"]) == {"runtime", "coturn"}
    # Without compose-init there is no secret: Compose stops with our message, before anything starts.
    fresh = checkout_copy(tmp_path)
    shutil.copy(ENV_EXAMPLE, fresh / ".env")
    refused = _docker_compose(fresh, "config", "--quiet")
    assert refused.returncode != 0 and "run hack/compose-init.sh" in refused.stderr
    with pytest.raises(InterpolationError, match="run hack/compose-init.sh"):
        interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), read_env_file(ENV_EXAMPLE))


def test_env_example_documents_every_variable_and_holds_no_secret():
    used = variables(COMPOSE_FILE.read_text())
    example = read_env_file(ENV_EXAMPLE)
    assert used == set(example), f"in compose only: {used - set(example)}; in .env.example only: {set(example) - used}"
    documented = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip():
            documented = False  # a blank line ends a comment block
        elif line.startswith("#"):
            documented = True
        else:
            assert documented, f"{line.split('=')[0]} has no comment above it in .env.example"
    for key, value in example.items():
        if re.search(r"KEY|SECRET|TOKEN", key):
            assert value == "", f"{key} must be empty in .env.example"


def test_runtime_gets_one_gpu_and_restarts(compose):
    runtime = compose["services"]["runtime"]
    assert runtime["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert runtime["restart"] == compose["services"]["coturn"]["restart"] == "unless-stopped"
    # The image's own HEALTHCHECK command, with more time to load the GPU engines.
    image_check = parse_dockerfile(REPO / "Dockerfile.runtime")[-1].last("HEALTHCHECK").value.split(" CMD ", 1)[1]
    assert runtime["healthcheck"]["test"] == ["CMD", *exec_form(image_check)]
    assert compose["services"]["models"]["profiles"] == ["models"]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """{target: source} of a service's volumes, short or long syntax."""
    mounts = {}
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def _runtime_config(compose: dict[str, Any], tmp_path: Path):
    """The mounted config file, loaded by the runtime's own loader with the runtime service's environment."""
    path = tmp_path / "config.yaml"
    path.write_text(compose["configs"]["runtime-config"]["content"])
    return load_config(path, env=compose["services"]["runtime"]["environment"])


def test_runtime_config_loads_and_fits_the_image_and_the_volumes(compose, env, initialised, tmp_path):
    runtime = compose["services"]["runtime"]
    config = _runtime_config(compose, tmp_path)
    image = parse_dockerfile(REPO / "Dockerfile.runtime")[-1]
    mounts = _mounts(runtime)
    # The config is mounted where the command reads it.
    (mount,) = runtime["configs"]
    assert runtime["command"] == ["serve", "--config", mount["target"]] and mount["source"] == "runtime-config"
    # Port: the runtime's, the image's EXPOSE, the operator's; published on AVATAR_PORT.
    assert config.server.port == RUNTIME_PORT == int(image.last("EXPOSE").value)
    assert runtime["ports"] == [f"{env['AVATAR_PORT']}:{RUNTIME_PORT}"]
    # Models: read-only in the runtime, writable in the one-shot pull, the same volume, the image's AVATAR_MODEL_DIR.
    assert config.model_dir == image.env()["AVATAR_MODEL_DIR"] == "/models"
    assert mounts["/models"] == _mounts(compose["services"]["models"])["/models"] == env["AVATAR_MODELS"]
    assert any(v.endswith(":/models:ro") for v in runtime["volumes"] if isinstance(v, str))
    # Avatars: the runtime's avatar.dir, relative to the image's WORKDIR, is the avatars volume.
    assert os.path.normpath(Path(image.workdir()) / config.avatar.dir) == "/app/avatars" and "/app/avatars" in mounts
    # TLS: the certificate compose-init.sh made, through the certs bind mount.
    certs_target = next(target for target, source in mounts.items() if source == "./certs")
    for file in (config.tls.cert_file, config.tls.key_file):
        assert (initialised / "certs" / Path(file).relative_to(certs_target)).is_file()
    # The production engines on the GPU, as the operator configures a GPU AvatarDeployment.
    operator = runtime_config.values(OWNER, _spec(env))
    assert config.asr.model_dump(include=set(operator["asr"])) == operator["asr"]
    assert config.a2e.model_dump(include=set(operator["a2e"])) == operator["a2e"]
    # TURN: the URLs of this coturn, with short-lived credentials from the shared secret.
    port = env["TURN_PORT"]
    assert config.turn.urls == [f"turn:{HOST}:{port}?transport=udp", f"turn:{HOST}:{port}?transport=tcp"]
    assert config.turn.static_auth_secret == env["AVATAR_TURN_SECRET"]
    (server,) = ice_servers(config.turn)
    assert server["urls"] == config.turn.urls and server["username"].endswith(":avatar") and server["credential"]


def _spec(env: dict[str, str]):
    """The AvatarDeployment whose operator-built coturn matches this compose file's (hostNetwork, same ports)."""
    turn = {
        "host": HOST,
        "hostNetwork": True,
        "minPort": int(env["TURN_MIN_PORT"]),
        "maxPort": int(env["TURN_MAX_PORT"]),
    }
    return parse_deployment({"image": "runtime:1", "gpu": {"count": 1}, "modelCacheRef": "cache", "turn": turn})


def _runtime_address(compose: dict[str, Any]) -> str:
    return compose["services"]["runtime"]["networks"]["avatar"]["ipv4_address"]


def test_coturn_runs_the_operators_arguments_on_the_host_network(compose, env):
    service = compose["services"]["coturn"]
    runtime_ip = _runtime_address(compose)
    # One source: the operator's builder, for the same ports and the runtime container as the only private peer.
    expected = coturn.turnserver_args(OWNER, _spec(env), [f"{runtime_ip}/32"])
    expected = [arg.replace("$(TURN_SECRET)", env["AVATAR_TURN_SECRET"]) for arg in expected]
    assert service["command"] == expected
    assert f"--denied-peer-ip={coturn.peer_ranges(['172.16.0.0/12'])[0]}" in expected  # the runtime's range is denied
    assert service["command"][-1] == f"--allowed-peer-ip={runtime_ip}"  # ... except the runtime itself
    assert service["network_mode"] == "host" and "ports" not in service and "networks" not in service
    sts = coturn.build_statefulset(OWNER, _spec(env), secret=env["AVATAR_TURN_SECRET"], allowed_peer_cidrs=[])
    assert service["entrypoint"] == sts["spec"]["template"]["spec"]["containers"][0]["command"] == ["turnserver"]
    # The operator's coturn series, which tests run as Debian's turnserver.
    assert service["image"].startswith(coturn.COTURN_IMAGE + ".")
    assert (
        service["read_only"] and service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
    )
    assert service["tmpfs"] == [coturn.STATE_DIR]  # pidfile and user DB, on a read-only root


def test_network_relay_range_and_documented_ports_agree(compose, env, tmp_path):
    subnet = ipaddress.ip_network(compose["networks"]["avatar"]["ipam"]["config"][0]["subnet"])
    runtime_ip = ipaddress.ip_address(_runtime_address(compose))
    assert runtime_ip in subnet and runtime_ip not in (subnet.network_address, subnet.broadcast_address, subnet[1])
    low, high = int(env["TURN_MIN_PORT"]), int(env["TURN_MAX_PORT"])
    assert 1024 <= low < high <= 65535
    # A browser may allocate over UDP and TCP: two relays per conversation at most.
    assert high - low + 1 >= 2 * _runtime_config(compose, tmp_path).server.concurrent_limit
    docs = (REPO / "docs" / "docker.md").read_text()
    for documented in (f"{low}-{high}", f"{env['TURN_PORT']}/udp", f"{env['TURN_PORT']}/tcp", f"{RUNTIME_PORT}/tcp",
                       str(subnet)):  # fmt: skip
        assert documented in docs, f"docs/docker.md does not mention {documented}"
    header = COMPOSE_FILE.read_text().split("\nname:")[0]
    assert f"{RUNTIME_PORT}/tcp" in header and f"{env['TURN_PORT']}/udp+tcp" in header


def test_interpolation_follows_the_compose_rules():
    env = {"SET": "v", "EMPTY": ""}
    cases = {
        "${SET}": "v", "$SET/x": "v/x", "$${SET}": "${SET}", "${UNSET:-d}": "d", "${EMPTY:-d}": "d",
        "${EMPTY-d}": "", "${UNSET-${SET}}": "v", "${SET:+r}": "r", "${EMPTY:+r}": "", "${EMPTY+r}": "r", "a$": "a$",
    }  # fmt: skip
    assert {text: interpolate_text(text, env) for text in cases} == cases
    for text in ("${UNSET:?needed}", "${EMPTY:?needed}", "${UNSET?needed}"):
        with pytest.raises(InterpolationError, match="needed"):
            interpolate_text(text, env)
    assert interpolate_text("${EMPTY?needed}", env) == ""
    assert variables("${A:-${B}} $C $$D ${E?x}") == {"A", "B", "C", "E"}


# -- coturn, for real ------------------------------------------------------------------------------------------------
def _stun_binding(port: int) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS coturn reports to a STUN binding request from a UDP socket on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        for _ in range(6):  # UDP: retransmit like a STUN client would
            sock.sendto(bytes(request), ("127.0.0.1", port))
            try:
                response = stun.parse_message(sock.recv(2048))
            except TimeoutError:
                continue
            assert response.transaction_id == request.transaction_id
            assert response.message_class == stun.Class.RESPONSE
            assert response.attributes["XOR-MAPPED-ADDRESS"] == sock.getsockname()
            return response.attributes["XOR-MAPPED-ADDRESS"]
    raise AssertionError("no STUN answer over UDP")


async def _relay_permissions(port: int, username: str, password: str, peers: list[str]) -> dict[str, bool]:
    """Allocate a relay with these credentials, then ask for a permission to each peer: allowed or 403."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(("127.0.0.1", port), username=username, password=password, lifetime=600,
                                      channel_refresh_time=300),
        remote_addr=("127.0.0.1", port),
    )  # fmt: skip
    try:
        await protocol.connect()
        allowed = {}
        for number, peer in enumerate(peers):
            try:
                await protocol.channel_bind(0x4000 + number, (peer, 9))  # coturn checks the peer address here
                allowed[peer] = True
            except stun.TransactionFailed as exc:
                assert exc.response.attributes["ERROR-CODE"][0] == 403, exc.response
                allowed[peer] = False
        return allowed
    finally:
        transport.close()


@pytest.fixture
def turnserver(compose, tmp_path) -> Iterator[tuple[int, Path]]:
    """coturn's turnserver with the compose command (on loopback, a free port): (port, its log file)."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is installed by hack/install-test.sh")
    service = compose["services"]["coturn"]
    port = free_port()
    args = []
    for arg in service["command"]:
        arg = arg.replace(coturn.STATE_DIR, str(tmp_path))  # the tmpfs
        args.append(f"--listening-port={port}" if arg.startswith("--listening-port=") else arg)
    # Loopback only here (on the host network coturn listens on every interface and relays from them).
    args += ["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"]
    log = tmp_path / "turnserver.log"
    process = subprocess.Popen([*service["entrypoint"], *args], stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while True:  # ready = the TCP listener answers
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_turnserver_runs_the_compose_command_and_takes_the_runtimes_credentials(compose, turnserver, tmp_path):
    port, log = turnserver
    await asyncio.to_thread(_stun_binding, port)
    (server,) = ice_servers(_runtime_config(compose, tmp_path).turn)  # what a browser gets from /api/config
    runtime_ip = _runtime_address(compose)
    neighbour = str(ipaddress.ip_address(runtime_ip) + 1)  # another container on the same network
    peers = [runtime_ip, neighbour, "172.17.0.1", "192.168.1.1", "169.254.169.254", "8.8.8.8"]
    allowed = await _relay_permissions(port, server["username"], server["credential"], peers)
    assert allowed == {runtime_ip: True, neighbour: False, "172.17.0.1": False, "192.168.1.1": False,
                       "169.254.169.254": False, "8.8.8.8": True}  # fmt: skip
    with pytest.raises(stun.TransactionFailed) as wrong:  # credentials from another secret are refused
        await _relay_permissions(port, server["username"], server["credential"][::-1], [])
    assert wrong.value.response.attributes["ERROR-CODE"][0] == 401
    output = log.read_text()
    assert f"Default realm: {HOST}" in output
    assert f"White listing: {runtime_ip}" in output
    # Nothing in the arguments is ignored or questioned: the only errors are the refusals asked for above.
    expected = ("peer IP", "check_stun_auth")
    complaints = [line for line in output.splitlines() if re.search("ERROR|WARNING", line) and not any(
        reason in line for reason in expected
    )]  # fmt: skip
    assert complaints == []
