"""Where the browser client and the avatars come from: the built web client, and the avatar directory."""

from __future__ import annotations

import logging
from pathlib import Path

from .avatars import AvatarEntry, list_avatars

log = logging.getLogger(__name__)

PACKAGED_PAGE_DIR = Path(__file__).parent / "static"  # the minimal page, used when web/dist is not built
_REPO_WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


def resolve_web_dir(configured: str | None) -> Path:
    """The directory served at "/": the configured one, else the repo's built client, else the minimal page."""
    if configured:
        path = Path(configured)
        if not (path / "index.html").is_file():
            raise FileNotFoundError(f"server.web_dir {path} has no index.html")
        return path
    if (_REPO_WEB_DIST / "index.html").is_file():
        return _REPO_WEB_DIST
    log.warning("web client not built (web/dist missing): serving the minimal page; `make install` builds it")
    return PACKAGED_PAGE_DIR


class AvatarCatalog:
    """The avatar zips in one directory, inspected once per file version (name, size, mtime)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._cache: tuple[tuple, list[AvatarEntry]] | None = None

    def entries(self) -> list[AvatarEntry]:
        files = sorted(self.directory.glob("*.zip")) if self.directory.is_dir() else []
        key = tuple((f.name, st.st_size, st.st_mtime_ns) for f in files for st in (f.stat(),))
        if self._cache is None or self._cache[0] != key:
            entries = list_avatars(self.directory)
            for entry in entries:
                if not entry.ok:
                    log.error("avatar %s is broken: %s", entry.name, entry.error)
            self._cache = (key, entries)
        return self._cache[1]

    def describe(self, selected: str) -> dict:
        """/api/config's `avatar` and `avatars` fields: the selected one (with its error, if any) and all."""
        entries = self.entries()
        listed = [{"name": e.name, "url": f"/avatars/{e.name}.zip", "ok": e.ok, "error": e.error} for e in entries]
        chosen = next((item for item in listed if item["name"] == selected), None)
        if chosen is None:
            names = ", ".join(e.name for e in entries) or "none"
            message = f"avatar '{selected}' is not in {self.directory} (available: {names})"
            chosen = {"name": selected, "url": f"/avatars/{selected}.zip", "ok": False, "error": message}
        return {"avatar": chosen, "avatars": listed}
