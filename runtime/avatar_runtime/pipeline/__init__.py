"""The per-session conversation pipeline: typed events between small stages."""
