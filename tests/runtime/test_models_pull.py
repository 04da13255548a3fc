"""`models pull` / `verify` against a real HTTP server on loopback that speaks the Hugging Face and ModelScope APIs.

Each test pulls over real sockets and then looks at the disk, the manifest and the server's request log: which
requests went out (Range headers, none at all offline), how many bytes were served, what was left behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import stat
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from avatar_runtime.models.commands import Console, pull, pull_lock, verify
from avatar_runtime.models.http import RetryPolicy
from avatar_runtime.models.progress import LogLines, for_stream, silent
from avatar_runtime.models.specs import HubSettings, ModelSpec

from tests.support.fake_hub import FakeHub, git_blob_id

FAST = RetryPolicy(retries=3, base_delay_s=0.01, max_delay_s=0.05)
NO_RETRY = RetryPolicy(retries=0)


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


class Run:
    """One pull/verify with captured output."""

    def __init__(self) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.console = Console(self.out, self.err, silent)

    @property
    def text(self) -> str:
        return self.out.getvalue() + self.err.getvalue()


def settings(hub: FakeHub, **changes) -> HubSettings:
    return HubSettings(huggingface_endpoint=hub.url, modelscope_endpoint=hub.url, **changes)


def do_pull(specs, model_dir: Path, hub_settings: HubSettings, policy=FAST, **kwargs) -> tuple[int, Run]:
    run = Run()
    code = pull(specs, model_dir, hub_settings, run.console, policy=policy, **kwargs)
    return code, run


def do_verify(specs, model_dir: Path) -> tuple[int, Run]:
    run = Run()
    return verify(specs, model_dir, run.console), run


def manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


def leftovers(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.name.endswith(".part"))


HF_FILES = {
    "config.json": b'{"hidden_size": 768}',
    "preprocessor_config.json": b'{"sampling_rate": 16000}',
    "model.safetensors": blob(300_000, 1),
    "README.md": b"# not selected\n",
}


def test_huggingface_pull_fetches_the_selected_files_of_the_listed_commit(hub, tmp_path):
    commit = hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "*.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0, run.text
    directory = tmp_path / "w2v"
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    for name in ("config.json", "model.safetensors"):
        assert (directory / name).read_bytes() == HF_FILES[name]
    record = manifest(tmp_path)["models"]["w2v"]
    assert record["commit"] == commit and record["complete"] is True and record["fetched_at"].endswith("Z")
    assert record["files"]["model.safetensors"] == {"size": 300_000, "sha256": sha(HF_FILES["model.safetensors"])}
    # A small (non-LFS) file has no published sha256: its git blob id was checked instead.
    assert record["files"]["config.json"]["git_oid"] == git_blob_id(HF_FILES["config.json"])
    resolves = [r.path for r in hub.requests if "/resolve/" in r.path]
    assert sorted(resolves) == [
        f"/org/wav2vec/resolve/{commit}/config.json",
        f"/org/wav2vec/resolve/{commit}/model.safetensors",
    ]
    assert hub.downloads("org/wav2vec/model.safetensors")[0].path.startswith("/cdn-lfs/")  # redirect followed
    assert "README.md" not in " ".join(r.path for r in hub.requests)
    assert leftovers(tmp_path) == []
    assert "w2v: ok (2 files" in run.text


def test_modelscope_pull_fetches_the_whole_repo_with_subdirectories(hub, tmp_path):
    files = {"model.pt": blob(50_000, 2), "config.yaml": b"encoder: x\n", "sub/dir/tokens.json": b'["a"]'}
    hub.add_modelscope("iic/Tiny", files)
    spec = ModelSpec(name="tiny", source="modelscope", repo="iic/Tiny")

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0, run.text
    for path, data in files.items():
        assert (tmp_path / "tiny" / path).read_bytes() == data
    fetched = sorted(r.query["FilePath"] for r in hub.requests if r.file)
    assert fetched == sorted(files)
    assert all(r.query["Revision"] == "master" for r in hub.requests)
    assert manifest(tmp_path)["models"]["tiny"]["files"]["sub/dir/tokens.json"]["sha256"] == sha(
        files["sub/dir/tokens.json"]
    )


def test_url_pull_checks_the_pinned_sha256(hub, tmp_path):
    data = blob(20_000, 3)
    url = hub.add_url("voice.onnx", data)
    good = ModelSpec(name="voice", source="url", url=url, sha256=sha(data))
    bad = ModelSpec(name="voice2", source="url", url=url, sha256="0" * 64, files=["renamed.onnx"])

    code, run = do_pull([good, bad], tmp_path, settings(hub))

    assert code == 1
    assert (tmp_path / "voice" / "voice.onnx").read_bytes() == data
    assert f"expected {'0' * 64}, got {sha(data)}" in run.err.getvalue()
    assert str(tmp_path / "voice2" / "renamed.onnx") in run.err.getvalue()
    assert not (tmp_path / "voice2" / "renamed.onnx").exists() and leftovers(tmp_path) == []


def test_second_pull_fetches_nothing_and_force_fetches_again(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "model.safetensors"])
    assert do_pull([spec], tmp_path, settings(hub))[0] == 0
    served = len([r for r in hub.requests if r.file])

    code, run = do_pull([spec], tmp_path, settings(hub))
    assert code == 0 and "0 fetched, 2 already cached" in run.text
    assert len([r for r in hub.requests if r.file]) == served  # only the listing went out

    code, run = do_pull([spec], tmp_path, settings(hub), force=True)
    assert code == 0 and "2 fetched" in run.text
    assert len([r for r in hub.requests if r.file]) == 2 * served


def test_files_put_in_place_by_hand_are_adopted_by_hash(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["model.safetensors"])
    (tmp_path / "w2v").mkdir()
    (tmp_path / "w2v" / "model.safetensors").write_bytes(HF_FILES["model.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0 and "0 fetched, 1 already cached" in run.text, run.text
    assert hub.downloads("org/wav2vec/model.safetensors") == []
    assert manifest(tmp_path)["models"]["w2v"]["files"]["model.safetensors"]["sha256"] == sha(
        HF_FILES["model.safetensors"]
    )


def test_a_cut_download_resumes_with_a_range_request(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    key = "org/wav2vec/model.safetensors"
    hub.cut(key, after=100_000)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["model.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0, run.text
    assert (tmp_path / "w2v" / "model.safetensors").read_bytes() == HF_FILES["model.safetensors"]
    first, second = hub.downloads(key)
    assert first.bytes_sent == 100_000 and "range" not in first.headers
    assert second.headers["range"] == "bytes=100000-" and second.status == 206
    assert hub.bytes_served(key) == 300_000 < 2 * 300_000


def test_an_interrupted_pull_leaves_the_part_file_and_the_next_pull_resumes_it(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    key = "org/wav2vec/model.safetensors"
    hub.cut(key, after=120_000)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["model.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub), policy=NO_RETRY)
    assert code == 1
    assert (
        f"127.0.0.1:{hub.url.rsplit(':', 1)[1]}" in run.err.getvalue() and "w2v/model.safetensors" in run.err.getvalue()
    )
    part = tmp_path / "w2v" / "model.safetensors.part"
    assert part.stat().st_size == 120_000 and not (tmp_path / "w2v" / "model.safetensors").exists()

    code, run = do_pull([spec], tmp_path, settings(hub), policy=NO_RETRY)
    assert code == 0, run.text
    assert hub.downloads(key)[-1].headers["range"] == "bytes=120000-"
    assert (tmp_path / "w2v" / "model.safetensors").read_bytes() == HF_FILES["model.safetensors"]
    assert hub.bytes_served(key) == 300_000 and not part.exists()


def test_a_server_that_ignores_range_restarts_the_file_cleanly(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    key = "org/wav2vec/model.safetensors"
    hub.cut(key, after=100_000)
    hub.ignore_range = True
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["model.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0, run.text
    second = hub.downloads(key)[1]
    assert second.headers["range"] == "bytes=100000-" and second.status == 200
    assert (tmp_path / "w2v" / "model.safetensors").read_bytes() == HF_FILES["model.safetensors"]


def test_a_complete_part_file_is_finished_on_416(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    key = "org/wav2vec/model.safetensors"
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["model.safetensors"])
    (tmp_path / "w2v").mkdir()
    (tmp_path / "w2v" / "model.safetensors.part").write_bytes(HF_FILES["model.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0, run.text
    (only,) = hub.downloads(key)
    assert only.status == 416 and only.headers["range"] == "bytes=300000-" and only.bytes_sent == 0
    assert (tmp_path / "w2v" / "model.safetensors").read_bytes() == HF_FILES["model.safetensors"]


def test_a_corrupted_download_is_rejected_and_nothing_is_left_in_place(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    key = "org/wav2vec/model.safetensors"
    hub.corrupt(key)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "model.safetensors"])

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 1
    good = HF_FILES["model.safetensors"]
    corrupted = good[:-1] + bytes([good[-1] ^ 0xFF])
    message = run.err.getvalue()
    assert str(tmp_path / "w2v" / "model.safetensors") in message
    assert f"expected {sha(good)}, got {sha(corrupted)}" in message
    assert not (tmp_path / "w2v" / "model.safetensors").exists() and leftovers(tmp_path) == []
    record = manifest(tmp_path)["models"]["w2v"]
    assert "model.safetensors" not in record["files"] and record["complete"] is False


def test_a_pin_that_contradicts_the_hub_fails_before_downloading(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    pin = "ab" * 32
    spec = ModelSpec(
        name="w2v",
        source="huggingface",
        repo="org/wav2vec",
        files=["model.safetensors"],
        sha256={"model.safetensors": pin},
    )

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 1 and f"pins sha256 {pin}" in run.err.getvalue()
    assert not [r for r in hub.requests if "/resolve/" in r.path or r.file]


def test_5xx_answers_are_retried_then_reported_with_host_and_file(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    key = "org/wav2vec/config.json"
    hub.fail(key, times=2)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json"])
    code, run = do_pull([spec], tmp_path, settings(hub))
    assert code == 0, run.text
    assert [r.status for r in hub.downloads(key)] == [503, 503, 200]

    hub.fail(key, times=None)
    code, run = do_pull([spec], tmp_path / "again", settings(hub))
    assert code == 1
    message = run.err.getvalue()
    assert hub.url.removeprefix("http://") in message and "w2v/config.json" in message and "HTTP 503" in message
    assert "gave up after 4 attempts" in message


def test_connection_refused_names_the_host(tmp_path):
    with FakeHub() as gone:
        url = gone.url  # a port that was just closed
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json"])
    code, run = do_pull([spec], tmp_path, HubSettings(huggingface_endpoint=url))
    assert code == 1
    assert f"{url.removeprefix('http://')}: listing org/wav2vec@main: cannot connect" in run.err.getvalue()


def test_an_unreachable_hub_keeps_a_complete_cache_usable(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json"])
    assert do_pull([spec], tmp_path, settings(hub))[0] == 0
    with FakeHub() as gone:
        dead = HubSettings(huggingface_endpoint=gone.url)
    code, run = do_pull([spec], tmp_path, dead)
    assert code == 0 and "cannot check for updates" in run.err.getvalue() and "the cached copy is complete" in run.text
    (tmp_path / "w2v" / "config.json").unlink()
    code, run = do_pull([spec], tmp_path, dead)
    assert code == 1 and "cannot connect" in run.err.getvalue()


def test_missing_repo_file_or_token_are_clear_errors(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    hub.token = "secret"
    wanted = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "nope.bin"])
    no_repo = ModelSpec(name="gone", source="huggingface", repo="org/gone")

    code, run = do_pull([wanted], tmp_path, settings(hub))
    assert code == 1 and "HTTP 401" in run.err.getvalue() and "HF_TOKEN" in run.err.getvalue()

    code, run = do_pull([wanted, no_repo], tmp_path, settings(hub, token="secret"))
    assert code == 1
    assert "file 'nope.bin' is not in org/wav2vec@main" in run.err.getvalue()
    assert "listing org/gone@main: HTTP 404 not found" in run.err.getvalue()
    assert all(r.headers.get("authorization") == "Bearer secret" for r in hub.requests[1:])


def test_the_token_goes_only_to_hugging_face_and_not_to_its_cdn(hub, tmp_path):
    hub.token = "secret"
    hub.add_hf("org/wav2vec", HF_FILES)
    data = blob(5_000, 4)
    url = hub.add_url("x.bin", data)
    hub.add_modelscope("iic/Tiny", {"a.txt": b"a"})
    specs = [
        ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["model.safetensors"]),
        ModelSpec(name="x", source="url", url=url, sha256=sha(data)),
        ModelSpec(name="tiny", source="modelscope", repo="iic/Tiny"),
    ]
    code, run = do_pull(specs, tmp_path, settings(hub, token="secret"))
    assert code == 0, run.text
    with_token = {r.path for r in hub.requests if r.headers.get("authorization") == "Bearer secret"}
    (resolve,) = [r.path for r in hub.requests if "/resolve/" in r.path]
    assert with_token == {"/api/models/org/wav2vec/revision/main", resolve}
    # The LFS redirect leads to another origin (the CDN): the token stays behind, as it must.
    (cdn,) = hub.downloads("org/wav2vec/model.safetensors")
    assert cdn.headers["host"].startswith("localhost:") and "authorization" not in cdn.headers


def test_offline_pull_names_each_missing_file_and_opens_no_connection(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "model.safetensors"])
    whole = ModelSpec(name="all", source="modelscope", repo="iic/All")
    offline = settings(hub).with_env({"AVATAR_OFFLINE": "1"})

    code, run = do_pull([spec, whole], tmp_path, offline)

    assert code == 1
    message = run.err.getvalue()
    assert str(tmp_path / "w2v" / "config.json") in message and str(tmp_path / "w2v" / "model.safetensors") in message
    assert "every file of iic/All@master" in message
    assert hub.requests == []


def test_offline_pull_succeeds_when_everything_is_cached(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "model.safetensors"])
    assert do_pull([spec], tmp_path, settings(hub))[0] == 0
    before = len(hub.requests)

    code, run = do_pull([spec], tmp_path, settings(hub, offline=True))

    assert code == 0 and "w2v: ok (cached; offline" in run.text
    assert len(hub.requests) == before
    (tmp_path / "w2v" / "config.json").unlink()
    code, run = do_pull([spec], tmp_path, settings(hub, offline=True))
    assert code == 1 and str(tmp_path / "w2v" / "config.json") in run.err.getvalue()
    assert len(hub.requests) == before


def test_verify_rehashes_and_reports_corrupt_and_missing_files_without_the_network(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    hub.add_modelscope("iic/Tiny", {"model.pt": blob(40_000, 5)})
    specs = [
        ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json", "model.safetensors"]),
        ModelSpec(name="tiny", source="modelscope", repo="iic/Tiny"),
        ModelSpec(name="never", source="modelscope", repo="iic/Never", files=["model.pt"]),
    ]
    assert do_pull(specs[:2], tmp_path, settings(hub))[0] == 0
    before = len(hub.requests)

    code, run = do_verify(specs[:2], tmp_path)
    assert code == 0 and "ok       w2v: 2 files" in run.text and "ok       tiny: 1 file," in run.text

    weights = tmp_path / "w2v" / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[1234] ^= 0x01  # same size: only a re-hash can see it
    weights.write_bytes(bytes(damaged))
    (tmp_path / "tiny" / "model.pt").unlink()
    code, run = do_verify(specs, tmp_path)

    assert code == 1
    assert (
        f"CORRUPT  w2v: {weights} (sha256 expected {sha(HF_FILES['model.safetensors'])}, got {sha(bytes(damaged))})"
        in run.text
    )
    assert f"MISSING  tiny: {tmp_path / 'tiny' / 'model.pt'}" in run.text
    assert f"MISSING  never: {tmp_path / 'never' / 'model.pt'}" in run.text
    assert len(hub.requests) == before


def _tar_gz(members: dict[str, bytes], extra=None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra)
    return buffer.getvalue()


def _zip(members: dict[str, bytes], symlink: tuple[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:  # as `zip --symlinks` stores one: Unix mode S_IFLNK, the target as content
            info = zipfile.ZipInfo(symlink[0])
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink[1])
    return buffer.getvalue()


CHECKPOINT = blob(30_000, 6)


@pytest.mark.parametrize(
    ("archive_name", "payload"),
    [
        # The LAM download: a gzip tar named .tar that holds pretrained_models/lam_audio2exp_streaming.tar.
        (
            "LAM_audio2exp_streaming.tar",
            _tar_gz({"./pretrained_models/lam_audio2exp_streaming.tar": CHECKPOINT, "notes/readme.txt": b"hi"}),
        ),  # noqa: E501
        ("weights.zip", _zip({"pretrained_models/lam_audio2exp_streaming.tar": CHECKPOINT, "notes/readme.txt": b"hi"})),  # noqa: E501
    ],
)
def test_unpack_extracts_the_archive_in_place_and_verify_covers_its_files(hub, tmp_path, archive_name, payload):
    hub.add_hf("3DAIGC/LAM_audio2exp", {archive_name: payload})
    spec = ModelSpec(name="lam", source="huggingface", repo="3DAIGC/LAM_audio2exp", files=[archive_name], unpack=True)

    code, run = do_pull([spec], tmp_path, settings(hub))

    assert code == 0, run.text
    directory = tmp_path / "lam"
    assert (directory / "pretrained_models" / "lam_audio2exp_streaming.tar").read_bytes() == CHECKPOINT
    assert (directory / "notes" / "readme.txt").read_bytes() == b"hi"
    assert not (directory / archive_name).exists()  # verified, unpacked, recorded, removed
    assert sorted(p.name for p in directory.iterdir()) == ["notes", "pretrained_models"]
    record = manifest(tmp_path)["models"]["lam"]
    assert record["archives"][archive_name]["sha256"] == sha(payload)
    assert record["files"]["pretrained_models/lam_audio2exp_streaming.tar"] == {
        "size": len(CHECKPOINT),
        "sha256": sha(CHECKPOINT),
        "from_archive": archive_name,
    }
    assert do_verify([spec], tmp_path)[0] == 0
    code, run = do_pull([spec], tmp_path, settings(hub))
    assert (
        code == 0
        and "0 fetched, 1 already cached" in run.text
        and len(hub.downloads(f"3DAIGC/LAM_audio2exp/{archive_name}")) == 1
    )
    (directory / "notes" / "readme.txt").write_bytes(b"HI")
    code, run = do_verify([spec], tmp_path)
    assert code == 1 and "CORRUPT  lam:" in run.text and "readme.txt" in run.text


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


ESCAPES = {  # (archive bytes, refused member) built for a cache at <tmp>/cache: every escape aims at <tmp>/evil.txt
    "dotdot": lambda tmp: (_tar_gz({"good.bin": b"ok", "../../evil.txt": b"x"}), "../../evil.txt"),
    "absolute": lambda tmp: (_tar_gz({"good.bin": b"ok", f"{tmp}/evil.txt": b"x"}), f"{tmp}/evil.txt"),
    "symlink": lambda tmp: (_tar_gz({"good.bin": b"ok"}, _link("link", f"{tmp}/evil.txt")), "link"),
    "hardlink": lambda tmp: (_tar_gz({"good.bin": b"ok"}, _link("hard", f"{tmp}/evil.txt", tarfile.LNKTYPE)), "hard"),
    "zip-dotdot": lambda tmp: (_zip({"good.bin": b"ok", "a/../../../evil.txt": b"x"}), "a/../../../evil.txt"),
    "zip-symlink": lambda tmp: (_zip({"good.bin": b"ok"}, symlink=("link", f"{tmp}/evil.txt".encode())), "link"),
}


@pytest.mark.parametrize("kind", list(ESCAPES))
def test_unpack_refuses_members_that_escape_and_extracts_nothing(hub, tmp_path, kind):
    payload, refused = ESCAPES[kind](tmp_path)
    refused = repr(refused)
    name = "bad.zip" if payload.startswith(b"PK") else "bad.tar.gz"
    hub.add_hf("org/bad", {name: payload})
    spec = ModelSpec(name="bad", source="huggingface", repo="org/bad", unpack=True)
    model_dir = tmp_path / "cache"

    code, run = do_pull([spec], model_dir, settings(hub))

    assert code == 1
    assert f"refusing member {refused}" in run.err.getvalue()
    assert not (tmp_path / "evil.txt").exists() and not (model_dir / "evil.txt").exists()
    assert sorted(p.name for p in (model_dir / "bad").iterdir()) == [name]  # nothing extracted, no staging dir


def test_log_lines_progress_reports_every_tenth_when_not_a_terminal():
    stream = io.StringIO()
    progress = LogLines(stream, "w2v/model.safetensors", total=1000, initial=200)
    for _ in range(8):
        progress.update(100)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "w2v/model.safetensors: resuming at 200 B"
    assert [line.split(": ")[1].split(" ")[0] for line in lines[1:]] == [
        "30%",
        "40%",
        "50%",
        "60%",
        "70%",
        "80%",
        "90%",
        "100%",
    ]


def test_a_second_pull_on_the_same_cache_waits_for_the_first(hub, tmp_path):
    hub.add_hf("org/wav2vec", HF_FILES)
    spec = ModelSpec(name="w2v", source="huggingface", repo="org/wav2vec", files=["config.json"])
    results = []
    holder = Run()
    with pull_lock(tmp_path, holder.console):
        waiting = threading.Thread(target=lambda: results.append(do_pull([spec], tmp_path, settings(hub))))
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive() and hub.requests == []  # blocked before its first request
    waiting.join(10)
    code, run = results[0]
    assert code == 0 and "another `models pull` is using this cache" in run.err.getvalue()
    assert (tmp_path / "w2v" / "config.json").read_bytes() == HF_FILES["config.json"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = for_stream(stream)("w2v/model.safetensors", 2_000_000)
        bar.update(2_000_000)
        bar.close()
    assert "\r" in terminal.getvalue() and "100%|" in terminal.getvalue()  # tqdm redraws one line
    assert re.fullmatch(r"w2v/model.safetensors: 100% \(2.0 MB of 2.0 MB, [\d.]+ [KMG]?B/s\)\n", log.getvalue())
