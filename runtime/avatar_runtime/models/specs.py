"""What a production model is (config `models:` entries, CRD `spec.models[]`) and where the hubs are (`hub:`).

`ModelSpec` names a model in the cache (`<model_dir>/<name>/`), where it comes from (a Hugging Face or
ModelScope repo at a revision, or one URL), which of the repo's files to fetch, the sha256 pins and whether to
unpack an archive. `HubSettings` holds the hub endpoints, offline mode and the token; environment variables win
over the file, as with every other setting (`HubSettings.with_env`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Source = Literal["huggingface", "modelscope", "url"]

DEFAULT_REVISION: dict[str, str] = {"huggingface": "main", "modelscope": "master"}
MANIFEST_NAME = "manifest.json"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GLOB_CHARS = frozenset("*?[")


def is_pattern(entry: str) -> bool:
    """Whether a `files:` entry is a glob pattern (matched against repo paths) rather than one exact path."""
    return any(c in _GLOB_CHARS for c in entry)


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def safe_relative_path(path: str) -> str:
    """`path` normalised to a relative POSIX path inside a model directory; ValueError if it could escape it.

    Applied to config entries and to every path a hub lists: a hostile or broken hub must not make us write
    outside `<model_dir>/<name>/`.
    """
    if not path or "\\" in path or "\x00" in path:
        raise ValueError(f"{path!r} is not a valid relative file path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or not pure.parts or ".." in pure.parts:
        raise ValueError(f"{path!r} must be a relative path inside the model directory (no '..', no leading '/')")
    return pure.as_posix()


def _sha256_hex(value: str, where: str) -> str:
    value = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(value):
        raise ValueError(f"{where}: {value!r} is not a sha256 (64 hex digits)")
    return value


def _http_url(value: str, where: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{where} must be an http:// or https:// URL, got {value!r}")
    return value


class ModelSpec(BaseModel):
    """One model of the cache. Files land in `<model_dir>/<name>/<path in repo>`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="directory name in the model cache; engines refer to the model by it")
    source: Source = Field(description="huggingface | modelscope | url")
    repo: str | None = Field(None, description="huggingface/modelscope: owner/name")
    url: str | None = Field(None, description="url: the file's http(s) URL")
    revision: str | None = Field(
        None, description="branch, tag or commit (default main on Hugging Face, master on ModelScope)"
    )
    files: list[str] = Field(
        default_factory=list, description="paths or glob patterns to fetch (empty: the whole repo); url: the file name"
    )
    sha256: str | dict[str, str] | None = Field(
        None, description="pinned sha256: one hex string (url, or a single file) or a mapping path -> hex"
    )
    unpack: bool = Field(False, description="extract fetched .tar/.tar.gz/.tgz/.zip archives in place (safely)")

    @field_validator("name")
    @classmethod
    def _dir_safe(cls, name: str) -> str:
        if not _NAME.match(name) or name in (".", "..") or name == MANIFEST_NAME:
            raise ValueError(
                f"model name {name!r} must be 1-128 characters of letters, digits, '.', '_', '-' "
                "starting with a letter or digit (it names a directory)"
            )
        return name

    @field_validator("files")
    @classmethod
    def _safe_files(cls, files: list[str]) -> list[str]:
        cleaned = [safe_relative_path(f.strip()) for f in files]
        duplicates = sorted({f for f in cleaned if cleaned.count(f) > 1})
        if duplicates:
            raise ValueError(f"files lists {', '.join(duplicates)} more than once")
        return cleaned

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        where = f"model {self.name!r}"
        if self.source == "url":
            if self.url is None or self.repo is not None:
                raise ValueError(f"{where}: source url needs `url` (and no `repo`)")
            self.url = _http_url(self.url, f"{where}: url")
            if self.revision is not None:
                raise ValueError(f"{where}: `revision` applies to huggingface/modelscope sources, not url")
            if len(self.files) > 1 or any(is_pattern(f) for f in self.files):
                raise ValueError(f"{where}: a url source fetches one file; `files` may only give its name")
            if not isinstance(self.sha256, str):
                # A bare URL publishes no checksum: without a pin a truncated or swapped file would go unnoticed.
                raise ValueError(f"{where}: a url source needs `sha256` (one hex string) to verify the download")
            if not self.file_name_for_url():
                raise ValueError(f"{where}: cannot take a file name from {self.url!r}; set `files: [NAME]`")
        else:
            if self.repo is None or self.url is not None:
                raise ValueError(f"{where}: source {self.source} needs `repo` (owner/name) and no `url`")
            if not _REPO.match(self.repo):
                raise ValueError(f"{where}: repo {self.repo!r} must look like owner/name")
            self.revision = (self.revision or DEFAULT_REVISION[self.source]).strip()
        self.sha256 = self._normalised_pins(where)
        return self

    def _normalised_pins(self, where: str) -> str | dict[str, str] | None:
        pins = self.sha256
        if pins is None:
            return None
        if isinstance(pins, str):
            exact = [f for f in self.files if not is_pattern(f)]
            if self.source != "url" and (len(self.files) != 1 or len(exact) != 1):
                raise ValueError(
                    f"{where}: a single `sha256` string needs exactly one file in `files`; "
                    "use a mapping path -> sha256 for several files"
                )
            return _sha256_hex(pins, f"{where}: sha256")
        normalised: dict[str, str] = {}
        for path, digest in pins.items():
            path = safe_relative_path(path)
            if self.files and not any(fnmatchcase(path, f) for f in self.files):
                raise ValueError(f"{where}: sha256 pins {path!r}, which `files` does not select")
            normalised[path] = _sha256_hex(digest, f"{where}: sha256[{path!r}]")
        return normalised

    # -- derived facts (pure) --------------------------------------------------------------------------------

    def file_name_for_url(self) -> str:
        """url source: the name of the file in the model directory (`files[0]`, else the URL's last segment)."""
        if self.files:
            return self.files[0]
        last = PurePosixPath(urlsplit(self.url or "").path).name
        try:
            return safe_relative_path(last) if last else ""
        except ValueError:
            return ""

    def pinned_sha256(self, path: str) -> str | None:
        """The sha256 the config pins for `path` (a single string pins the spec's one named file)."""
        if isinstance(self.sha256, str):
            return self.sha256 if [path] == self.exact_files() else None
        return (self.sha256 or {}).get(path)

    def exact_files(self) -> list[str]:
        """The files the spec names outright (known without asking the hub)."""
        if self.source == "url":
            return [self.file_name_for_url()]
        return [f for f in self.files if not is_pattern(f)]

    def origin(self) -> str:
        """`repo@revision` or the URL: how messages and the manifest name where the model comes from."""
        return self.url if self.source == "url" else f"{self.repo}@{self.revision}"


