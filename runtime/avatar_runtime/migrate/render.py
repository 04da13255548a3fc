"""A conversion as text: the commented YAML file and the report printed on stderr.

The YAML is written by hand (PyYAML cannot emit comments): sections and keys in `default_config.yaml`'s order,
every scalar through `yaml.safe_dump` on one line so that any string (a Chinese system prompt, a prompt with
newlines) reads back exactly, and the origin of each value as an end-of-line comment.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml
from pydantic import BaseModel

from ..config import RuntimeConfig
from .result import Conversion
from .source import short_source


def scalar(value: Any) -> str:
    """One YAML line for a value (strings always double-quoted, lists in flow style)."""
    style = '"' if isinstance(value, str) else None
    text = yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, width=float("inf"), default_style=style)
    return text.removesuffix("\n...\n").strip()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def render_yaml(conversion: Conversion, *, source: str, today: dt.date, check_hint: str = "<this file>") -> str:
    lines = [
        f"# Gaussian Avatar runtime config, converted from the OpenAvatarChat config {_one_line(source)}",
        f"# by `avatar-runtime config import` on {today.isoformat()}.",
        "# Only settings that differ from Gaussian Avatar's defaults are here; every key and its default is",
        "# documented in runtime/avatar_runtime/default_config.yaml (and docs/migration.md explains the mapping).",
        f"# Check it:  avatar-runtime check-config --config {check_hint}",
    ]
    if conversion.actions:
        lines += ["#", "# Before you start:"] + [f"#   - {_one_line(action)}" for action in conversion.actions]
    values, notes = conversion.values, conversion.notes
    stray = [f"# {section}.{line}" for section, found in notes.items() if section not in values for line in found]
    lines += ["#", *stray] if stray else []
    for section in _ordered(values, RuntimeConfig):
        lines.append("")
        value = values[section]
        if not isinstance(value, dict):
            lines.append(_line(section, value, conversion.comments.get(section), 0))
            continue
        lines.append(f"{section}:")
        _render_mapping(value, _model_of(RuntimeConfig, section), section, 1, conversion, lines)
        lines += [f"  # {_one_line(line)}" for line in notes.get(section, [])]
    return "\n".join(lines) + "\n"


def _render_mapping(mapping: dict, model: type[BaseModel] | None, prefix: str, depth: int, conversion, lines) -> None:
    for key in _ordered(mapping, model):
        value, path = mapping[key], f"{prefix}.{key}"
        if isinstance(value, dict):
            lines.append(f"{'  ' * depth}{key}:")
            _render_mapping(value, _model_of(model, key), path, depth + 1, conversion, lines)
        else:
            lines.append(_line(key, value, conversion.comments.get(path), depth))


def _line(key: str, value: Any, comment: str | None, depth: int) -> str:
    text = f"{'  ' * depth}{key}: {scalar(value)}"
    return f"{text}  # {_one_line(comment)}" if comment else text


def _model_of(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    field = model.model_fields.get(key) if model else None
    annotation = field.annotation if field else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _ordered(mapping: dict, model: type[BaseModel] | None) -> list[str]:
    order = list(model.model_fields) if model else []
    return sorted(mapping, key=lambda key: order.index(key) if key in order else len(order))


def render_report(conversion: Conversion, *, source: str, destination: str) -> str:
    """The summary for stderr: mapped (n), needs your action (n), not mapped (n) with key paths. Values of
    secrets never reach a Conversion, so nothing here can print one."""
    mapped, actions, skipped = conversion.mapped, conversion.actions, conversion.not_mapped
    lines = [f"Converted {source} → {destination}", "", f"Mapped ({len(mapped)}):"]
    for entry in mapped:
        shown = scalar(entry.value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        extra = "" if entry.written else " (our default; not written)"
        why = f" — {entry.note}" if entry.note else ""
        lines.append(f"  {short_source(entry.source)} → {entry.target} = {shown}{extra}{why}")
    lines += ["", f"Needs your action ({len(actions)}):"] + [f"  - {action}" for action in actions]
    lines += ["", f"Not mapped ({len(skipped)}):"] + [f"  {entry.source}: {entry.reason}" for entry in skipped]
    return "\n".join(lines) + "\n"
