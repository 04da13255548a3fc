"""Dynamic batching: one worker thread per engine (so one per process) runs the requests of every session.

A neural engine is most efficient when it sees many sessions' work at once (one GPU launch for 16 windows costs
little more than for one), and a single worker also keeps the accelerator's state on one thread. Sessions
`await submit(item)` from the event loop; the worker takes the first waiting request, collects more for at
most `max_wait_ms` (or until `max_batch`), runs `fn(items) -> results` once and hands each session its own
result. Work that arrives while a batch runs forms the next batch, so under load batches fill by themselves
and the wait is only paid when traffic is light.

Generic on purpose (no torch here): the engine passes its own `fn` and, e.g., `worker_context=torch.inference_mode`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

_STOP = object()  # queue sentinel: the worker exits after failing whatever is still queued


class BatcherClosed(RuntimeError):
    """`submit` after `close()`, or a request still queued when the batcher closed."""


class DynamicBatcher(Generic[T, R]):
    """Collect requests from all sessions into batches for one worker thread.

    - `fn(items) -> results` (same length, same order) runs in the worker only, inside `worker_context()`
      when given (entered once for the thread's lifetime).
    - An exception from `fn` goes to every waiter of that batch; the worker carries on with the next one.
    - A waiter cancelled before its batch starts is left out of it; one cancelled later just drops its result.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 16,
        max_wait_ms: float = 4.0,
        name: str = "batcher",
        worker_context: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._fn, self.max_batch, self.max_wait_s = fn, max_batch, max(0.0, max_wait_ms) / 1000.0
        self._name, self._context = name, worker_context
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batch_sizes: Counter[int] = Counter()  # how many batches of each size ran (observability, tests)

    async def submit(self, item: T) -> R:
        """Queue `item` for the next batch and wait for its result (or `fn`'s exception)."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._lock:  # so that close() cannot slip between the check and the put
            if self._closed:
                raise BatcherClosed(f"{self._name} is closed")
            if self._thread is None:  # started on first use: building an engine stays cheap
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((item, future))
        # Cancelling the awaiting task cancels `future`, which the worker sees before running the batch.
        return await asyncio.wrap_future(future)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the worker after the batch in progress; requests still queued fail with BatcherClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
            thread = self._thread
        if thread is None:  # never started: nothing else will drain the queue
            self._fail_queued()
        elif thread is not threading.current_thread():
            thread.join(timeout_s)

    # -- worker ------------------------------------------------------------------------------------
    def _work(self) -> None:
        with self._context() if self._context else contextlib.nullcontext():
            while True:
                first = self._queue.get()
                if first is _STOP or self._closed:  # closed while a batch ran: what is queued does not run
                    self._fail(first)
                    break
                batch, stop = self._collect(first)
                self._run(batch)
                if stop:
                    break
        self._fail_queued()

    def _collect(self, first: object) -> tuple[list[tuple[T, concurrent.futures.Future[R]]], bool]:
        """The first request plus whatever arrives within max_wait (up to max_batch); (batch, stop seen)."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True  # type: ignore[return-value]
            batch.append(nxt)
        return batch, False  # type: ignore[return-value]

    def _run(self, batch: list[tuple[T, concurrent.futures.Future[R]]]) -> None:
        # set_running_or_notify_cancel() is False for a cancelled waiter, and after it returns True the waiter
        # can no longer cancel this future: its item is computed once and its result delivered or dropped.
        live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        self.batch_sizes[len(live)] += 1
        try:
            results = list(self._fn([item for item, _ in live]))
            if len(results) != len(live):
                raise RuntimeError(f"{self._name}: fn returned {len(results)} results for {len(live)} items")
        except BaseException as exc:  # every waiter must hear of it, and the worker must survive an Exception
            log.debug("%s: batch of %d failed: %r", self._name, len(live), exc)
            for _, fut in live:
                fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)

    def _fail_queued(self) -> None:
        while True:
            try:
                self._fail(self._queue.get_nowait())
            except queue.Empty:
                return

    def _fail(self, entry: object) -> None:
        if entry is not _STOP:
            _, fut = entry  # type: ignore[misc]
            if fut.set_running_or_notify_cancel():
                fut.set_exception(BatcherClosed(f"{self._name} closed before this request ran"))
