"""The model cache for the configured production engines: every file there and intact (sha256).

The hashing is `avatar-runtime models verify`'s own (`models.commands.verify`), run on the models the engines use;
its per-model lines (`ok`, `MISSING`, `CORRUPT`, ...) become the findings, so both commands always agree.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from ..config import RuntimeConfig
from ..models import manifest
from ..models.commands import Console, verify
from ..models.progress import silent
from .result import Result
from .target import Target

GROUP = "models"
_LINE = re.compile(r"^(?P<word>\S+)\s+(?P<name>[^:\s]+): (?P<rest>.*)$")


def needed_models(config: RuntimeConfig) -> dict[str, list[str]]:
    """Model cache name -> the config keys whose engine loads it."""
    needed: dict[str, list[str]] = {}
    if config.asr.engine == "sensevoice":
        needed.setdefault(config.asr.model, []).append("asr.model")
    if config.a2e.engine == "lam":
        needed.setdefault(config.a2e.model, []).append("a2e.model")
        needed.setdefault(config.a2e.encoder, []).append("a2e.encoder")
    return needed


def engine_files(config: RuntimeConfig) -> dict[str, list[tuple[str, ...]]]:
    """Model name -> what its engine opens: each entry a tuple of alternatives, one of which must exist."""
    files: dict[str, list[tuple[str, ...]]] = {}
    if config.asr.engine == "sensevoice":
        from ..engines.asr_sensevoice import REQUIRED_FILES

        files[config.asr.model] = [(f,) for f in REQUIRED_FILES]
    if config.a2e.engine == "lam":
        try:
            from ..engines.lam.checkpoint import ARCHIVE_NAME, CHECKPOINT_MEMBER
        except ImportError:  # no torch: the python checks report it; the hashes below still say what is cached
            return files
        files[config.a2e.model] = [(CHECKPOINT_MEMBER, ARCHIVE_NAME)]
        files.setdefault(config.a2e.encoder, []).append(("config.json",))
    return files


def _in_place(directory: Path, required: list[tuple[str, ...]]) -> bool:
    return bool(required) and all(any((directory / alt).is_file() for alt in entry) for entry in required)


def verify_lines(config: RuntimeConfig, names: list[str]) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Run `models verify` on `names`: per model its (WORD, rest) lines, and the general error lines."""
    out, err = io.StringIO(), io.StringIO()
    verify(config.models, config.model_dir, Console(out, err, silent), names=names)
    per_model: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    for line in out.getvalue().splitlines():
        if (match := _LINE.match(line)) and match["name"] in per_model:
            per_model[match["name"]].append((match["word"], match["rest"]))
    errors = [line.removeprefix("avatar-runtime models: ") for line in err.getvalue().splitlines()]
    return per_model, [e for e in errors if "models are not intact" not in e]


def check(target: Target) -> list[Result]:
    config = target.config
    needed = needed_models(config)
    model_dir = Path(config.model_dir)
    if not needed:
        finding = f"the configured engines need no model cache (embedded models); model_dir: {model_dir}"
        return [Result(GROUP, "model cache", "info", finding)]
    configured = {spec.name for spec in config.models}
    results = []
    for name in [n for n in needed if n not in configured]:
        keys = " and ".join(needed[name])
        known = ", ".join(sorted(configured)) or "none"
        finding = f"{keys} names model {name!r}, which the config's `models:` list does not define (defined: {known})"
        fix = f"add {name!r} to `models:` (default_config.yaml shows the entries) or set {keys} to a defined one"
        results.append(Result(GROUP, name, "fail", finding, fix))
    present = [n for n in needed if n in configured]
    if not present:
        return results
    per_model, errors = verify_lines(config, present)
    required, pulled = engine_files(config), _pulled(model_dir)
    for name in present:
        users = ", ".join(needed[name])
        pull = f"{target.command('models pull')} --model {name}"
        lines = per_model[name]
        if lines and all(word == "ok" for word, _ in lines):
            results.append(Result(GROUP, name, "ok", f"{name} ({users}): verified, {lines[0][1]}"))
            continue
        problems = "; ".join(f"{word.lower()} {rest}" for word, rest in lines) or "; ".join(errors) or "not intact"
        if name not in pulled and _in_place(model_dir / name, required.get(name, [])):
            # Copied in by hand: the engine will load it, but nothing records what the files should hash to.
            finding = f"{name} ({users}): the files are in {model_dir / name} but were not fetched by `models pull`"
            fix = f"{pull} (adopts files already in place by their hash; downloads only what differs)"
            results.append(Result(GROUP, name, "warn", finding, fix))
            continue
        results.append(Result(GROUP, name, "fail", f"{name} ({users}): {problems}", pull))
    return results


def _pulled(model_dir: Path) -> set[str]:
    """The models the cache's manifest has a record of (what `models pull` fetched)."""
    try:
        return set(manifest.load(model_dir).models)
    except manifest.ManifestError:
        return set()
