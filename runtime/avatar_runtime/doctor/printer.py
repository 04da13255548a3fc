"""The report: grouped lines for people (colour only on a terminal), or one JSON document for machines."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TextIO

from .result import Result, exit_code, summary
from .target import Target

_COLOURS = {"ok": "32", "info": "36", "warn": "33", "fail": "31;1", "skip": "2"}
_LABELS = {"ok": "ok", "info": "info", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def use_colour(stream: TextIO) -> bool:
    """Colour on a terminal only, and never when NO_COLOR is set (https://no-color.org)."""
    return hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR")


def _label(status: str, colour: bool) -> str:
    text = f"{_LABELS[status]:<4}"
    return f"\033[{_COLOURS[status]}m{text}\033[0m" if colour else text


def render_text(results: Sequence[Result], target: Target, colour: bool = False) -> str:
    config = target.config_path or "built-in defaults"
    hosts = ", ".join(target.url(h) for h in target.public_hosts)
    lines = [f"avatar-runtime doctor: config {config}; serving {hosts} (bind {target.bind_host}:{target.port})"]
    group = None
    for result in results:
        if result.group != group:
            group = result.group
            lines.append(f"\n{group}")
        lines.append(f"  {_label(result.status, colour)}  {result.finding}")
        if result.fix and result.status in ("warn", "fail", "info"):
            lines.append(f"        fix: {result.fix}")
    counts = summary(results)
    problems = counts["fail"] + counts["warn"]
    verdict = "no problems found" if not problems else f"{counts['fail']} failed, {counts['warn']} warnings"
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines.append(f"\n{verdict} ({shown})")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[Result], target: Target) -> str:
    document = {
        "exit_code": exit_code(results),
        "summary": summary(results),
        "config": target.config_path,
        "urls": [target.url(h) for h in target.public_hosts],
        "checks": [r.as_dict() for r in results],
    }
    return json.dumps(document, indent=2) + "\n"
