"""Voice-to-voice latency: our runtime over WebRTC vs. an OpenAvatarChat-style baseline (../voice_to_voice.py)."""
