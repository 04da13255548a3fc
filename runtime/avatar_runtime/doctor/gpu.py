"""CUDA and GPU memory for the engines that use a GPU (SenseVoice ASR, LAM Audio2Expression).

Facts come from `nvidia-smi` (the driver's view, no CUDA context needed) and from torch (what the engines will
actually get); the verdicts are pure functions of those facts, so they are tested without a GPU.

GPU memory is an estimate, not a measurement: all sessions share one copy of each model, and what each session
adds is its share of the batched activations. OpenAvatarChat's documentation quotes 0.5–1 GB of GPU memory per
concurrent session for its avatar pipelines; we take the upper end, plus the models' weights and one CUDA context.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass

from ..config import RuntimeConfig
from .packages import PRODUCTION_INSTALL
from .result import Result
from .target import Target

GROUP = "gpu"
GIB = 1024**3
PER_SESSION_VRAM_GIB = 1.0  # OpenAvatarChat's 0.5–1 GB per session, upper end: a conservative session count
CUDA_CONTEXT_VRAM_GIB = 0.5  # what one process's CUDA context and torch's allocator take before any model
MODEL_VRAM_GIB = {
    "asr": 1.0,  # SenseVoiceSmall: ~234 M parameters in fp32 (model.pt is ~900 MB)
    "a2e": 0.5,  # LAM Audio2Expression: ~102 M parameters in fp16, plus its batched windows' workspace
}
ENGINE_NAMES = {"asr": "SenseVoice ASR", "a2e": "LAM A2E"}
CUDA_TORCH_FIX = (
    "install the CUDA build of torch 2.13.0 (pip install torch==2.13.0 --index-url "
    "https://download.pytorch.org/whl/cuXXX, cuXXX matching the CUDA version `nvidia-smi` shows; the runtime image "
    "has it)"
)
VISIBILITY_FIX = (
    "make the GPU visible: check `nvidia-smi`; in Docker run with --gpus all (NVIDIA Container Toolkit); on "
    "Kubernetes request nvidia.com/gpu; or set {keys}: auto (or cpu) to run on the CPU"
)


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class TorchCuda:
    """What torch reports: its version, the CUDA version it was built for (None: CPU-only build), the GPUs it sees."""

    version: str
    cuda_build: str | None
    gpus: tuple[GPU, ...]


def gpu_engines(config: RuntimeConfig) -> dict[str, str]:
    """Config section -> device, for the configured engines that can run on a GPU."""
    engines = {}
    if config.asr.engine == "sensevoice":
        engines["asr"] = config.asr.device
    if config.a2e.engine == "lam":
        engines["a2e"] = config.a2e.device
    return engines


# -- facts (side effects) -------------------------------------------------------------------------------------


def parse_nvidia_smi(text: str) -> list[GPU]:
    """`nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits` (MiB)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        index, name, total, free = parts
        try:
            gpus.append(GPU(int(index), name, int(float(total) * 1024**2), int(float(free) * 1024**2)))
        except ValueError:  # "[N/A]" on some virtual GPUs
            continue
    return gpus


