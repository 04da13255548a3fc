"""`avatar-runtime serve --no-tls` in its own process, and what it costs: CPU time, RSS and (where there is one)
GPU memory, read from /proc and nvidia-smi so the benchmark needs no extra dependency.

The server runs in another process than the peers on purpose: both in one Python process would share one
event loop and one GIL, and the clients' Opus encoding and SRTP would be billed to the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.support.serve_process import start_serve

TICKS = os.sysconf("SC_CLK_TCK")


def bench_config(llm_url: str, concurrent_limit: int, base: Path | None = None) -> dict:
    """The config the server runs with: the user's file (or the embedded defaults) with the LLM pointed at the
    local stub and the session limit raised, so the benchmark — not the limit — finds the box's capacity."""
    raw = yaml.safe_load(base.read_text(encoding="utf-8")) if base else {}
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"{base}: a config file must hold a mapping of sections")
    raw = raw or {}
    raw.setdefault("server", {}).update({"concurrent_limit": concurrent_limit, "drain_timeout_s": 5.0})
    raw.setdefault("llm", {}).update({"base_url": llm_url, "api_key": "bench"})
    return raw


@dataclass(frozen=True)
class Usage:
    """One reading of a process tree: CPU seconds (user + system) so far and resident memory."""

    at: float
    cpu_s: float
    rss_bytes: int


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (a serve that forks workers is billed whole)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def read_usage(pid: int) -> Usage:
    cpu, rss = 0.0, 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue  # exited between the listing and the read
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15 of proc(5))
        rss += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return Usage(time.perf_counter(), cpu, rss)


def runqueue_wait_s(pid: int | str = "self") -> float:
    """Seconds the process's main thread — the event loop that paces the 20 ms audio packets — has spent ready
    to run but waiting for a CPU (proc(5) schedstat): how much other work on the box got in its way."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")  # a kernel without schedstats


def cpu_percent(before: Usage, after: Usage) -> float:
    """Average CPU over the interval; 100 = one core busy."""
    return 100.0 * (after.cpu_s - before.cpu_s) / max(after.at - before.at, 1e-9)


def gpu_memory_mib(pid: int) -> float | None:
    """GPU memory held by the process tree per nvidia-smi, or None where there is no NVIDIA GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    members = set(_tree(pid))
    used = [float(mem) for p, mem in (line.split(",") for line in out.strip().splitlines() if "," in line)
            if int(p) in members]  # fmt: skip
    return sum(used)


class ServeProcess:
    """The runtime as a user starts it; `with ServeProcess(config) as server:` waits until /readyz says ready."""

    def __init__(self, config: dict, ready_timeout_s: float = 120.0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="avatar-bench-")
        self.config_path = Path(self._dir.name) / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.started_in_s = 0.0
        self._log: deque[str] = deque(maxlen=200)
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServeProcess:
        started = time.perf_counter()
        self.process, self.url = start_serve(self.config_path, Path(self._dir.name), tls=False)
        # Read the log as it comes: a full pipe would block the server mid-benchmark.
        self._drain = threading.Thread(target=self._log.extend, args=(self.process.stdout,), daemon=True)
        self._drain.start()
        deadline = started + self.ready_timeout_s
        while True:
            if self.process.poll() is not None:
                if self._drain is not None:
                    self._drain.join(timeout=5)
                raise RuntimeError(f"avatar-runtime serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.__exit__()
                raise RuntimeError(f"avatar-runtime serve not ready after {self.ready_timeout_s} s")
            time.sleep(0.1)
        self.started_in_s = time.perf_counter() - started
        return self

    def output(self) -> str:
        """The last lines the server logged."""
        return "".join(self._log)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._drain is not None:
            self._drain.join(timeout=5)
        self._dir.cleanup()
