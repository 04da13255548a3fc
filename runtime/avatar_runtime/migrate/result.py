"""What a conversion produces, and the builder the converters write through.

A conversion is three lists a user reads (mapped, needs your action, not mapped) plus the nested values to
write. Values equal to our built-in defaults are recorded as mapped but not written, so the output holds only
what differs from `default_config.yaml`. Secrets never enter `set()`: converters turn them into actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ..config import RuntimeConfig


@dataclass(frozen=True)
class Mapped:
    source: str  # dotted key path in the source file
    target: str  # dotted key path in our config
    value: Any
    written: bool  # False when the value is our default already
    note: str | None = None  # how the meaning or unit changed


@dataclass(frozen=True)
class NotMapped:
    source: str
    reason: str


@dataclass
class Conversion:
    values: dict[str, Any] = field(default_factory=dict)  # nested, only non-default values
    comments: dict[str, str] = field(default_factory=dict)  # target path -> end-of-line comment
    notes: dict[str, list[str]] = field(default_factory=dict)  # section -> comment lines (e.g. secrets left out)
    mapped: list[Mapped] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    not_mapped: list[NotMapped] = field(default_factory=list)


@cache
def _defaults() -> dict[str, Any]:
    return RuntimeConfig().model_dump()


def default_at(target: str) -> Any:
    """Our built-in default at a dotted path, e.g. `vad.hangover_ms` → 448."""
    node: Any = _defaults()
    for part in target.split("."):
        node = node[part]
    return node


class Builder:
    """Collects a conversion; `short` turns a source path into the name shown in comments."""

    def __init__(self, short_source=lambda path: path) -> None:
        self.result = Conversion()
        self._short = short_source

    def set(self, target: str, value: Any, source: str, note: str | None = None) -> None:
        """Map `source` to `target`; write it only if it differs from our default."""
        written = value != default_at(target)
        self.result.mapped.append(Mapped(source, target, value, written, note))
        if not written:
            return
        node = self.result.values
        *sections, key = target.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[key] = value
        origin = self._short(source)
        self.result.comments[target] = f"{origin}: {note}" if note else origin

    def skip(self, source: str, reason: str) -> None:
        self.result.not_mapped.append(NotMapped(source, reason))

    def act(self, text: str) -> None:
        if text not in self.result.actions:
            self.result.actions.append(text)

    def note(self, section: str, line: str) -> None:
        """A comment line placed in `section` of the output (e.g. where a secret was left out)."""
        self.result.notes.setdefault(section, []).append(line)

    def drop(self, location: str, reason: str) -> bool:
        """Take back the written value at `location` (or the written key containing it) and report it as not
        mapped; False when nothing written is there (the problem is elsewhere)."""
        parts = location.split(".")
        for end in range(len(parts), 0, -1):
            target = ".".join(parts[:end])
            if target in self.result.comments:
                break
        else:
            return False
        *sections, key = target.split(".")
        node = self.result.values
        for part in sections:
            node = node[part]
        del node[key]
        del self.result.comments[target]
        for section in sections[:1]:
            if not self.result.values[section]:
                del self.result.values[section]
        for entry in [m for m in self.result.mapped if m.target == target and m.written]:
            self.result.mapped.remove(entry)
            self.skip(entry.source, reason)
        return True
