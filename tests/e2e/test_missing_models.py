"""`serve` with production engines configured but an empty model cache: it says exactly what is missing."""

from __future__ import annotations

import time

import httpx

from tests.support.serve_process import start_serve


def test_readyz_names_every_missing_model_file(tmp_path):
    models = tmp_path / "models"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model_dir: {models}\nasr:\n  engine: sensevoice\n  language: auto\na2e:\n  engine: lam\n"
        "tts:\n  engine: espeak\n"
    )
    process, url = start_serve(config, tmp_path, tls=False)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                ready = httpx.get(url + "/readyz", timeout=2)
                if ready.status_code == 503 and "loading" not in ready.json()["message"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "runtime never reported its load failure"
            time.sleep(0.3)
        message = ready.json()["message"]
        # Both production models are named, with their files, and the fix.
        assert str(models / "sensevoice-small" / "model.pt") in message
        assert str(models / "lam-audio2exp") in message and str(models / "wav2vec2-base-960h") in message
        assert "avatar-runtime models pull" in message
        assert httpx.get(url + "/healthz").status_code == 200  # alive, just not ready
        refused = httpx.post(url + "/api/sessions", json={"sdp": "v=0\r\nm=audio\r\nm=application", "type": "offer"})
        assert refused.status_code == 503 and refused.json()["error"] == "not_ready"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "models failed to load" in output and "sensevoice-small" in output
