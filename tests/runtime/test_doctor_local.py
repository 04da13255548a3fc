"""`avatar-runtime doctor`, the checks that need no network: packages, embedded models, GPU, model cache, web.

Everything runs against real things here: the installed packages and wheels, this machine's torch (a CPU build,
no GPU), a model cache pulled from a fake hub on loopback with the runtime's own `models pull`, avatar zips made
by the project's generator. Only the GPU arithmetic is fed invented GPUs, since no GPU is here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from avatar_runtime.config import RuntimeConfig
from avatar_runtime.doctor import embedded, gpu, model_cache, packages, web
from avatar_runtime.doctor.gpu import GIB, GPU, TorchCuda
from avatar_runtime.doctor.printer import render_text
from avatar_runtime.doctor.result import Result, exit_code, summary
from avatar_runtime.doctor.target import make_target
from avatar_runtime.models.commands import Console, pull
from avatar_runtime.models.progress import silent
from avatar_runtime.models.specs import HubSettings

from tests.support.fake_hub import FakeHub

REPO = Path(__file__).resolve().parents[2]
SENSEVOICE = {
    "model.pt": bytes(range(256)) * 400,
    "config.yaml": b"encoder: SenseVoiceEncoderSmall\n",
    "am.mvn": b"<Nnet>\n",
    "chn_jpn_yue_eng_ko_spectok.bpe.model": b"bpe",
    "configuration.json": b'{"framework": "pytorch"}',
}


def target(**config):
    return make_target(RuntimeConfig.model_validate(config), host="127.0.0.1", config_path="my.yaml")


def by_name(results: list[Result]) -> dict[str, Result]:
    return {r.name: r for r in results}


# -- result type ----------------------------------------------------------------------------------------------


def test_report_is_grouped_with_fixes_and_coloured_only_when_asked():
    results = [Result("gpu", "cuda", "fail", "no GPU", "set a2e.device: auto"), Result("web", "avatar", "ok", "fine")]
    plain = render_text(results, target(), colour=False)
    assert plain.splitlines()[1:] == [
        "", "gpu", "  FAIL  no GPU", "        fix: set a2e.device: auto", "", "web", "  ok    fine", "",
        "1 failed, 0 warnings (1 ok, 1 fail)",
    ]  # fmt: skip
    assert "\033[31;1mFAIL\033[0m" in render_text(results, target(), colour=True)


def test_exit_code_fails_only_on_failures():
    ok, warn, fail = (Result("g", "n", s, "x") for s in ("ok", "warn", "fail"))
    assert exit_code([ok, warn]) == 0
    assert exit_code([ok, warn, fail]) == 1
    assert summary([ok, warn, warn]) == {"ok": 1, "info": 0, "warn": 2, "fail": 0, "skip": 0}


# -- python packages and embedded models ----------------------------------------------------------------------


def test_packages_of_the_configured_engines_are_named():
    results = by_name(packages.check_engine_packages(target(tts={"engine": "edge"}, asr={"engine": "sensevoice"})))
    assert set(results) == {"vad silero", "asr sensevoice", "tts edge", "tts piper"}  # piper: edge's fallback
    assert all(r.status == "ok" for r in results.values()), results
    assert "funasr 1.4.16" in results["asr sensevoice"].finding


def test_a_missing_production_package_fails_with_the_install_command():
    def version_of(name: str) -> str | None:  # an install without the production extra
        return None if name in ("torch", "transformers") else packages.installed_version(name)

    results = by_name(packages.check_engine_packages(target(a2e={"engine": "lam"}), version_of=version_of))
    lam = results["a2e lam"]
    assert lam.status == "fail" and "torch, transformers, which are not installed" in lam.finding
    assert "hack/install.sh --production" in lam.fix
    assert results["asr whisper"].status == "ok"


def test_a_version_off_the_pin_warns():
    results = by_name(packages.check_engine_packages(target(), pins={"faster-whisper": "0.9.0"}))
    assert results["asr whisper"].status == "warn"
    assert "faster-whisper 1.2.1 (avatar-runtime pins 0.9.0)" in results["asr whisper"].finding
    local_build = packages.check_engine_packages(target(a2e={"engine": "lam"}), pins={"torch": "2.13.0"})
    assert by_name(local_build)["a2e lam"].status == "ok"  # 2.13.0+cpu is a build of 2.13.0


def test_embedded_models_load():
    results = by_name(embedded.check(target(tts={"engine": "espeak", "voice": "en-us"})))
    assert [r.status for r in results.values()] == ["ok", "ok", "ok", "ok"], results
    assert "sha256 verified" in results["whisper ASR"].finding
    assert results["languages"].finding == "conversations in: en (hears en)"
    assert "voice 'en-us' exists" in results["espeak TTS"].finding


def test_a_voice_in_another_language_than_asr_hears_warns():
    result = embedded.check_languages(target(tts={"engine": "edge", "voice": "ja-JP-NanamiNeural"}).config)
    assert result.status == "warn" and "ASR hears en but the TTS voice speaks ja" in result.finding
    assert "asr.language" in result.fix


def test_espeak_with_an_unknown_voice_fails_naming_the_key():
    result = embedded.check_espeak("xx-nonsense")
    assert result.status == "fail" and "xx-nonsense" in result.finding and "tts.voice" in result.fix


def test_whisper_model_path_without_weights_fails(tmp_path):
    result = embedded.check_whisper(str(tmp_path))
    assert result.status == "fail" and f"{tmp_path}/model.bin does not exist" in result.finding


# -- GPU ------------------------------------------------------------------------------------------------------


def test_cuda_configured_on_this_cpu_only_machine_fails_with_the_fix():
    results = gpu.check(target(asr={"engine": "sensevoice", "device": "cuda"}, a2e={"engine": "lam"}))
    assert [r.name for r in results] == ["cuda"]  # no GPU: no memory verdict
    cuda = results[0]
    assert cuda.status == "fail" and cuda.finding.startswith("asr.device: cuda is configured, but torch")
    assert "CPU-only build" in cuda.finding  # this machine's torch is 2.13.0+cpu
    assert "torch==2.13.0" in cuda.fix


def test_auto_on_cpu_is_information_and_no_gpu_engine_is_too():
    auto = gpu.check(target(a2e={"engine": "lam"}))[0]
    assert auto.status == "info" and "LAM A2E (a2e.device: auto) run on the CPU" in auto.finding
    embedded_only = gpu.check(target())[0]
    assert embedded_only.status == "info" and "no configured engine uses a GPU" in embedded_only.finding


def test_cuda_build_that_sees_no_gpu_names_the_visibility_fix():
    torch_info = TorchCuda("2.13.0+cu128", "12.8", ())
    result = gpu.cuda_verdict({"a2e": "cuda"}, torch_info, None, "nvidia-smi is not installed (...)")
    assert result.status == "fail" and "sees no GPU; nvidia-smi is not installed" in result.finding
    assert "--gpus all" in result.fix and "a2e.device: auto" in result.fix


def test_vram_against_the_session_limit():
    engines = {"asr": "auto", "a2e": "auto"}
    h100 = GPU(0, "NVIDIA H100", 80 * GIB, 79 * GIB)
    # 0.5 (context) + 1.0 (SenseVoice) + 0.5 (LAM) + 8 sessions x 1.0 = 10 GiB
    assert gpu.vram_needed_bytes(engines, 8) == 10 * GIB
    assert gpu.vram_verdict(engines, h100, 8).status == "ok"
    small = GPU(0, "T4", 8 * GIB, 8 * GIB)
    too_many = gpu.vram_verdict(engines, small, 8)
    assert too_many.status == "fail" and "server.concurrent_limit: 6 or less" in too_many.fix
    busy = GPU(0, "A10", 24 * GIB, 5 * GIB)
    shared = gpu.vram_verdict(engines, busy, 8)
    assert shared.status == "warn" and "server.concurrent_limit: 3 or less" in shared.fix
    assert "5.0 GiB free of 24.0 GiB" in shared.finding
    asr_on_cpu = gpu.vram_verdict({"asr": "cpu", "a2e": "auto"}, small, 1)  # SenseVoice's weights stay off the GPU
    assert "~2.0 GiB estimated for server.concurrent_limit 1" in asr_on_cpu.finding


def test_nvidia_smi_output_is_parsed():
    text = "0, NVIDIA H100 80GB HBM3, 81559, 80893\n1, NVIDIA H100 80GB HBM3, 81559, [N/A]\n"
    assert gpu.parse_nvidia_smi(text) == [GPU(0, "NVIDIA H100 80GB HBM3", 81559 * 2**20, 80893 * 2**20)]


# -- model cache ----------------------------------------------------------------------------------------------


@pytest.fixture
def pulled_cache(tmp_path) -> Path:
    """The SenseVoice model pulled by the runtime's own `models pull` from a fake ModelScope on loopback."""
    models = tmp_path / "models"
    with FakeHub() as hub:
        hub.add_modelscope("iic/SenseVoiceSmall", SENSEVOICE)
        settings = HubSettings(modelscope_endpoint=hub.url, huggingface_endpoint=hub.url, retries=0)
        config = RuntimeConfig()
        console = Console(sys.stdout, sys.stderr, silent)
        assert pull(config.models, models, settings, console, names=["sensevoice-small"]) == 0
    return models


