"""A conversation through a real coturn, relay only: Debian's `turnserver` runs on loopback with the arguments the
operator builds (tests/support/turnserver.py), the runtime hands out its short-lived REST credentials in
/api/config, and a peer that may only use relayed candidates (`iceTransportPolicy: relay`) talks to the avatar.

The runtime's own ICE candidates are this machine's interface address (aioice leaves out 127.0.0.1); coturn
relays to it only when it is allowed, as the operator allows exactly the runtime pods' network."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from aioice import stun
from aioice.ice import get_host_addresses
from aioice.turn import TurnClientUdpProtocol
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from avatar_operator.builders import coturn
from avatar_runtime.config import load_config
from avatar_runtime.ice import turn_rest_credentials

from tests.operator.test_builders_turn_cache import AVD, SECRET, deployment
from tests.support.peer import AvatarPeer
from tests.support.turnserver import Turnserver, needs_turnserver

pytestmark = needs_turnserver
HOST_ADDRESSES = get_host_addresses(use_ipv4=True, use_ipv6=False)


@pytest.fixture
def turnserver(tmp_path):
    servers: list[Turnserver] = []

    def start(allowed: list[str]) -> Turnserver:
        sts = coturn.build_statefulset(AVD, deployment(), secret=SECRET, allowed_peer_cidrs=allowed)
        servers.append(Turnserver(sts, SECRET, tmp_path))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _serve_with_turn(serve, port: int):
    config = load_config(env={})
    config.turn.urls = [f"turn:127.0.0.1:{port}?transport=udp"]
    config.turn.static_auth_secret = SECRET
    config.turn.stun_urls = []
    return serve(None, config)


async def _relay_only_peer(server) -> AvatarPeer:
    async with httpx.AsyncClient() as client:
        ice = (await client.get(server.url + "/api/config")).json()["iceServers"]
    assert ice and all(entry["username"] and entry["credential"] for entry in ice)  # ephemeral REST credentials
    servers = [RTCIceServer(urls=e["urls"], username=e["username"], credential=e["credential"]) for e in ice]
    return AvatarPeer(server.url, configuration=RTCConfiguration(servers, RTCIceTransportPolicy.RELAY))


@pytest.mark.skipif(not HOST_ADDRESSES, reason="no non-loopback IPv4 address for the runtime's host candidate")
async def test_a_relay_only_session_carries_audio_and_frames(serve, turnserver):
    relay = turnserver(allowed=[f"{address}/32" for address in HOST_ADDRESSES])
    server = _serve_with_turn(serve, relay.port)
    peer = await _relay_only_peer(server)
    await peer.connect()
    # Only relayed candidates were offered: every path goes through coturn.
    assert " typ relay" in peer.pc.localDescription.sdp and " typ host" not in peer.pc.localDescription.sdp
    peer.send({"type": "text", "text": "Hello through the relay"})
    done = await peer.wait_event("turn_end", timeout=30)
    assert done["reason"] == "done"
    assert len(peer.received.frames) > 10  # expression frames crossed the relay (data channel)
    audio = peer.received.audio_samples()
    assert np.abs(audio).max() > 0.05  # and the voice did (audio track)
    pair = peer.pc.getTransceivers()[0].receiver.transport.transport.iceGatherer.getLocalCandidates()
    assert pair and all(candidate.type == "relay" for candidate in pair)
    await peer.close()


@pytest.mark.skipif(not HOST_ADDRESSES, reason="no non-loopback IPv4 address for the runtime's host candidate")
async def test_a_relay_towards_a_denied_address_never_connects(serve, turnserver):
    # The runtime's address is in coturn's denied ranges and not allowed (the operator allows only the pod network):
    # the relay refuses to send there, so a relay-only peer cannot reach it.
    relay = turnserver(allowed=["10.244.0.0/16"])
    server = _serve_with_turn(serve, relay.port)
    peer = await _relay_only_peer(server)
    with pytest.raises((TimeoutError, ConnectionError)):
        await peer.connect(timeout=8)
    assert peer.pc.connectionState != "connected"
    await peer.pc.close()
    await asyncio.sleep(0.2)
    log = relay.log.read_text()
    assert any(f"peer IP {address} denied" in log for address in HOST_ADDRESSES), log[-2000:]


@pytest.mark.parametrize(
    ("secret", "ttl_s"),
    [(SECRET, -60), ("another-secret-of-someone-else", 600)],
    ids=["expired", "forged"],
)
async def test_expired_or_forged_credentials_get_no_relay(turnserver, secret, ttl_s):
    relay = turnserver(allowed=["10.244.0.0/16"])
    username, password = turn_rest_credentials(secret, ttl_s)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(("127.0.0.1", relay.port), username=username, password=password, lifetime=600,
                                      channel_refresh_time=300),
        remote_addr=("127.0.0.1", relay.port),
    )  # fmt: skip
    try:
        with pytest.raises(stun.TransactionFailed) as refused:
            await protocol.connect()
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    finally:
        transport.close()
    # and with the runtime's own fresh credentials the same server does allocate
    good_user, good_password = turn_rest_credentials(SECRET, 600)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(("127.0.0.1", relay.port), username=good_user, password=good_password,
                                      lifetime=600, channel_refresh_time=300),
        remote_addr=("127.0.0.1", relay.port),
    )  # fmt: skip
    try:
        relayed = await protocol.connect()
        assert relayed[0] == "127.0.0.1"
    finally:
        transport.close()
