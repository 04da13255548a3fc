"""`avatar-runtime serve` as a user runs it: HTTPS with a self-signed certificate made on first run."""

from __future__ import annotations

import ssl
import time

import httpx

from tests.support.serve_process import start_serve


def test_serve_generates_a_certificate_and_serves_https(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"tls:\n  self_signed_dir: {tmp_path / 'certs'}\nserver:\n  auth_token: s3cret\n")
    process, url = start_serve(config, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(url + "/readyz", verify=False, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "runtime did not become ready"
            time.sleep(0.3)
        cert = (tmp_path / "certs" / "selfsigned.crt").read_text()
        assert "BEGIN CERTIFICATE" in cert
        # The served certificate is the generated one, valid for localhost/127.0.0.1.
        context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "selfsigned.crt"))
        with httpx.Client(verify=context) as client:
            page = client.get(url + "/")
            assert page.status_code == 200 and "<html" in page.text
            config_json = client.get(url + "/api/config").json()
            assert config_json["llm"]["embedded"] is True and config_json["authRequired"] is True
            assert config_json["languages"] == {"asr": ["en"], "tts": ["en"], "conversation": ["en"]}
            refused = client.post(url + "/api/sessions", json={"sdp": "v=0", "type": "offer"})
            assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
            wrong = client.post(
                url + "/api/sessions", json={"sdp": "v=0", "type": "offer"}, headers={"Authorization": "Bearer no"}
            )
            assert wrong.status_code == 401
            authorised = client.post(
                url + "/api/sessions", json={"sdp": "v=0", "type": "offer"}, headers={"Authorization": "Bearer s3cret"}
            )
            assert authorised.status_code == 400  # past auth: now the (bad) SDP is what is wrong
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    # SIGTERM drains (no session is live, so at once) and exits 0: see tests/e2e/test_drain.py.
    assert process.returncode == 0
    assert "Application shutdown complete" in output
    assert "embedded offline responder" in output  # the log says plainly which LLM answers
    assert f"serving on {url}" in output
