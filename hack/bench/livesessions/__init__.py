"""Shared by the concurrency and bandwidth benchmarks: `avatar-runtime serve` as a separate process (server.py),
real aiortc peers holding spoken conversations with it (driver.py), and the JSON/markdown output of bench.md
(report.py)."""
