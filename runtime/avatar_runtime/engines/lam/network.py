"""The LAM Audio2Expression network (aigc3d/LAM_Audio2Expression, Apache-2.0), rebuilt for inference.

Module and parameter names match the published checkpoint exactly (see `checkpoint.py` for the two places
where the stored names differ), so the released weights load with `strict=True`. Every width is a parameter:
`LAMDims()` plus `wav2vec2_base_config()` is the released model, tests build a tiny one of the same shape.

Data flow for a batch of equal-length 16 kHz windows (raw, unnormalised samples, as the published inference
feeds them):

    wav2vec2 CNN (50 fps) → linear interpolation to 30 fps frames → wav2vec2 projection + transformer
    → Linear(768→512) → concat one-hot identity through Conv1d(12→64) → 3 conv blocks (first one residual
    through a conv) → 3 conv blocks → Linear(512→52) → sigmoid
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

SAMPLE_RATE = 16_000
FPS = 30


def frames_for(num_samples: int) -> int:
    """Frames the network emits for `num_samples` of audio: ceil(seconds * 30), in exact integer arithmetic.

    (The published code computes `ceil(n / 16000 * 30)` in floats, which overshoots by one frame for lengths
    such as 1600 samples; its streaming window of 34133 samples gives 64 frames either way.)
    """
    return -(-num_samples * FPS // SAMPLE_RATE)


@dataclass(frozen=True)
class LAMDims:
    """Head widths; the defaults are those of the released streaming checkpoint."""

    num_identity_classes: int = 12
    identity_feat_dim: int = 64
    hidden_dim: int = 512
    expression_dim: int = 52
    decoder_depth: int = 3


RELEASED_DIMS = LAMDims()


def wav2vec2_base_config(**overrides: object) -> Wav2Vec2Config:
    """The facebook/wav2vec2-base-960h architecture (transformers' defaults are exactly that model)."""
    return _inference_config(Wav2Vec2Config(**overrides))


def load_wav2vec2_config(path: str | Path) -> Wav2Vec2Config:
    """The encoder configuration from a wav2vec2 `config.json` (the weights themselves are in the LAM file)."""
    return _inference_config(Wav2Vec2Config.from_json_file(str(path)))


def _inference_config(config: Wav2Vec2Config) -> Wav2Vec2Config:
    # "eager" as published: the result equals SDPA's up to rounding, and it keeps outputs identical on
    # every device and batch size (SDPA may pick different kernels per shape).
    config._attn_implementation = "eager"
    return config


class LAMAudioEncoder(Wav2Vec2Model):
    """wav2vec2 with LAM's frame-rate change: CNN features are resampled to the 30 fps output frames before
    the transformer, so attention runs over exactly the frames the head predicts."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        # Unused by LAM, but the checkpoint stores it (with this fixed shape, whatever the hidden size).
        self.lm_head = nn.Linear(1024, 32)

    def encode(self, audio: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, samples) → (B, num_frames, hidden_size)."""
        features = self.feature_extractor(audio)  # (B, C, L) at 50 fps
        features = F.interpolate(features, size=num_frames, mode="linear", align_corners=True)
        hidden, _ = self.feature_projection(features.transpose(1, 2))
        return self.encoder(hidden).last_hidden_state


class ConvNormRelu(nn.Module):
    """Conv1d(k=3) → LayerNorm over channels → (+ residual) → ReLU, on (B, C, T)."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm = nn.LayerNorm(out_channels)
        if residual:  # a projection only where the width changes (published: Identity otherwise)
            self.residual_layer: nn.Module = (
                nn.Identity()
                if in_channels == out_channels
                else nn.Sequential(nn.Conv1d(in_channels, out_channels, kernel_size=3, stride=1, padding=1))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        if self.residual:
            out = out + self.residual_layer(x)
        return torch.relu(out)


class SeqTranslator1D(nn.Module):
    """A stack of residual ConvNormRelu blocks, (B, C_in, T) → (B, C_out, T)."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int = 3) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_layers
        self.conv_layers = nn.Sequential(
            *(ConvNormRelu(widths[i], widths[i + 1], residual=True) for i in range(num_layers))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_layers(x)


class AudioIdentityEncoder(nn.Module):
    """Speaker-style conditioning: a one-hot identity, embedded per frame and concatenated to the audio."""

    def __init__(self, hidden_dim: int, num_identity_classes: int, identity_feat_dim: int) -> None:
        super().__init__()
        self.num_identity_classes = num_identity_classes
        self.id_mlp = nn.Conv1d(num_identity_classes, identity_feat_dim, kernel_size=1)
        self.first_net = SeqTranslator1D(hidden_dim + identity_feat_dim, hidden_dim)
        # Trained-then-unused recurrent layer: present in the checkpoint, never called.
        self.grus = nn.GRU(hidden_dim, hidden_dim, 1, batch_first=True)
        self.dropout = nn.Dropout(0.1)

    def forward(self, audio_features: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """audio_features (B, hidden, T), identity (B,) class indices → (B, hidden, T)."""
        one_hot = F.one_hot(identity, self.num_identity_classes).to(audio_features.dtype)
        ident = self.id_mlp(one_hot[:, :, None].expand(-1, -1, audio_features.shape[2]))
        return self.first_net(torch.cat([self.dropout(audio_features), ident], dim=1))


class Audio2Expression(nn.Module):
    """The backbone of the published `DefaultEstimator` (its checkpoint keys carry a `backbone.` prefix)."""

    def __init__(self, encoder_config: Wav2Vec2Config, dims: LAMDims = RELEASED_DIMS) -> None:
        super().__init__()
        self.dims = dims
        self.audio_encoder = LAMAudioEncoder(encoder_config)
        self.feature_projection = nn.Linear(encoder_config.hidden_size, dims.hidden_dim)
        self.identity_encoder = AudioIdentityEncoder(dims.hidden_dim, dims.num_identity_classes, dims.identity_feat_dim)
        self.decoder = nn.ModuleList(
            [nn.Sequential(*(ConvNormRelu(dims.hidden_dim, dims.hidden_dim) for _ in range(dims.decoder_depth)))]
        )
        self.output_proj = nn.Linear(dims.hidden_dim, dims.expression_dim)
        self.eval()  # inference only: dropout and layer drop stay off

    def forward(self, audio: torch.Tensor, identity: torch.Tensor | int = 0) -> torch.Tensor:
        """audio (B, samples) at 16 kHz, identity (B,) or one int → (B, frames_for(samples), 52) in 0..1."""
        if isinstance(identity, int):
            identity = torch.full((audio.shape[0],), identity, dtype=torch.long, device=audio.device)
        hidden = self.audio_encoder.encode(audio, frames_for(audio.shape[1]))
        features = self.feature_projection(hidden).transpose(1, 2)  # (B, hidden_dim, T)
        features = self.decoder[0](self.identity_encoder(features, identity))
        return torch.sigmoid(self.output_proj(features.transpose(1, 2)))