def test_models_verified_for_the_configured_engine(pulled_cache):
    results = model_cache.check(target(asr={"engine": "sensevoice"}, model_dir=str(pulled_cache)))
    assert [(r.name, r.status) for r in results] == [("sensevoice-small", "ok")]
    assert results[0].finding.startswith("sensevoice-small (asr.model): verified, 5 files")


def test_a_corrupted_and_a_missing_file_fail_naming_them(pulled_cache):
    directory = pulled_cache / "sensevoice-small"
    data = bytearray((directory / "model.pt").read_bytes())
    data[1000] ^= 0xFF  # same size: only the hash can tell
    (directory / "model.pt").write_bytes(bytes(data))
    (directory / "am.mvn").unlink()
    [result] = model_cache.check(target(asr={"engine": "sensevoice"}, model_dir=str(pulled_cache)))
    assert result.status == "fail"
    assert f"missing {directory / 'am.mvn'}" in result.finding
    assert f"corrupt {directory / 'model.pt'} (sha256 expected" in result.finding
    assert result.fix == "avatar-runtime models pull --config my.yaml --model sensevoice-small"


def test_an_empty_cache_names_every_file_of_every_model(tmp_path):
    config = {"asr": {"engine": "sensevoice"}, "a2e": {"engine": "lam"}, "model_dir": str(tmp_path)}
    results = by_name(model_cache.check(target(**config)))
    assert set(results) == {"sensevoice-small", "lam-audio2exp", "wav2vec2-base-960h"}
    assert all(r.status == "fail" for r in results.values())
    assert str(tmp_path / "lam-audio2exp/LAM_audio2exp_streaming.tar") in results["lam-audio2exp"].finding
    assert str(tmp_path / "wav2vec2-base-960h/config.json") in results["wav2vec2-base-960h"].finding
    assert "(a2e.encoder)" in results["wav2vec2-base-960h"].finding


