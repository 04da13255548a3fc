"""Reading an OpenAvatarChat config: its structure, its handlers and its environment-variable references.

OpenAvatarChat loads the file with Dynaconf (`environments=True`): the top-level `default:` section holds
`logger:` (older files: `log:`), `service:` and `chat_engine:`, and `chat_engine.handler_configs` maps a
handler name of the user's choosing (`LLMOpenAICompatible`, `LLM_Bailian`, ...) to its settings, where `module`
names the implementation (`llm/openai_compatible/llm_handler_openai_compatible`). So handlers are recognised by
their module, and by their name only when a module is missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..config import RuntimeConfig


class SourceError(ValueError):
    """The file is not a readable OpenAvatarChat config; the message is one line naming the file and the problem."""


DEFAULT_ENV = "default"
HANDLERS_PATH = f"{DEFAULT_ENV}.chat_engine.handler_configs"


def parse_source(text: str, label: str) -> dict[str, Any]:
    """The parsed YAML document, checked to have OpenAvatarChat's shape; SourceError otherwise."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SourceError(f"{label}{where} is not valid YAML: {problem}") from None
    if document is None:
        raise SourceError(f"{label} is empty, not an OpenAvatarChat config")
    if not isinstance(document, dict):
        raise SourceError(
            f"{label} is not an OpenAvatarChat config: expected a mapping with a `default:` section, "
            f"found a {type(document).__name__}"
        )
    default_key = next((k for k in document if isinstance(k, str) and k.lower() == DEFAULT_ENV), None)
    if default_key is None:
        raise SourceError(f"{label} is not an OpenAvatarChat config: {_missing_default_hint(document)}")
    default = document[default_key]
    if not isinstance(default, dict) or not ({"chat_engine", "service"} & set(default)):
        raise SourceError(
            f"{label} is not an OpenAvatarChat config: its `default:` section has neither `chat_engine:` nor `service:`"
        )
    _require_mapping(default, "chat_engine", label, "default.chat_engine")
    _require_mapping(default, "service", label, "default.service")
    engine = default.get("chat_engine") or {}
    _require_mapping(engine, "handler_configs", label, HANDLERS_PATH)
    for name, settings in (engine.get("handler_configs") or {}).items():
        if settings is not None and not isinstance(settings, dict):
            raise SourceError(f"{label}: {HANDLERS_PATH}.{name} must be a mapping of settings, not {settings!r:.40}")
    if default_key != DEFAULT_ENV:
        document[DEFAULT_ENV] = document.pop(default_key)
    return document


def _missing_default_hint(document: dict) -> str:
    ours = set(RuntimeConfig.model_fields)
    if document and set(document) <= ours:
        return "it has no `default:` section and looks like a Gaussian Avatar config already (nothing to import)"
    if {"chat_engine", "service"} & set(document):
        return "`chat_engine:`/`service:` must be inside the top-level `default:` section (Dynaconf environments)"
    return "it has no top-level `default:` section (OpenAvatarChat configs start with `default:` → `chat_engine:`)"


def _require_mapping(parent: dict, key: str, label: str, path: str) -> None:
    value = parent.get(key)
    if value is not None and not isinstance(value, dict):
        raise SourceError(f"{label}: {path} must be a mapping, not {type(value).__name__}")


# Dynaconf's lazy values that read the environment, and the shell spellings people also write.
_ENV_REFERENCES = (
    re.compile(r"^@format\s+\{env\[['\"]?(\w+)['\"]?\]\}$"),
    re.compile(r"^@jinja\s+\{\{\s*env(?:\.(\w+)|\[['\"](\w+)['\"]\])\s*\}\}$"),
    re.compile(r"^\$\{(\w+)\}$"),
    re.compile(r"^\$(\w+)$"),
)
_DYNACONF_TOKENS = re.compile(r"^@(format|jinja|int|float|bool|json|str|none|get|del|merge|insert|reset|empty)\b")


def env_reference(value: Any) -> str | None:
    """The environment variable a value stands for (`@format {env[KEY]}`, `${KEY}`), else None."""
    if not isinstance(value, str):
        return None
    for pattern in _ENV_REFERENCES:
        match = pattern.match(value.strip())
        if match:
            return next(group for group in match.groups() if group)
    return None


def is_dynaconf_expression(value: Any) -> bool:
    return isinstance(value, str) and bool(_DYNACONF_TOKENS.match(value.strip()))


@dataclass
class Handler:
    """One entry of `handler_configs`: which settings a converter used, so the rest can be reported."""

    name: str
    settings: dict[str, Any]
    kind: str  # see handlers.KINDS; "" when unknown
    module: str
    consumed: set[str] = field(default_factory=lambda: {"module", "enabled"})

    @property
    def path(self) -> str:
        return f"{HANDLERS_PATH}.{self.name}"

    @property
    def enabled(self) -> bool:
        return self.settings.get("enabled", True) not in (False, "false", "False", 0)

    def src(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.settings.get(key) not in (None, "")

    def take(self, key: str) -> Any:
        """The value (None if absent or empty), marking the key as handled."""
        self.consumed.add(key)
        value = self.settings.get(key)
        return None if value == "" else value

    def remaining(self) -> list[str]:
        return [key for key in self.settings if key not in self.consumed]


def short_source(path: str) -> str:
    """`default.chat_engine.handler_configs.SileroVad.start_delay` → `SileroVad.start_delay` (for comments)."""
    for prefix in (HANDLERS_PATH + ".", f"{DEFAULT_ENV}."):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def mapping_items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, Mapping) else []
