"""A day of conversations: when they start and how long they last, drawn once from a seed (every policy gets the same).

Arrivals are a non-homogeneous Poisson process (Lewis–Shedler thinning) with a diurnal rate curve — a quiet night, a
morning ramp, a flat working day, an evening peak — plus one short spike (a link shared somewhere). Durations are
lognormal (median ~3 min, long tail), capped. These shapes are assumptions: there is no public trace of talking-avatar
sessions, so the parameters are on the command line and printed with every result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Share of the peak rate by hour of day (linear in between, 24:00 = 0:00). Night near zero, a morning ramp to about
# half the peak, a working-day plateau, the evening peak at 20–21 h.
DIURNAL_SHAPE = (
    (0.0, 0.06), (3.0, 0.0), (6.0, 0.03), (9.0, 0.45), (12.0, 0.55), (14.0, 0.45),
    (17.0, 0.55), (20.0, 1.0), (21.0, 1.0), (23.0, 0.35), (24.0, 0.06),
)  # fmt: skip


@dataclass(frozen=True)
class Workload:
    """Parameters of the arrival process and of the conversation lengths."""

    start_hour: float = 0.0  # hour of day the simulated window starts at
    hours: float = 24.0  # length of the window in which sessions arrive
    peak_per_min: float = 5.0  # arrival rate at the evening peak (sessions/min)
    night_per_min: float = 0.1  # floor added to the curve (sessions/min)
    spike_at_hour: float = 13.0  # hour of day the spike starts
    spike_minutes: float = 10.0
    spike_per_min: float = 6.0  # extra arrivals/min during the spike
    median_s: float = 180.0  # median conversation length
    sigma: float = 1.0  # lognormal shape: p95 = median × e^(1.645σ) ≈ 5.2 × median at σ = 1
    cap_s: float = 3600.0  # longest conversation (the runtime's session limit)

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour < 24:
            raise ValueError("start_hour must be in [0, 24)")
        if self.hours <= 0:
            raise ValueError("hours must be positive")
        for name in ("peak_per_min", "night_per_min", "spike_per_min", "spike_minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.median_s <= 0 or self.sigma < 0 or self.cap_s <= 0:
            raise ValueError("median_s and cap_s must be positive, sigma >= 0")

    @property
    def duration_s(self) -> float:
        return self.hours * 3600.0

    def rate_per_s(self, t: float) -> float:
        """Arrival rate at simulated second `t` (0 = `start_hour`)."""
        hour = (self.start_hour + t / 3600.0) % 24.0
        hours = [h for h, _ in DIURNAL_SHAPE]
        shares = [s for _, s in DIURNAL_SHAPE]
        per_min = self.night_per_min + self.peak_per_min * float(np.interp(hour, hours, shares))
        spike_start = (self.spike_at_hour - self.start_hour) % 24.0 * 3600.0
        if spike_start <= t < spike_start + self.spike_minutes * 60.0:
            per_min += self.spike_per_min
        return per_min / 60.0

    def max_rate_per_s(self) -> float:
        return (self.night_per_min + self.peak_per_min + self.spike_per_min) / 60.0


@dataclass(frozen=True)
class Sessions:
    """What every policy is offered: arrival times (s, sorted), conversation lengths (s), and one uniform number per
    session for its client's retry jitter (drawn here so that all policies see the same randomness)."""

    arrival_s: np.ndarray
    length_s: np.ndarray
    jitter: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival_s)


def generate(workload: Workload, seed: int) -> Sessions:
    """Draw the sessions of `workload` from `seed` (same seed, same sessions, on every machine: numpy's PCG64)."""
    rng = np.random.default_rng(seed)
    lam_max = workload.max_rate_per_s()
    arrivals: list[float] = []
    t = 0.0
    if lam_max > 0:
        while True:
            t += float(rng.exponential(1.0 / lam_max))
            if t >= workload.duration_s:
                break
            if float(rng.random()) * lam_max < workload.rate_per_s(t):
                arrivals.append(t)
    n = len(arrivals)
    lengths = np.minimum(workload.median_s * np.exp(workload.sigma * rng.standard_normal(n)), workload.cap_s)
    return Sessions(np.asarray(arrivals, dtype=float), lengths, rng.random(n))