def test_files_copied_in_by_hand_warn_and_undefined_models_fail(tmp_path):
    directory = tmp_path / "sensevoice-small"
    directory.mkdir()
    for name, data in SENSEVOICE.items():
        (directory / name).write_bytes(data)
    [copied] = model_cache.check(target(asr={"engine": "sensevoice"}, model_dir=str(tmp_path)))
    assert copied.status == "warn" and "were not fetched by `models pull`" in copied.finding
    [undefined] = model_cache.check(target(asr={"engine": "sensevoice", "model": "mine"}, model_dir=str(tmp_path)))
    assert undefined.status == "fail" and "asr.model names model 'mine'" in undefined.finding


def test_embedded_engines_need_no_model_cache():
    [result] = model_cache.check(target())
    assert result.status == "info" and "need no model cache" in result.finding


# -- web client and avatar ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def avatar_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("avatars")
    script = REPO / "hack/make_default_avatar.py"
    subprocess.run([sys.executable, str(script), "--out", str(directory / "default.zip")], check=True, timeout=60)
    (directory / "broken.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: no avatar folder
    return directory


def test_avatar_validated_by_the_runtime(avatar_dir):
    good = web.check_avatar(str(avatar_dir), "default")
    assert good.status == "ok" and "52 morph targets" in good.finding
    broken = web.check_avatar(str(avatar_dir), "broken")
    assert broken.status == "fail" and "is not a valid LAM avatar" in broken.finding
    absent = web.check_avatar(str(avatar_dir), "alice")
    assert absent.status == "fail" and "(available: broken, default)" in absent.finding


def test_web_dir_without_index_fails(tmp_path):
    result = web.check_web_client(str(tmp_path))
    assert result.status == "fail" and "has no index.html" in result.finding
    (tmp_path / "index.html").write_text("<html></html>")
    assert web.check_web_client(str(tmp_path)).status == "ok"
