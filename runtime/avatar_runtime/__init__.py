"""Gaussian Avatar runtime: the server side of a real-time talking avatar."""

__version__ = "0.1.0"
