"""The output every benchmark shares (see docs/benchmarks.md): a markdown section and the `--json` document."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats keep the precision the caller formatted them with."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join([".venv/bin/python", str(shown), *sys.argv[1:]])


def target(metric: str, op: str, value: float, measured: float, evaluated: bool = True) -> dict:
    """One target; `met` is null where the run cannot judge it (a short run's few steps, say)."""
    if op not in ("<=", ">="):
        raise ValueError(f"op must be <= or >=, not {op!r}")
    met = (measured <= value if op == "<=" else measured >= value) if evaluated else None
    return {"metric": metric, "op": op, "value": value, "met": met}


def write_json(
    path: str, name: str, title: str, markdown: str, headline: dict, targets: list[dict], details: dict | None = None
) -> None:
    """The interface's keys, plus `details`: the raw measurements behind the tables (for tests and re-analysis)."""
    document = {"name": name, "title": title, "command": command_line(), "markdown": markdown,
                "headline": headline, "targets": targets}  # fmt: skip
    if details is not None:
        document["details"] = details
    Path(path).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
