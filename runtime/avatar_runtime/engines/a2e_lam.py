"""LAM Audio2Expression engine (aigc3d/LAM_Audio2Expression): wav2vec2 + conv head → ARKit-52 at 30 fps.

One network per process, shared by every session through one `DynamicBatcher` worker: each session's stream
submits a 64-frame audio window per ≤ 200 ms slice and the worker runs the windows of all sessions together.
Files come from the model cache (`avatar-runtime models pull`):

    <model_dir>/lam-audio2exp/LAM_audio2exp_streaming.tar   hub archive (extracted on first load if needed)
    <model_dir>/wav2vec2-base-960h/config.json              encoder architecture (its weights are in LAM's file)
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import numpy as np
import torch

from avatar_runtime.engines.base import EngineUnavailable
from avatar_runtime.engines.batching import DynamicBatcher
from avatar_runtime.engines.lam.checkpoint import ARCHIVE_NAME, checkpoint_path, load_checkpoint
from avatar_runtime.engines.lam.network import (
    RELEASED_DIMS,
    Audio2Expression,
    LAMDims,
    frames_for,
    load_wav2vec2_config,
)
from avatar_runtime.engines.lam.stream import LAMExpressionStream, WindowRequest, frame_start
from avatar_runtime.models.cache import ModelMissing, model_path, require_files
from avatar_runtime.protocol import EXPRESSION_FPS

log = logging.getLogger(__name__)

LAM_MODEL = "lam-audio2exp"
ENCODER_MODEL = "wav2vec2-base-960h"
MAX_SLICE_MS = 200  # the pipeline releases audio with its frames, so a slice bounds the added latency


def load_network(
    model_dir: str | Path, dims: LAMDims = RELEASED_DIMS, *, model: str = LAM_MODEL, encoder: str = ENCODER_MODEL
) -> Audio2Expression:
    """The released network from the model cache, weights loaded strictly; ModelMissing names what is absent.

    `dims` are the head widths (the released ones by default; the encoder's come from its config.json);
    `model`/`encoder` are the cache names of the checkpoint and of the wav2vec2 config."""
    lam_dir = model_path(model_dir, model)
    checkpoint = checkpoint_path(lam_dir)
    try:
        encoder_dir = require_files(model_dir, encoder, ["config.json"])
    except ModelMissing as missing:
        if checkpoint is None:  # name both, so one `models pull` (and one readiness message) covers everything
            raise EngineUnavailable(f"{missing} | {ModelMissing(model, lam_dir, [ARCHIVE_NAME])}") from None
        raise
    if checkpoint is None:
        raise ModelMissing(model, lam_dir, [ARCHIVE_NAME])
    network = Audio2Expression(load_wav2vec2_config(encoder_dir / "config.json"), dims)
    load_checkpoint(network, checkpoint)
    return network


class LAMExpressionEngine:
    """`ExpressionEngine` running LAM; `stream()` hands out per-turn `LAMExpressionStream`s.

    `context_frames`: frames of audio the network sees per call, the slice included (published: 64).
    `network`: an already built network (tests inject a tiny random one); otherwise loaded from `model_dir`.
    `seed` fixes blink timing (every stream then blinks identically); None = random per stream.
    """

    name = "lam"
    fps = EXPRESSION_FPS

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        model: str = LAM_MODEL,
        encoder: str = ENCODER_MODEL,
        device: str = "auto",
        identity: int = 0,
        slice_ms: float = MAX_SLICE_MS,
        context_frames: int = 64,
        max_batch: int = 16,
        max_wait_ms: float = 4.0,
        seed: int | None = None,
        network: Audio2Expression | None = None,
    ) -> None:
        self._slice = int(slice_ms * EXPRESSION_FPS // 1000)
        if not 1 <= self._slice <= MAX_SLICE_MS * EXPRESSION_FPS // 1000:
            raise ValueError(f"slice_ms must be between {1000 / EXPRESSION_FPS:.1f} and {MAX_SLICE_MS}, got {slice_ms}")
        if context_frames <= self._slice:
            raise ValueError(f"context_frames ({context_frames}) must exceed the slice ({self._slice} frames)")
        self.max_push_s = self._slice / EXPRESSION_FPS
        self._window = int(frame_start(context_frames))  # 34133 samples for 64 frames, as published
        if network is None:
            if model_dir is None:
                raise EngineUnavailable("the LAM engine needs model_dir (the model cache) or a network")
            network = load_network(model_dir, model=model, encoder=encoder)
        if not 0 <= identity < network.dims.num_identity_classes:
            raise ValueError(f"identity must be in 0..{network.dims.num_identity_classes - 1}, got {identity}")
        self._identity, self._seed = identity, seed
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        # fp16 halves the work on a GPU; sigmoid outputs in 0..1 lose nothing visible at 1e-3 precision.
        self._dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self._network = network.eval().to(self.device, self._dtype)
        self._batcher: DynamicBatcher[WindowRequest, np.ndarray] = DynamicBatcher(
            self._run_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="lam-a2e",
            worker_context=torch.inference_mode,
        )  # fmt: skip
        self.warmup()
        log.info(
            "A2E: LAM on %s (%s), %d-frame slices, %d-frame windows, batches up to %d",
            self.device, self._dtype, self._slice, context_frames, max_batch,
        )  # fmt: skip

    def stream(self) -> LAMExpressionStream:
        seed = self._seed if self._seed is not None else secrets.randbits(32)
        return LAMExpressionStream(
            self._batcher.submit, slice_frames=self._slice, window_samples=self._window, identity=self._identity,
            seed=seed,
        )  # fmt: skip

    def warmup(self) -> None:
        """One forward pass now, so the first turn does not pay for lazy initialisation (kernels, caches)."""
        with torch.inference_mode():
            self._run_batch([WindowRequest(np.zeros(self._window, np.float32), self._slice, self._identity)])

    def close(self) -> None:
        self._batcher.close()

    @property
    def batch_sizes(self) -> dict[int, int]:
        """How many batches of each size the worker ran so far."""
        return dict(self._batcher.batch_sizes)

    def _run_batch(self, requests: list[WindowRequest]) -> list[np.ndarray]:
        """Worker thread: all windows (equal length by construction) through the network at once."""
        audio = torch.from_numpy(np.stack([r.audio for r in requests])).to(self.device, self._dtype)
        identity = torch.tensor([r.identity for r in requests], dtype=torch.long, device=self.device)
        out = self._network(audio, identity).float().cpu().numpy()
        n = frames_for(audio.shape[1])
        return [out[i, n - r.take - 1 :].copy() for i, r in enumerate(requests)]
