"""Engines: one module per provider, each behind an interface of `base.py`."""
