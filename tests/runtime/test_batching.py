"""The process-wide dynamic batcher (`engines/batching.py`): batching, one worker, errors, cancellation, close."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from avatar_runtime.engines.batching import BatcherClosed, DynamicBatcher


class Recorder:
    """fn for the batcher: doubles numbers, records every batch and the thread it ran on; can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.threads.add(threading.get_ident())
        self.batches.append(list(items))
        self.started.set()
        assert self.release.wait(10)
        if any(i < 0 for i in items):
            raise ValueError(f"negative item in {items}")
        return [2 * i for i in items]


async def wait_for(predicate, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_concurrent_requests_form_batches_and_each_gets_its_own_result() -> None:
    fn = Recorder()
    batcher = DynamicBatcher(fn, max_batch=4, max_wait_ms=200)
    try:
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    finally:
        batcher.close()
    assert results == [2 * i for i in range(10)]
    assert sorted(len(b) for b in fn.batches) == [2, 4, 4]  # max_batch caps; the rest waited for a third batch
    assert sorted(i for b in fn.batches for i in b) == list(range(10))  # every item computed exactly once
    assert batcher.batch_sizes == {4: 2, 2: 1}


async def test_one_worker_thread_runs_every_batch_inside_the_worker_context() -> None:
    fn, entered = Recorder(), []

    @contextlib.contextmanager
    def context():
        entered.append(threading.get_ident())
        yield

    batcher = DynamicBatcher(fn, max_batch=2, max_wait_ms=0, worker_context=context)
    try:
        for round_ in range(3):  # several sessions, several rounds
            assert await asyncio.gather(*(batcher.submit(round_ * 10 + i) for i in range(5))) == [
                2 * (round_ * 10 + i) for i in range(5)
            ]
    finally:
        batcher.close()
    assert len(fn.threads) == 1 and threading.get_ident() not in fn.threads
    assert entered == list(fn.threads)  # entered once, on the worker thread


async def test_a_failing_batch_fails_all_its_waiters_and_the_worker_survives() -> None:
    fn = Recorder()
    fn.release.clear()
    batcher = DynamicBatcher(fn, max_batch=8, max_wait_ms=0)
    try:
        blocker = asyncio.ensure_future(batcher.submit(1))
        await wait_for(fn.started.is_set)  # the worker is busy: the next three queue up as one batch
        bad = [asyncio.ensure_future(batcher.submit(i)) for i in (2, -3, 4)]
        await asyncio.sleep(0.05)
        fn.release.set()
        assert await blocker == 2
        outcomes = await asyncio.gather(*bad, return_exceptions=True)
        assert fn.batches[1] == [2, -3, 4]
        assert all(isinstance(o, ValueError) and "negative item" in str(o) for o in outcomes)
        assert await batcher.submit(5) == 10  # the worker carried on
    finally:
        batcher.close()


async def test_wrong_number_of_results_is_an_error_for_every_waiter() -> None:
    batcher = DynamicBatcher(lambda items: items[:-1], max_batch=4, max_wait_ms=100)
    try:
        outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    finally:
        batcher.close()
    assert all(isinstance(o, RuntimeError) and "3 items" in str(o) for o in outcomes)


async def test_cancelled_waiters_are_left_out_of_the_batch() -> None:
    fn = Recorder()
    fn.release.clear()
    batcher = DynamicBatcher(fn, max_batch=8, max_wait_ms=0)
    try:
        first = asyncio.ensure_future(batcher.submit(1))
        await wait_for(fn.started.is_set)
        queued = {i: asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)}
        await asyncio.sleep(0.02)  # all three are in the queue now
        queued[3].cancel()
        await asyncio.sleep(0.02)
        fn.release.set()
        assert await first == 2
        assert await queued[2] == 4 and await queued[4] == 8
        with pytest.raises(asyncio.CancelledError):
            await queued[3]
    finally:
        batcher.close()
    assert fn.batches == [[1], [2, 4]]


async def test_a_waiter_cancelled_while_its_batch_runs_does_not_break_the_others() -> None:
    fn = Recorder()
    fn.release.clear()
    batcher = DynamicBatcher(fn, max_batch=8, max_wait_ms=50)
    try:
        a, b = asyncio.ensure_future(batcher.submit(1)), asyncio.ensure_future(batcher.submit(2))
        await wait_for(fn.started.is_set)
        a.cancel()
        fn.release.set()
        assert await b == 4
        with pytest.raises(asyncio.CancelledError):
            await a
        assert await batcher.submit(3) == 6
    finally:
        batcher.close()
    assert fn.batches[0] == [1, 2]


async def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    fn = Recorder()
    fn.release.clear()
    batcher = DynamicBatcher(fn, max_batch=1, max_wait_ms=0)
    running = asyncio.ensure_future(batcher.submit(1))
    await wait_for(fn.started.is_set)
    queued = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.02)
    closer = asyncio.ensure_future(asyncio.to_thread(batcher.close))
    await asyncio.sleep(0.02)
    fn.release.set()
    await closer
    assert await running == 2  # the batch in progress finishes
    with pytest.raises(BatcherClosed):
        await queued
    with pytest.raises(BatcherClosed):
        await batcher.submit(3)
    assert fn.batches == [[1]]
    assert not any(t.name == "batcher" for t in threading.enumerate())


async def test_close_before_first_use_and_twice() -> None:
    batcher = DynamicBatcher(lambda items: items)
    batcher.close()
    batcher.close()
    with pytest.raises(BatcherClosed):
        await batcher.submit(1)
