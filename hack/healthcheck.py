#!/usr/bin/env python3
"""The runtime image's HEALTHCHECK: exit 0 when the runtime in this container answers `GET /healthz` with 200.

    python3 hack/healthcheck.py [PORT]        (default: $AVATAR_HEALTHCHECK_PORT, else 8282)

The same image serves HTTPS with a self-signed certificate (`docker run`, docker compose) or plain HTTP (`--no-tls`
in Kubernetes pods, where the kubelet's probes are used instead of this check), so it tries HTTPS first and then
HTTP, on 127.0.0.1. The certificate is not verified: the point is whether this process is alive, and the
self-signed one names the public host, not 127.0.0.1. Standard library only, so it runs with any python3.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def healthy(port: int, timeout_s: float = TIMEOUT_S) -> tuple[bool, str]:
    """(ok, what was seen) for https:// then http:// 127.0.0.1:PORT/healthz."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    seen = []
    for scheme in ("https", "http"):
        url = f"{scheme}://127.0.0.1:{port}/healthz"
        try:
            context = unverified if scheme == "https" else None
            with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
                return response.status == 200, f"{url}: {response.status}"
        except urllib.error.HTTPError as exc:  # the server answered, but not 200: no point trying the other scheme
            return False, f"{url}: {exc.code}"
        except (OSError, ssl.SSLError) as exc:
            seen.append(f"{url}: {getattr(exc, 'reason', exc)}")
    return False, "; ".join(seen)


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else int(os.environ.get("AVATAR_HEALTHCHECK_PORT", "8282"))
    ok, seen = healthy(port)
    print(("healthy: " if ok else "unhealthy: ") + seen)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
