"""What the browser loads: the built web client and the configured avatar (validated as the runtime validates it)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..avatars import list_avatars
from ..web_assets import PACKAGED_PAGE_DIR, resolve_web_dir
from .result import Result
from .target import Target

GROUP = "web"
BUILD_WEB = "make install (or: cd web && npm ci && npx vite build)"
MAKE_AVATAR = "python hack/make_default_avatar.py --out avatars/default.zip"


def check_web_client(web_dir: str | None) -> Result:
    quiet = logging.getLogger("avatar_runtime.web_assets")
    level, quiet.level = quiet.level, logging.ERROR  # its "not built" warning is this check's finding
    try:
        served = resolve_web_dir(web_dir)
    except FileNotFoundError as exc:
        return Result(GROUP, "web client", "fail", str(exc), f"point server.web_dir at a built client, or {BUILD_WEB}")
    finally:
        quiet.level = level
    if served == PACKAGED_PAGE_DIR:
        finding = "web client not built (web/dist missing): `serve` falls back to a minimal page without the avatar"
        return Result(GROUP, "web client", "warn", finding, BUILD_WEB)
    return Result(GROUP, "web client", "ok", f"web client: {served}")


def check_avatar(directory: str, name: str) -> Result:
    """The avatar zip `serve` offers, inspected by the runtime's own LAM-format validation (avatars.py)."""
    entries = list_avatars(directory)
    chosen = next((e for e in entries if e.name == name), None)
    if chosen is None:
        available = ", ".join(e.name for e in entries) or "none"
        where = directory if Path(directory).is_dir() else f"{directory} (does not exist)"
        finding = f"avatar {name!r} is not in {where} (available: {available})"
        fix = f"set avatar.name to an available one, put {name}.zip into avatar.dir, or {MAKE_AVATAR}"
        return Result(GROUP, "avatar", "fail", finding, fix)
    if not chosen.ok or chosen.info is None:
        fix = (
            "re-export it from LAM (one folder with offset.ply, skin.glb, animation.glb, vertex_order.json), "
            "or choose another with avatar.name"
        )
        return Result(GROUP, "avatar", "fail", f"avatar {name!r} is not a valid LAM avatar: {chosen.error}", fix)
    info = chosen.info
    finding = (
        f"avatar {name!r}: {chosen.path}, {info.splats} splats, {len(info.morph_targets)} morph targets, "
        f"{len(info.clips)} animation clips"
    )
    return Result(GROUP, "avatar", "ok", finding)


def check(target: Target) -> list[Result]:
    config = target.config
    return [check_web_client(config.server.web_dir), check_avatar(config.avatar.dir, config.avatar.name)]
