"""WebRTC edge: peer connections, the paced reply track, the microphone reader, Opus settings."""
