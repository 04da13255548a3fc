"""OpenAvatarChat config → Gaussian Avatar config: the pure conversion (no files, no clock, no environment).

`convert(document, root=..., output=...)` walks `default.service`, `default.chat_engine` and every handler, maps
what has an equivalent (handlers.py), and reports every other key by its path with the reason. Keys absent from
the source keep our defaults, not OpenAvatarChat's. The result always validates as a `RuntimeConfig`: a value our
schema rejects is taken out again and reported as not mapped, so no invalid file is ever produced.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from ..config import RuntimeConfig
from .handlers import CONVERTERS, STAGES, Context, classify, unsupported_reason
from .result import Builder, Conversion
from .source import DEFAULT_ENV, HANDLERS_PATH, Handler, env_reference, mapping_items, short_source

OAC_SELF_SIGNED = ("ssl_certs/localhost.crt", "ssl_certs/localhost.key")  # made by scripts/create_ssl_certs.sh
OWN_SELF_SIGNED = (
    "OpenAvatarChat's self-signed localhost pair (scripts/create_ssl_certs.sh); Gaussian Avatar makes its own "
    "self-signed certificate on first run (tls.self_signed_dir)"
)
TURN_SCHEMES = {"turn:": "turn.urls", "turns:": "turn.urls", "stun:": "turn.stun_urls", "stuns:": "turn.stun_urls"}


def convert(document: dict[str, Any], *, root: PurePath, output: str = "<converted file>") -> Conversion:
    """Convert a document `parse_source` accepted. `root`: the OpenAvatarChat directory relative paths are
    resolved against; `output`: how advice names the converted file."""
    b = Builder(short_source)
    ctx = Context(root=root, output=output)
    for env_name, _ in mapping_items(document):
        if env_name != DEFAULT_ENV:
            b.skip(str(env_name), "another Dynaconf environment (OpenAvatarChat's --env); only `default` is converted")
    default = document[DEFAULT_ENV]
    for section, value in default.items():
        path = f"{DEFAULT_ENV}.{section}"
        if section in ("logger", "log"):
            for key, _ in mapping_items(value) or [("", None)]:
                b.skip(f"{path}.{key}".rstrip("."), "no config key: use `avatar-runtime serve --log-level LEVEL`")
        elif section == "service":
            _convert_service(value or {}, b, ctx)
        elif section == "chat_engine":
            _convert_engine(value or {}, b, ctx)
        else:
            b.skip(path, "not an OpenAvatarChat section Gaussian Avatar knows")
    _convert_limits(b, ctx)
    _convert_turn(b, ctx)
    _closing_advice(b, ctx)
    _drop_rejected(b)
    return b.result


def _convert_service(service: dict, b: Builder, ctx: Context) -> None:
    path = f"{DEFAULT_ENV}.service"
    for key, value in service.items():
        if key == "host" and isinstance(value, str) and value:
            b.set("server.host", value, f"{path}.host")
        elif key == "port" and str(value).isdigit() and 1 <= int(value) <= 65535:
            b.set("server.port", int(value), f"{path}.port")
        elif key == "rtc_config":
            ctx.turns.append((f"{path}.rtc_config", value))
        elif key not in ("cert_file", "cert_key"):
            b.skip(f"{path}.{key}", "no equivalent setting" if key not in ("host", "port") else "invalid value")
    cert, key = service.get("cert_file"), service.get("cert_key")
    if cert is None and key is None:
        return
    if not (isinstance(cert, str) and cert and isinstance(key, str) and key):
        for name in ("cert_file", "cert_key"):
            if name in service:
                b.skip(f"{path}.{name}", "OpenAvatarChat served HTTPS only with both cert_file and cert_key")
        return
    if (cert.replace("\\", "/"), key.replace("\\", "/")) == OAC_SELF_SIGNED:
        for name in ("cert_file", "cert_key"):
            b.skip(f"{path}.{name}", OWN_SELF_SIGNED)
        return
    for name, value, target in (("cert_file", cert, "tls.cert_file"), ("cert_key", key, "tls.key_file")):
        resolved = ctx.resolve(value)
        b.set(target, resolved, f"{path}.{name}",
              None if resolved == value else "resolved against the OpenAvatarChat directory")  # fmt: skip


def _convert_engine(engine: dict, b: Builder, ctx: Context) -> None:
    path = f"{DEFAULT_ENV}.chat_engine"
    reasons = {
        "model_root": "our model cache is model_dir (./models), laid out by `avatar-runtime models pull`; "
        "docs/migration.md shows how to reuse OpenAvatarChat's downloads",
        "handler_search_path": "our engines are built in (no handler modules to find)",
        "outputs": "output routing is fixed: the browser renders the avatar from the reply audio and expressions",
    }
    for key, value in engine.items():
        if key == "concurrent_limit":
            ctx.limits.append((f"{path}.{key}", value))
        elif key in ("turn_config", "rtc_config"):
            ctx.turns.append((f"{path}.{key}", value))
        elif key != "handler_configs":
            b.skip(f"{path}.{key}", reasons.get(key, "no equivalent setting"))
    converted: dict[str, str] = {}  # stage -> handler name
    for name, settings in (engine.get("handler_configs") or {}).items():
        kind, module = classify(str(name), settings or {})
        handler = Handler(str(name), dict(settings or {}), kind, module)
        stage = STAGES.get(kind)
        if not handler.enabled:
            b.skip(handler.path, "disabled in the source (enabled: false)")
        elif not kind:
            b.skip(handler.path, unsupported_reason(module))
        elif stage in converted:
            b.skip(handler.path, f"a second {stage} handler: Gaussian Avatar runs one ({converted[stage]} was "
                   "converted)")  # fmt: skip
        else:
            converted[stage] = handler.name
            CONVERTERS[kind](handler, b, ctx)
            for key in handler.remaining():
                b.skip(handler.src(key), "no equivalent setting")
    if "llm" not in converted:
        b.act("No OpenAI-compatible LLM handler was converted: set OPENAI_BASE_URL, OPENAI_API_KEY and "
              "AVATAR_LLM_MODEL, or replies come from the embedded offline responder")  # fmt: skip


def _convert_limits(b: Builder, ctx: Context) -> None:
    valid: list[tuple[str, int]] = []
    for source, value in ctx.limits:
        if str(value).isdigit() and 1 <= int(value) <= 10000:
            valid.append((source, int(value)))
        else:
            b.skip(source, "expected a whole number of sessions, 1..10000")
    if not valid:
        return
    chosen, limit = min(valid, key=lambda item: item[1])
    note = f"the lowest of the {len(valid)} limits OpenAvatarChat applied" if len(valid) > 1 else None
    b.set("server.concurrent_limit", limit, chosen, note)
    for other, value in valid:
        if other != chosen:
            b.skip(other, f"{value} sessions; the lower limit in {short_source(chosen)} was taken")


def _convert_turn(b: Builder, ctx: Context) -> None:
    if not ctx.turns:
        return
    # OpenAvatarChat asks the client handler's turn_config first, then the engine's (older: rtc_config).
    ranks = (".handler_configs.", ".chat_engine.turn_config", ".chat_engine.rtc_config", ".service.rtc_config")
    ordered = sorted(ctx.turns, key=lambda item: next(i for i, part in enumerate(ranks + ("",)) if part in item[0]))
    (source, turn), *shadowed = ordered
    for other, _ in shadowed:
        b.skip(other, f"not used: OpenAvatarChat took {short_source(source)} first")
    if not isinstance(turn, dict):
        b.skip(source, "expected a mapping (turn_provider, urls, username, credential)")
        return
    provider = turn.get("turn_provider")
    if provider == "twilio" or any(str(k).startswith("twilio_") for k in turn):
        b.skip(source, "Twilio's TURN service is not supported: run coturn (docker-compose.yml) and set turn.urls "
               "and AVATAR_TURN_SECRET (credentials not copied)")  # fmt: skip
        return
    for key, value in turn.items():
        where = f"{source}.{key}"
        if key == "turn_provider":
            if value not in (None, "turn_server"):
                b.skip(where, f"unknown TURN provider {value!r}")
        elif key == "urls":
            _convert_turn_urls(value, where, b)
        elif key == "username" and isinstance(value, str) and value:
            b.set("turn.username", value, where)
        elif key in ("credential", "static_auth_secret", "secret") and value not in (None, ""):
            _turn_secret(key, value, where, b)
        elif value not in (None, ""):
            b.skip(where, "no equivalent setting")


def _convert_turn_urls(value: Any, where: str, b: Builder) -> None:
    urls = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    grouped: dict[str, list[str]] = {"turn.urls": [], "turn.stun_urls": []}
    for url in urls:
        target = next((t for scheme, t in TURN_SCHEMES.items() if str(url).lower().startswith(scheme)), None)
        if target:
            grouped[target].append(str(url))
        else:
            b.skip(where, f"{str(url)[:60]!r} is not a turn:, turns:, stun: or stuns: URL")
    for target, found in grouped.items():
        if found:
            b.set(target, found, where, "stun: URLs go to turn.stun_urls" if target == "turn.stun_urls" else None)


def _turn_secret(key: str, value: Any, where: str, b: Builder) -> None:
    variable = env_reference(value)
    if key != "credential":  # a coturn static-auth-secret (not OpenAvatarChat's own, but people write it)
        if variable != "AVATAR_TURN_SECRET":
            shown = f'="${variable}"' if variable else " to coturn's static-auth-secret"
            b.act(f"Set AVATAR_TURN_SECRET{shown} ({where} was not copied)")
        return
    origin = f"came from ${variable} and " if variable else ""
    b.act(f"The TURN password ({where}) {origin}was not copied: add `credential:` under `turn:` yourself, or "
          "better run coturn with use-auth-secret and set AVATAR_TURN_SECRET to its static-auth-secret (browsers "
          "then get short-lived credentials)")  # fmt: skip
    b.note("turn", "credential: not copied from the source file (a secret); see the import report")


def _closing_advice(b: Builder, ctx: Context) -> None:
    if ctx.models:
        names = ", ".join(dict.fromkeys(ctx.models))
        b.act(f"Fetch the models the converted engines need ({names}): avatar-runtime models pull --config "
              f"{ctx.output} (or reuse OpenAvatarChat's downloads: docs/migration.md)")  # fmt: skip


def _drop_rejected(b: Builder) -> None:
    """Take out values our schema rejects (reporting them), so the written file always loads."""
    for _ in range(50):
        try:
            RuntimeConfig.model_validate(b.result.values)
            return
        except ValidationError as exc:
            error = exc.errors()[0]
            target = ".".join(str(part) for part in error["loc"])
            if not b.drop(target, f"rejected by our config: {error['msg']}"):
                raise ValueError(f"the converted config is invalid at {target}: {error['msg']}") from None
    raise ValueError("the converted config could not be made valid")


__all__ = ["convert", "HANDLERS_PATH"]
