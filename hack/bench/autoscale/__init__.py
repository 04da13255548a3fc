"""Deterministic autoscaling simulation of the runtime pool (issue [6]); `hack/bench/autoscale_sim.py` runs it."""
