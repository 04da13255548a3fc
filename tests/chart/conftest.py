"""Fixtures of the chart tests: the operator tests' API emulator (test_rbac.py and test_hook.py run the real
operator against it, started the way the chart's Deployment starts it)."""

from tests.operator.conftest import api, kmock_options  # noqa: F401  (pytest fixtures, used by name)