def nvidia_smi() -> tuple[list[GPU] | None, str]:
    """(GPUs, "") from nvidia-smi; (None, why) when it is missing or fails."""
    program = shutil.which("nvidia-smi")
    if program is None:
        return None, "nvidia-smi is not installed (no NVIDIA driver on this machine, or not mounted in this container)"
    query = "--query-gpu=index,name,memory.total,memory.free"
    try:
        done = subprocess.run(
            [program, query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        return None, f"nvidia-smi failed: {message[0] if message else f'exit code {done.returncode}'}"
    return parse_nvidia_smi(done.stdout), ""


def torch_cuda() -> TorchCuda | None:
    """torch's view, None when torch is not installed. Creates a CUDA context per GPU to read its free memory."""
    try:
        import torch
    except ImportError:
        return None
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(GPU(i, torch.cuda.get_device_name(i), total, free))
    return TorchCuda(torch.__version__, torch.version.cuda, tuple(gpus))


# -- verdicts (pure) ------------------------------------------------------------------------------------------


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _keys(engines: dict[str, str], devices: tuple[str, ...]) -> str:
    return ", ".join(f"{section}.device" for section, device in engines.items() if device in devices)


def cuda_verdict(engines: dict[str, str], torch_info: TorchCuda | None, smi: list[GPU] | None, smi_note: str) -> Result:
    driver = f"nvidia-smi sees {len(smi)} GPU(s): {', '.join(g.name for g in smi)}" if smi else (smi_note or "no GPU")
    if not engines:
        finding = (
            "no configured engine uses a GPU (whisper, piper/espeak/online voices and the audio A2E run on the CPU); "
            f"{driver}"
        )
        return Result(GROUP, "cuda", "info", finding)
    names = ", ".join(f"{ENGINE_NAMES[s]} ({s}.device: {d})" for s, d in engines.items())
    if torch_info is None:
        return Result(GROUP, "cuda", "fail", f"{names} need torch, which is not installed", PRODUCTION_INSTALL)
    forced = _keys(engines, ("cuda",))
    if torch_info.gpus:
        gpus = ", ".join(
            f"cuda:{g.index} {g.name} ({_gib(g.free_bytes)} free of {_gib(g.total_bytes)})" for g in torch_info.gpus
        )
        on_cpu = _keys(engines, ("cpu",))
        note = f"; {on_cpu}: cpu keeps that engine off the GPU" if on_cpu else ""
        finding = f"torch {torch_info.version} (CUDA {torch_info.cuda_build}) sees {gpus}; the engines use cuda:0{note}"
        return Result(GROUP, "cuda", "ok", finding)
    if torch_info.cuda_build is None:
        why = f"torch {torch_info.version} is a CPU-only build"
        fix = CUDA_TORCH_FIX
    else:
        why = f"torch {torch_info.version} (CUDA {torch_info.cuda_build}) sees no GPU; {driver}"
        fix = VISIBILITY_FIX.format(keys=forced or _keys(engines, ("auto",)))
    if forced:
        return Result(GROUP, "cuda", "fail", f"{forced}: cuda is configured, but {why}", fix)
    if _keys(engines, ("auto",)):
        finding = (
            f"{why}: {names} run on the CPU (auto), which carries about one LAM session per 2 cores (docs/models.md)"
        )
        return Result(GROUP, "cuda", "info", finding, fix)
    return Result(GROUP, "cuda", "info", f"{names} are configured for the CPU; {driver}")


def vram_needed_bytes(engines: dict[str, str], concurrent_limit: int) -> float:
    """Estimated GPU memory for `concurrent_limit` sessions with these engines on one GPU (see the module doc)."""
    base = CUDA_CONTEXT_VRAM_GIB + sum(MODEL_VRAM_GIB[s] for s in engines)
    return (base + concurrent_limit * PER_SESSION_VRAM_GIB) * GIB


def sessions_that_fit(engines: dict[str, str], available_bytes: float) -> int:
    base = vram_needed_bytes(engines, 0)
    return max(0, math.floor((available_bytes - base) / (PER_SESSION_VRAM_GIB * GIB)))


def vram_verdict(engines: dict[str, str], gpu: GPU, concurrent_limit: int) -> Result:
    """The GPU the engines use (the first visible one) against server.concurrent_limit sessions."""
    on_gpu = {s: d for s, d in engines.items() if d != "cpu"}
    need = vram_needed_bytes(on_gpu, concurrent_limit)
    estimate = (
        f"~{_gib(need)} estimated for server.concurrent_limit {concurrent_limit} "
        f"({PER_SESSION_VRAM_GIB:g} GiB/session + models + CUDA context)"
    )
    where = f"cuda:{gpu.index} {gpu.name}: {_gib(gpu.free_bytes)} free of {_gib(gpu.total_bytes)}"
    if need > gpu.total_bytes:
        fits = sessions_that_fit(on_gpu, gpu.total_bytes)
        fix = f"set server.concurrent_limit: {fits} or less (one runtime per GPU), or use a GPU with more memory"
        return Result(GROUP, "vram", "fail", f"{where}; {estimate} exceeds the whole GPU", fix)
    if need > gpu.free_bytes:
        fits = sessions_that_fit(on_gpu, gpu.free_bytes)
        finding = f"{where}; {estimate} exceeds what is free (other processes, or this runtime already running)"
        fix = f"free the GPU (`nvidia-smi` lists its processes) or set server.concurrent_limit: {fits} or less"
        return Result(GROUP, "vram", "warn", finding, fix)
    return Result(GROUP, "vram", "ok", f"{where}; {estimate}")


def check(target: Target) -> list[Result]:
    engines = gpu_engines(target.config)
    smi, smi_note = nvidia_smi()
    torch_info = torch_cuda() if engines else None
    results = [cuda_verdict(engines, torch_info, smi, smi_note)]
    uses_gpu = any(d != "cpu" for d in engines.values())
    if uses_gpu and torch_info is not None and torch_info.gpus:
        results.append(vram_verdict(engines, torch_info.gpus[0], target.config.server.concurrent_limit))
    return results
