"""Inference threads run below the event loop's priority (Linux per-thread nice values, inherited by new threads)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from avatar_runtime.app import Runtime
from avatar_runtime.config import load_config
from avatar_runtime.scheduling import inference_executor, lower_own_priority

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread nice values are a Linux feature")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _nice_of_a_thread_started_here() -> int:
    seen: list[int] = []
    child = threading.Thread(target=lambda: seen.append(_nice()))  # as a native pool would start its workers
    child.start()
    child.join()
    return seen[0]


def _threads_at_nice(nice: int) -> int:
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        count += int(fields[16]) == nice  # proc(5): field 19 is nice; fields here start at field 3
    return count


def test_executor_threads_and_the_threads_they_start_are_niced_the_caller_is_not() -> None:
    before = _nice()
    with inference_executor(nice=before + 7, max_workers=1) as pool:
        assert pool.submit(_nice).result() == before + 7
        assert pool.submit(_nice_of_a_thread_started_here).result() == before + 7
    assert _nice() == before


def test_a_thread_already_nicer_is_left_alone() -> None:
    def run() -> int:
        lower_own_priority(_nice() + 9)
        lower_own_priority(3)  # lower than what the thread has: never raises its priority back
        return _nice()

    with inference_executor(nice=0, max_workers=1) as pool:  # 0: plain threads
        base = pool.submit(_nice).result()
        assert pool.submit(run).result() == base + 9


def test_runtime_start_moves_model_work_off_the_loops_priority() -> None:
    config = load_config(env={})
    config.server.inference_nice = 12

    async def main() -> tuple[int, int]:
        runtime = Runtime(config)
        await runtime.start()  # loads the embedded models in the default executor
        try:
            assert runtime.load_error is None
            worker = await asyncio.to_thread(_nice)
            # The models' native pools were started by that executor (onnxruntime's intra-op threads for Piper,
            # CTranslate2's for Whisper): threads Python does not know about, at the executor's nice value.
            python_workers = sum(t.name.startswith("inference") for t in threading.enumerate())
            assert _threads_at_nice(12) > python_workers
            return worker, _nice()
        finally:
            await runtime.stop()

    before = _nice()
    worker, loop_thread = asyncio.run(main())
    assert worker == max(before, 12)
    assert loop_thread == before
