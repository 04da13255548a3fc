"""The browser client's pure modules (web/src/protocol.js, sync.js, chatstate.js, avatar/clips.js against the LAM
renderer's own animation code) and the offer retry of web/src/session.js (against a node:http server on loopback)
under Node's built-in test runner."""

from __future__ import annotations

import subprocess

from tests.web.browser import REPO, WEB_TESTS, require_browser


def test_node_unit_tests_pass():
    require_browser()
    done = subprocess.run(["node", "--test", str(WEB_TESTS / "unit")], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    summary = "\n".join(line for line in done.stdout.splitlines() if line.startswith(("# pass", "# fail", "not ok")))
    assert done.returncode == 0, f"node --test failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout, summary
