"""What the doctor examines: the loaded config, and how the runtime will be served and opened in a browser."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..config import RuntimeConfig

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_NETWORK_TIMEOUT_S = 5.0


def is_wildcard(host: str) -> bool:
    return host in WILDCARD_HOSTS


def is_loopback(host: str) -> bool:
    """localhost names and loopback addresses: the hosts browsers treat as secure contexts over plain HTTP."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Target:
    """The runtime as `serve` would run it with the same --config/--host/--port/--no-tls, plus where users open it.

    `public_hosts`: the names people type into the browser (--public-host); when none is given they are the bind
    host, or `localhost` for a wildcard bind (`public_hosts_guessed` then says other machines were not named).
    `trust_store`: a PEM bundle of trusted CAs; None = this machine's system store.
    """

    config: RuntimeConfig
    bind_host: str
    port: int
    tls_enabled: bool
    public_hosts: tuple[str, ...]
    public_hosts_guessed: bool = False
    config_path: str | None = None
    skip_network: bool = False
    network_timeout_s: float = DEFAULT_NETWORK_TIMEOUT_S
    trust_store: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_enabled else "http"

    def url(self, host: str) -> str:
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{self.scheme}://{shown}:{self.port}"

    def command(self, subcommand: str) -> str:
        """An `avatar-runtime` command line for a fix, with this run's --config so it can be pasted as is."""
        config = f" --config {self.config_path}" if self.config_path else ""
        return f"avatar-runtime {subcommand}{config}"


def make_target(
    config: RuntimeConfig,
    *,
    config_path: str | None = None,
    host: str | None = None,
    port: int | None = None,
    no_tls: bool = False,
    public_hosts: tuple[str, ...] | list[str] = (),
    skip_network: bool = False,
    network_timeout_s: float = DEFAULT_NETWORK_TIMEOUT_S,
    trust_store: Path | None = None,
) -> Target:
    """Resolve --host/--port/--no-tls the way `serve` does (flags win over the config)."""
    bind_host = host or config.server.host
    guessed = False
    if public_hosts:
        shown = tuple(public_hosts)
    elif is_wildcard(bind_host):
        shown, guessed = ("localhost",), True  # what `serve` prints for a wildcard bind
    else:
        shown = (bind_host,)
    return Target(
        config=config,
        bind_host=bind_host,
        port=port or config.server.port,
        tls_enabled=config.tls.enabled and not no_tls,
        public_hosts=shown,
        public_hosts_guessed=guessed,
        config_path=config_path,
        skip_network=skip_network,
        network_timeout_s=network_timeout_s,
        trust_store=trust_store,
    )
