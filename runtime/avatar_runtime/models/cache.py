"""Where each production model lives in the cache directory, and the check engines run before loading one.

Layout: `<model_dir>/<name>/...` holds the files of model `name` (as named in the config's `models:` list), and
`<model_dir>/manifest.json` records what `models pull` fetched (sizes, sha256). Engines never download: they
call `require_files()` and get an error that names each missing file and the command that fetches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..engines.base import EngineUnavailable


class ModelMissing(EngineUnavailable):
    """A model's files are not in the cache; the message names them and says how to fetch them."""

    def __init__(self, name: str, directory: Path, missing: Sequence[str]) -> None:
        self.name, self.directory, self.missing = name, directory, list(missing)
        shown = ", ".join(str(directory / m) for m in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        super().__init__(
            f"model {name!r} is not in the model cache: missing {shown}{more}. "
            f"Fetch it with `avatar-runtime models pull` (cache directory: AVATAR_MODEL_DIR or config model_dir)"
        )


def model_path(model_dir: str | Path, name: str) -> Path:
    return Path(model_dir) / name


def require_files(model_dir: str | Path, name: str, files: Sequence[str]) -> Path:
    """The directory of model `name`, after checking that every one of `files` (relative paths) is there."""
    directory = model_path(model_dir, name)
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        raise ModelMissing(name, directory, missing)
    return directory
