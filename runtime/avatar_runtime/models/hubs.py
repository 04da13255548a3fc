"""The hubs' file listings, spoken over their plain HTTP APIs so one download path serves every source.

- Hugging Face: `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true` gives the commit (`sha`) and
  `siblings[]` with `rfilename`, `size`, `blobId` (git blob id) and, for LFS files, `lfs.sha256`. Files are then
  fetched from `{endpoint}/{repo}/resolve/{commit}/{path}`, so a push during a pull cannot mix two revisions.
  Small (non-LFS) files publish no sha256, but their git blob id is a sha1 of the content, which we check.
- ModelScope: `GET {endpoint}/api/v1/models/{repo}/repo/files?Revision=..&Recursive=true` gives
  `Data.Files[]` with `Path`, `Size`, `Sha256`, `Type` (blob|tree); files come from
  `GET {endpoint}/api/v1/models/{repo}/repo?Revision=..&FilePath=..`.
- url: the one file of the spec, checked against its pinned sha256.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import quote, urlencode

import httpx

from .http import HubError, ModelCacheError, RetryPolicy, check_status, with_retries
from .specs import HubSettings, ModelSpec, is_pattern, safe_relative_path


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative path inside the model directory (= path in the repo)
    url: str
    size: int | None  # None: the hub did not say (url source)
    sha256: str | None  # published by the hub or pinned by the spec
    git_oid: str | None = None  # Hugging Face non-LFS files: git blob id = sha1("blob <size>\0" + content)
    auth: bool = False  # send the Hugging Face token with this request


@dataclass(frozen=True)
class Listing:
    files: list[RemoteFile]
    commit: str | None  # the revision resolved to a commit, when the hub says


class SelectionError(ModelCacheError):
    """The spec asks for files the repo does not have."""


def select(spec: ModelSpec, available: Iterable[str]) -> list[str]:
    """The repo paths the spec's `files:` selects (all when empty); every exact path and pattern must match."""
    paths = sorted(set(available))
    if not spec.files:
        return paths
    chosen: set[str] = set()
    problems: list[str] = []
    for entry in spec.files:
        matched = [p for p in paths if fnmatchcase(p, entry)]
        if not matched:
            kind = "pattern" if is_pattern(entry) else "file"
            problems.append(f"{kind} {entry!r} is not in {spec.origin()}")
        chosen.update(matched)
    if problems:
        raise SelectionError(f"model {spec.name!r}: " + "; ".join(problems))
    return sorted(chosen)


def list_files(client: httpx.Client, spec: ModelSpec, hub: HubSettings, policy: RetryPolicy) -> Listing:
    """What to fetch for `spec`, with sizes and checksums; one or two small requests."""
    if spec.source == "huggingface":
        listing = _huggingface(client, spec, hub, policy)
    elif spec.source == "modelscope":
        listing = _modelscope(client, spec, hub, policy)
    else:
        name = spec.file_name_for_url()
        return Listing([RemoteFile(name, spec.url or "", None, spec.pinned_sha256(name))], None)
    return Listing([_apply_pin(spec, f) for f in listing.files], listing.commit)


def _apply_pin(spec: ModelSpec, remote: RemoteFile) -> RemoteFile:
    """Fold the spec's sha256 pin into the file; a pin that contradicts the hub fails before any download."""
    pinned = spec.pinned_sha256(remote.path)
    if pinned is None:
        return remote
    if remote.sha256 is not None and remote.sha256 != pinned:
        raise ModelCacheError(
            f"model {spec.name!r}: {remote.path}: the config pins sha256 {pinned} but {spec.origin()} has "
            f"{remote.sha256} (the revision changed? pin a commit as `revision`, or update the pin)"
        )
    return RemoteFile(remote.path, remote.url, remote.size, pinned, remote.git_oid, remote.auth)


def _get_json(client: httpx.Client, url: str, what: str, policy: RetryPolicy, headers: dict[str, str]) -> object:
    def attempt() -> object:
        response = client.get(url, headers=headers)
        check_status(response, url, what)
        try:
            return response.json()
        except ValueError:
            raise HubError(url, what, "the answer is not JSON (wrong endpoint?)") from None

    return with_retries(attempt, policy, url, what)


def _huggingface(client: httpx.Client, spec: ModelSpec, hub: HubSettings, policy: RetryPolicy) -> Listing:
    base, repo = hub.huggingface_endpoint, spec.repo or ""
    headers = {"Authorization": f"Bearer {hub.token}"} if hub.token else {}
    url = f"{base}/api/models/{repo}/revision/{quote(spec.revision or '', safe='')}?blobs=true"
    info = _get_json(client, url, f"listing {spec.origin()}", policy, headers)
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(siblings, list):
        raise HubError(url, f"listing {spec.origin()}", "no `siblings` in the answer")
    commit = info.get("sha") if isinstance(info.get("sha"), str) else None
    by_path: dict[str, dict] = {}
    for sibling in siblings:
        if isinstance(sibling, dict) and isinstance(sibling.get("rfilename"), str):
            by_path[_hub_path(url, sibling["rfilename"])] = sibling
    files = []
    ref = quote(commit or spec.revision or "", safe="")
    for path in select(spec, by_path):
        sibling = by_path[path]
        lfs = sibling.get("lfs") if isinstance(sibling.get("lfs"), dict) else None
        size = (lfs or {}).get("size", sibling.get("size"))
        files.append(
            RemoteFile(
                path=path,
                url=f"{base}/{repo}/resolve/{ref}/{quote(path)}",
                size=int(size) if size is not None else None,
                sha256=_hex_or_none((lfs or {}).get("sha256")),
                git_oid=None if lfs else _hex_or_none(sibling.get("blobId"), length=40),
                auth=True,
            )
        )
    return Listing(files, commit)


def _modelscope(client: httpx.Client, spec: ModelSpec, hub: HubSettings, policy: RetryPolicy) -> Listing:
    base, repo, revision = hub.modelscope_endpoint, spec.repo or "", spec.revision or ""
    url = f"{base}/api/v1/models/{repo}/repo/files?" + urlencode({"Revision": revision, "Recursive": "True"})
    what = f"listing {spec.origin()}"
    body = _get_json(client, url, what, policy, {})
    if not isinstance(body, dict):
        raise HubError(url, what, "unexpected answer")
    if body.get("Success") is False or (body.get("Code") not in (None, 200)):
        raise HubError(url, what, str(body.get("Message") or f"error code {body.get('Code')}"))
    data = body.get("Data")
    entries = data.get("Files") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise HubError(url, what, "no `Data.Files` in the answer")
    by_path: dict[str, dict] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("Type", "blob") == "tree" or not entry.get("Path"):
            continue
        by_path[_hub_path(url, entry["Path"])] = entry
    files = []
    for path in select(spec, by_path):
        entry = by_path[path]
        query = urlencode({"Revision": revision, "FilePath": path})
        size = entry.get("Size")
        files.append(
            RemoteFile(
                path=path,
                url=f"{base}/api/v1/models/{repo}/repo?{query}",
                size=int(size) if size is not None else None,
                sha256=_hex_or_none(entry.get("Sha256")),
            )
        )
    # The listing names no commit for the whole revision (entries carry the commit that last touched them).
    return Listing(files, None)


def _hub_path(url: str, path: str) -> str:
    try:
        return safe_relative_path(path)
    except ValueError as exc:
        raise HubError(url, "listing", f"refusing unsafe path from the hub: {exc}") from None


def _hex_or_none(value: object, length: int = 64) -> str | None:
    if isinstance(value, str) and len(value) == length and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    return None
