"""What one doctor check found: a status, a one-line finding and, unless all is well, the fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["ok", "info", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = ("ok", "info", "warn", "fail", "skip")

EXIT_OK, EXIT_FAILED = 0, 1  # bad config is 2, reported by the CLI before any check runs (as for `serve`)


@dataclass(frozen=True)
class Result:
    """One finding. `group` orders the report (python, gpu, models, ...); `name` says what was looked at.

    ok: works as configured · info: worth knowing, nothing to do · warn: works, but users may hit it ·
    fail: `serve` will not work as configured (or a browser will not) · skip: not checked (e.g. --skip-network).
    """

    group: str
    name: str
    status: Status
    finding: str
    fix: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def summary(results: Iterable[Result]) -> dict[str, int]:
    """How many results of each status, every status present (zeros included)."""
    counts = Counter(r.status for r in results)
    return {status: counts.get(status, 0) for status in STATUSES}


def exit_code(results: Iterable[Result]) -> int:
    """1 when any check failed; warnings do not fail the run."""
    return EXIT_FAILED if any(r.status == "fail" for r in results) else EXIT_OK
