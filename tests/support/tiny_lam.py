"""Tiny random LAM Audio2Expression networks and model caches in the released layout, for tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import torch
from avatar_runtime.engines.lam.checkpoint import ARCHIVE_NAME, CHECKPOINT_MEMBER, published_key_layout
from avatar_runtime.engines.lam.network import Audio2Expression, LAMDims, wav2vec2_base_config

# A wav2vec2 encoder small enough for 2 cores, same architecture as wav2vec2-base otherwise.
TINY_ENCODER = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
)  # fmt: skip
TINY_DIMS = LAMDims(hidden_dim=32, identity_feat_dim=8)


def tiny_network(seed: int = 0, dims: LAMDims = TINY_DIMS, cls: type[Audio2Expression] = Audio2Expression):
    torch.manual_seed(seed)
    return cls(wav2vec2_base_config(**TINY_ENCODER), dims)


def gzip_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_lam_cache(model_dir: Path, network: Audio2Expression) -> None:
    """A model cache as `models pull` leaves it: the encoder's config.json and the hub's gzip tar (checkpoint)."""
    (model_dir / "wav2vec2-base-960h").mkdir(parents=True)
    network.audio_encoder.config.to_json_file(str(model_dir / "wav2vec2-base-960h" / "config.json"))
    buffer = io.BytesIO()
    torch.save({"state_dict": published_key_layout(network)}, buffer)
    (model_dir / "lam-audio2exp").mkdir()
    gzip_tar(
        model_dir / "lam-audio2exp" / ARCHIVE_NAME, {"pretrained_models/": b"", CHECKPOINT_MEMBER: buffer.getvalue()}
    )
