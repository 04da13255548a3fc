"""LAM Audio2Expression, one module per concern: `network` (the architecture), `checkpoint` (published weights
↔ our keys, the hub archive), `postprocess` (pure numpy, streaming), `stream` (per-turn state). The engine that
ties them to the process-wide batcher is `engines/a2e_lam.py`. Nothing is imported here, so importing the
numpy-only parts does not pull in torch."""
