"""Progress of downloads and hashing: a tqdm bar on a terminal, plain log lines elsewhere (a Kubernetes Job log).

A bar redrawn with carriage returns turns into one unreadable line in `kubectl logs`, so when the stream is not a
TTY (or tqdm is not installed) we print a line every 10 % or every 15 s instead.
"""

from __future__ import annotations

import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class ProgressFactory(Protocol):
    def __call__(self, label: str, total: int | None, initial: int = 0) -> Progress: ...


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class LogLines:
    """Progress as occasional lines: `label: 40% (144.0 MB of 360.0 MB, 25.1 MB/s)`."""

    def __init__(self, stream: TextIO, label: str, total: int | None, initial: int = 0, every_s: float = 15.0) -> None:
        self._stream, self._label, self._total, self._every_s = stream, label, total, every_s
        self._done = initial
        self._start = self._last_time = time.monotonic()
        self._start_done = initial
        self._last_decile = self._decile()
        if initial:
            self._print(f"resuming at {human_bytes(initial)}")

    def _decile(self) -> int:
        return (self._done * 10 // self._total) if self._total else 0

    def _print(self, what: str) -> None:
        print(f"{self._label}: {what}", file=self._stream, flush=True)

    def _status(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = human_bytes((self._done - self._start_done) / elapsed) + "/s"
        if self._total:
            share = f"{100 * self._done // self._total}%"
            return f"{share} ({human_bytes(self._done)} of {human_bytes(self._total)}, {rate})"
        return f"{human_bytes(self._done)} ({rate})"

    def update(self, n: int) -> None:
        self._done += n
        now, decile = time.monotonic(), self._decile()
        if decile > self._last_decile or now - self._last_time >= self._every_s:
            self._last_decile, self._last_time = decile, now
            self._print(self._status())

    def close(self) -> None:
        if not self._total or self._last_decile < 10:
            self._print(self._status())


class Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def silent(label: str, total: int | None, initial: int = 0) -> Progress:
    return Silent()


def for_stream(stream: TextIO) -> ProgressFactory:
    """Bars when `stream` is a terminal and tqdm is installed, else log lines."""
    tqdm = None
    if stream.isatty():
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm comes with the production extra; the base install logs lines
            tqdm = None

    def make(label: str, total: int | None, initial: int = 0) -> Progress:
        if tqdm is not None:
            return tqdm(
                total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                file=stream, leave=True, dynamic_ncols=True,
            )  # fmt: skip
        return LogLines(stream, label, total, initial)

    return make
