"""Keep the event loop on the CPU: inference threads run at a lower priority than the loop that paces the audio.

Every session's 20 ms reply packets, microphone decoding, VAD and data-channel sends happen on the one event-loop
thread; ASR, TTS and Audio2Expression run in worker threads whose native thread pools (onnxruntime, CTranslate2,
torch) can keep every core busy. On a small machine the loop then waits for a CPU — measured 150 ms per second
with 5 sessions on 2 cores — and a reply packet leaves 40–60 ms late: an audible gap at the client.

Linux keeps a nice value per thread and a new thread inherits its creator's, so the loop's default executor gets
threads that raise their own nice value (`server.inference_nice`) before they run anything: the models loaded
there and the native pools they start inherit it, and the loop thread, at the process's own priority, wins the
CPU whenever it is ready. Raising one's own nice value needs no privilege; elsewhere it is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
_THREAD_PREFIX = "inference"


def lower_own_priority(nice: int) -> None:
    """Raise the calling thread's nice value to at least `nice` (Linux: per thread; never lowers it)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:  # a sandbox that forbids it: run at normal priority rather than fail
        log.debug("could not lower the priority of thread %d: %s", tid, exc)


def inference_executor(nice: int, max_workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool whose threads run at nice `nice` (and so do the native threads they start)."""
    return ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix=_THREAD_PREFIX, initializer=lower_own_priority, initargs=(nice,)
    )


def prioritise_loop(loop: asyncio.AbstractEventLoop, nice: int) -> None:
    """Make `loop`'s default executor (asyncio.to_thread, run_in_executor(None)) run below the loop's priority."""
    if nice > 0:
        loop.set_default_executor(inference_executor(nice))