def _unique_names(models: list[ModelSpec]) -> list[ModelSpec]:
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"model names must be unique: {', '.join(duplicates)} appears more than once")
    return models


ModelSpecList = Annotated[list[ModelSpec], AfterValidator(_unique_names)]
"""The config's `models:` list (unique names); use as a pydantic field type."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class HubSettings(BaseModel):
    """Where the hubs are and how to reach them (config `hub:`)."""

    model_config = ConfigDict(extra="forbid")

    huggingface_endpoint: str = Field("https://huggingface.co", description="env HF_ENDPOINT wins")
    modelscope_endpoint: str = Field(
        "https://www.modelscope.cn", description="env MODELSCOPE_ENDPOINT (or MODELSCOPE_DOMAIN) wins"
    )
    offline: bool = Field(False, description="never open a connection (env AVATAR_OFFLINE=1 or HF_HUB_OFFLINE=1 wins)")
    token: str | None = Field(None, description="Hugging Face token for gated/private repos; env HF_TOKEN wins")
    timeout_s: float = Field(30.0, gt=0, le=600, description="connect/read timeout of one request")
    retries: int = Field(5, ge=0, le=20, description="retries of a request after a connection error or 5xx")

    @field_validator("huggingface_endpoint", "modelscope_endpoint")
    @classmethod
    def _endpoint(cls, value: str, info: ValidationInfo) -> str:
        return _http_url(value, f"hub.{info.field_name}")

    def with_env(self, env: Mapping[str, str]) -> HubSettings:
        """A copy with the standard environment variables applied (they win over the config file)."""
        changes: dict[str, object] = {}
        if env.get("HF_ENDPOINT"):
            changes["huggingface_endpoint"] = _http_url(env["HF_ENDPOINT"], "HF_ENDPOINT")
        # The modelscope client's order: MODELSCOPE_ENDPOINT, then the older MODELSCOPE_DOMAIN; both may be a bare
        # domain, to which it adds https://.
        for var in ("MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
            if domain := env.get(var, "").strip():
                if not domain.startswith(("http://", "https://")):
                    domain = "https://" + domain
                changes["modelscope_endpoint"] = _http_url(domain, var)
                break
        for var in ("AVATAR_OFFLINE", "HF_HUB_OFFLINE"):
            value = env.get(var, "").strip().lower()
            if value in _TRUE:
                changes["offline"] = True
                break
            if value in _FALSE:
                changes.setdefault("offline", False)
        if env.get("HF_TOKEN"):
            changes["token"] = env["HF_TOKEN"]
        return self.model_copy(update=changes)


# The production models (DESIGN §2): SenseVoiceSmall ASR, LAM Audio2Expression and the wav2vec2 encoder it was
# built on. Revisions follow the hubs' default branches; pin a commit (and sha256) for reproducible caches.
DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="wav2vec2-base-960h",
        source="huggingface",
        repo="facebook/wav2vec2-base-960h",
        files=["config.json", "preprocessor_config.json", "model.safetensors"],
    ),
    ModelSpec(
        name="lam-audio2exp",
        source="huggingface",
        repo="3DAIGC/LAM_audio2exp",
        # A gzip tar holding pretrained_models/lam_audio2exp_streaming.tar (the torch checkpoint).
        files=["LAM_audio2exp_streaming.tar"],
        unpack=True,
    ),
    ModelSpec(
        name="sensevoice-small",
        source="modelscope",
        repo="iic/SenseVoiceSmall",
        # What funasr's AutoModel reads from a local directory: configuration.json maps the others.
        files=["model.pt", "config.yaml", "am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model", "configuration.json"],
    ),
)


def default_models() -> list[ModelSpec]:
    """Fresh copies of DEFAULT_MODELS (a config's default list must not share objects between configs)."""
    return [m.model_copy(deep=True) for m in DEFAULT_MODELS]
