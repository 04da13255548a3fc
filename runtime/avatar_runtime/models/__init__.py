"""The production model cache (DESIGN §2): what `avatar-runtime models pull|verify` fetches and `serve` loads."""
