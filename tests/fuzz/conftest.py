"""Hypothesis profiles: `ci` (default, a few hundred inputs per parser, ~1 min in all) and `long` (the run quoted in
docs/security.md): `HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/fuzz -q --hypothesis-show-statistics`."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
