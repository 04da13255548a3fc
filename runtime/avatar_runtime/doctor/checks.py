"""Every group of checks, in report order, and the loop that runs them (a crashing check is itself a finding)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import certificate, embedded, gpu, model_cache, network, packages, services, turn, web
from .result import Result
from .target import Target

Check = Callable[[Target], list[Result]]

CHECKS: tuple[tuple[str, Check], ...] = (
    (packages.GROUP, packages.check),  # Python and each engine's packages
    (embedded.GROUP, embedded.check),  # the wheel-shipped models load
    (gpu.GROUP, gpu.check),  # CUDA visibility, VRAM against server.concurrent_limit
    (model_cache.GROUP, model_cache.check),  # production models present and their sha256 intact
    (web.GROUP, web.check),  # built web client, valid avatar
    (certificate.GROUP, certificate.check),  # certificate files, dates, names, key, trust
    (network.GROUP, network.check),  # the serve port; the microphone's secure context
    (turn.GROUP, turn.check),  # TURN reachable, credentials accepted (a real Allocate)
    ("llm", services.check),  # the LLM endpoint lists the model; online voices reachable
)


def run_checks(target: Target, checks: Sequence[tuple[str, Check]] = CHECKS) -> list[Result]:
    results: list[Result] = []
    for group, check in checks:
        try:
            results.extend(check(target))
        except Exception as exc:  # the doctor must report, never die with a traceback
            finding = f"the {group} check itself failed: {type(exc).__name__}: {exc}"
            fix = "report this, with `avatar-runtime doctor --json` output, to the project"
            results.append(Result(group, "doctor", "fail", finding, fix))
    return results
