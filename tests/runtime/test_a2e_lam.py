"""LAM Audio2Expression engine (`engines/a2e_lam.py`, `engines/lam/`) on tiny random networks of the same
architecture: the production code paths (feature interpolation, checkpoint layout, streaming windows, batching,
post-processing) without the 400 MB download."""

from __future__ import annotations

import asyncio
import io
import json
import math
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from avatar_runtime.engines.a2e_lam import LAMExpressionEngine, load_network
from avatar_runtime.engines.base import EngineUnavailable, ExpressionEngine, ExpressionStream, SpeechChunk
from avatar_runtime.engines.lam import postprocess as pp
from avatar_runtime.engines.lam.checkpoint import (
    ARCHIVE_NAME,
    CHECKPOINT_MEMBER,
    CheckpointMismatch,
    checkpoint_path,
    load_checkpoint,
    published_key_layout,
)
from avatar_runtime.engines.lam.network import (
    Audio2Expression,
    LAMDims,
    frames_for,
    load_wav2vec2_config,
    wav2vec2_base_config,
)
from avatar_runtime.models.cache import ModelMissing
from avatar_runtime.protocol import INDEX, NUM_BLENDSHAPES
from scipy.signal import savgol_filter

from tests.support.tiny_lam import TINY_DIMS, TINY_ENCODER, tiny_network, write_lam_cache

JAW = INDEX["jawOpen"]
NOT_BLINK = np.setdiff1d(np.arange(NUM_BLENDSHAPES), pp.BLINK)


@pytest.fixture(scope="module")
def network() -> Audio2Expression:
    return tiny_network()


@pytest.fixture
def engine(network: Audio2Expression):
    engine = LAMExpressionEngine(network=network, device="cpu", seed=7, max_wait_ms=2)
    yield engine
    engine.close()


def speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts: a voiced tone with harmonics and noise, amplitude-modulated at ~4 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    voiced = sum(np.sin(2 * np.pi * h * np.cumsum(pitch) / rate) / h for h in (1, 2, 3, 5))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return (0.2 * envelope * (voiced + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


async def run(engine: LAMExpressionEngine, samples: np.ndarray, rate: int, size: int | list[int] | None) -> np.ndarray:
    """Push `samples` in chunks of `size` (cycled; None = one chunk), then flush; (frames, 52)."""
    stream = engine.stream()
    sizes = [len(samples) or 1] if size is None else size if isinstance(size, list) else [size]
    frames, pos, i = [], 0, 0
    while pos < len(samples):
        frames += await stream.push(SpeechChunk(samples[pos : pos + sizes[i % len(sizes)]], rate))
        pos, i = pos + sizes[i % len(sizes)], i + 1
    frames += await stream.flush()
    return np.array(frames).reshape(-1, NUM_BLENDSHAPES)


# -- network ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [400, 533, 1600, 5000, 16000, 34133])
def test_network_emits_ceil_of_duration_times_30_frames(network: Audio2Expression, n: int) -> None:
    assert frames_for(n) == math.ceil(Fraction(n * 30, 16000))
    with torch.inference_mode():
        out = network(torch.randn(2, n) * 0.1, torch.tensor([0, 3]))
    assert out.shape == (2, frames_for(n), 52)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid output


def test_cnn_features_are_linearly_interpolated_to_the_frames(network: Audio2Expression) -> None:
    """The transformer sees the 50 fps CNN features resampled to 30 fps, ends aligned (align_corners)."""
    seen = {}
    hook = network.audio_encoder.feature_projection.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    audio = torch.randn(1, 34133) * 0.1
    try:
        with torch.inference_mode():
            network(audio)
            cnn = network.audio_encoder.feature_extractor(audio)[0].T  # (L, C) at 50 fps
    finally:
        hook.remove()
    frames = seen["x"][0]  # (N, C)
    n, length = frames.shape[0], cnn.shape[0]
    assert (n, length) == (64, 106)  # 2.13 s: 106 CNN steps of 20 ms → 64 frames of 33 ms
    for i in (0, 1, 17, 40, n - 1):
        pos = i * (length - 1) / (n - 1)
        lo, w = int(pos), pos - int(pos)
        expected = cnn[lo] * (1 - w) + cnn[min(lo + 1, length - 1)] * w
        torch.testing.assert_close(frames[i], expected, atol=1e-5, rtol=1e-4)


def test_identity_conditions_the_output(network: Audio2Expression) -> None:
    audio = torch.randn(1, 34133) * 0.1
    with torch.inference_mode():
        a, b = network(audio, 0), network(audio, 5)
    assert not torch.allclose(a, b)


# -- checkpoint ------------------------------------------------------------------------------------------
def published_shapes_of_the_released_model() -> dict[str, tuple[int, ...]]:
    """The released checkpoint's keys and shapes, written out from the published architecture."""
    enc, hid, ffn = 768, 512, 3072
    keys: dict[str, tuple[int, ...]] = {}
    a = "audio_encoder."
    for i, k in enumerate([10, 3, 3, 3, 3, 2, 2]):
        keys[f"{a}feature_extractor.conv_layers.{i}.conv.weight"] = (512, 1 if i == 0 else 512, k)
    keys[f"{a}feature_extractor.conv_layers.0.layer_norm.weight"] = (512,)
    keys[f"{a}feature_extractor.conv_layers.0.layer_norm.bias"] = (512,)
    keys[f"{a}feature_projection.layer_norm.weight"] = keys[f"{a}feature_projection.layer_norm.bias"] = (512,)
    keys[f"{a}feature_projection.projection.weight"], keys[f"{a}feature_projection.projection.bias"] = (
        (enc, 512),
        (enc,),
    )
    keys[f"{a}masked_spec_embed"] = (enc,)
    keys[f"{a}encoder.pos_conv_embed.conv.weight_g"] = (1, 1, 128)
    keys[f"{a}encoder.pos_conv_embed.conv.weight_v"] = (enc, 48, 128)
    keys[f"{a}encoder.pos_conv_embed.conv.bias"] = (enc,)
    keys[f"{a}encoder.layer_norm.weight"] = keys[f"{a}encoder.layer_norm.bias"] = (enc,)
    for i in range(12):
        layer = f"{a}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys[f"{layer}attention.{proj}.weight"], keys[f"{layer}attention.{proj}.bias"] = (enc, enc), (enc,)
        for norm in ("layer_norm", "final_layer_norm"):
            keys[f"{layer}{norm}.weight"] = keys[f"{layer}{norm}.bias"] = (enc,)
        keys[f"{layer}feed_forward.intermediate_dense.weight"] = (ffn, enc)
        keys[f"{layer}feed_forward.intermediate_dense.bias"] = (ffn,)
        keys[f"{layer}feed_forward.output_dense.weight"] = (enc, ffn)
        keys[f"{layer}feed_forward.output_dense.bias"] = (enc,)
    keys[f"{a}lm_head.weight"], keys[f"{a}lm_head.bias"] = (32, 1024), (32,)
    keys["feature_projection.weight"], keys["feature_projection.bias"] = (hid, enc), (hid,)
    keys["identity_encoder.id_mlp.weight"], keys["identity_encoder.id_mlp.bias"] = (64, 12, 1), (64,)
    for i in range(3):
        block = f"identity_encoder.first_net.conv_layers.{i}."
        keys[f"{block}conv.weight"], keys[f"{block}conv.bias"] = (hid, 576 if i == 0 else hid, 3), (hid,)
        keys[f"{block}norm.weight"] = keys[f"{block}norm.bias"] = (hid,)
        keys[f"decoder.0.{i}.conv.weight"], keys[f"decoder.0.{i}.conv.bias"] = (hid, hid, 3), (hid,)
        keys[f"decoder.0.{i}.norm.weight"] = keys[f"decoder.0.{i}.norm.bias"] = (hid,)
    keys["identity_encoder.first_net.conv_layers.0.residual_layer.0.weight"] = (hid, 576, 3)
    keys["identity_encoder.first_net.conv_layers.0.residual_layer.0.bias"] = (hid,)
    for kind in ("weight_ih_l0", "weight_hh_l0"):
        keys[f"identity_encoder.grus.{kind}"] = (3 * hid, hid)
    for kind in ("bias_ih_l0", "bias_hh_l0"):
        keys[f"identity_encoder.grus.{kind}"] = (3 * hid,)
    keys["output_proj.weight"], keys["output_proj.bias"] = (52, hid), (52,)
    return {"module.backbone." + k: v for k, v in keys.items()}


# facebook/wav2vec2-base-960h config.json as published (the file `models pull` fetches; an old transformers
# version wrote it, with keys the current one no longer uses).
BASE_960H_CONFIG = {
    "activation_dropout": 0.1, "apply_spec_augment": True, "architectures": ["Wav2Vec2ForCTC"],
    "attention_dropout": 0.1, "bos_token_id": 1, "codevector_dim": 256, "contrastive_logits_temperature": 0.1,
    "conv_bias": False, "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "ctc_loss_reduction": "sum", "ctc_zero_infinity": False,
    "diversity_loss_weight": 0.1, "do_stable_layer_norm": False,
    "eos_token_id": 2, "feat_extract_activation": "gelu", "feat_extract_dropout": 0.0, "feat_extract_norm": "group",
    "feat_proj_dropout": 0.1, "feat_quantizer_dropout": 0.0, "final_dropout": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout": 0.1, "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "layerdrop": 0.1,
    "mask_feature_length": 10, "mask_feature_prob": 0.0, "mask_time_length": 10, "mask_time_prob": 0.05,
    "model_type": "wav2vec2", "num_attention_heads": 12, "num_codevector_groups": 2, "num_codevectors_per_group": 320,
    "num_conv_pos_embedding_groups": 16, "num_conv_pos_embeddings": 128, "num_feat_extract_layers": 7,
    "num_hidden_layers": 12, "num_negatives": 100, "pad_token_id": 0, "proj_codevector_dim": 256,
    "transformers_version": "4.7.0.dev0", "vocab_size": 32,
}  # fmt: skip


@pytest.mark.parametrize("source", ["defaults", "config.json"])
def test_real_size_architecture_has_the_published_keys_and_shapes(tmp_path: Path, source: str) -> None:
    if source == "defaults":
        config = wav2vec2_base_config()
    else:
        (tmp_path / "config.json").write_text(json.dumps(BASE_960H_CONFIG))
        config = load_wav2vec2_config(tmp_path / "config.json")
    assert config._attn_implementation == "eager"
    with torch.device("meta"):  # no memory: shapes only
        network = Audio2Expression(config)
    layout = {k: tuple(v.shape) for k, v in published_key_layout(network).items()}
    expected = published_shapes_of_the_released_model()
    assert sorted(set(expected) - set(layout)) == [] and sorted(set(layout) - set(expected)) == []
    assert layout == expected
    assert sum(math.prod(s) for s in expected.values()) > 100_000_000  # ~102 M parameters, as released


def save_published(network: Audio2Expression, path: Path, prefix: str = "module.backbone.") -> None:
    torch.save({"state_dict": published_key_layout(network, prefix), "epoch": 100}, path)


@pytest.mark.parametrize("prefix", ["module.backbone.", "backbone.", ""])
def test_checkpoint_round_trip_in_the_published_layout(tmp_path: Path, prefix: str) -> None:
    source, fresh = tiny_network(1), tiny_network(2)
    path = tmp_path / "lam.tar"
    save_published(source, path, prefix)
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert f"{prefix}audio_encoder.encoder.pos_conv_embed.conv.weight_g" in stored
    assert not any("parametrizations" in k for k in stored)
    audio = torch.randn(2, 34133) * 0.1
    with torch.inference_mode():
        assert not torch.equal(source(audio), fresh(audio))
        load_checkpoint(fresh, path)
        assert torch.equal(source(audio), fresh(audio))


def test_checkpoint_mismatch_names_the_keys(tmp_path: Path) -> None:
    state = published_key_layout(tiny_network())
    del state["module.backbone.output_proj.bias"]
    state["module.backbone.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.tar")
    with pytest.raises(CheckpointMismatch, match=r"missing \(1\): output_proj.bias.*unexpected \(1\): extra.weight"):
        load_checkpoint(tiny_network(), tmp_path / "bad.tar")
    with pytest.raises(CheckpointMismatch, match="shape"):  # the released head on a tiny checkpoint
        load_checkpoint(Audio2Expression(wav2vec2_base_config(**TINY_ENCODER)), tmp_path / "bad.tar")


def test_loads_from_the_model_cache_archive(tmp_path: Path) -> None:
    source = tiny_network(3)
    write_lam_cache(tmp_path, source)
    loaded = load_network(tmp_path, TINY_DIMS)
    assert (tmp_path / "lam-audio2exp" / CHECKPOINT_MEMBER).is_file()  # extracted beside the archive
    assert sorted(p.name for p in (tmp_path / "lam-audio2exp" / "pretrained_models").iterdir()) == [
        "lam_audio2exp_streaming.tar"
    ]
    (tmp_path / "lam-audio2exp" / ARCHIVE_NAME).unlink()  # the extracted file alone is enough later
    again = load_network(tmp_path, TINY_DIMS)
    audio = torch.randn(1, 34133) * 0.1
    with torch.inference_mode():
        assert torch.equal(source(audio), loaded(audio)) and torch.equal(source(audio), again(audio))


def test_archive_extraction_writes_only_the_checkpoint_inside_the_directory(tmp_path: Path) -> None:
    lam = tmp_path / "cache" / "lam-audio2exp"
    lam.mkdir(parents=True)
    with tarfile.open(lam / ARCHIVE_NAME, "w:gz") as tar:
        for name in ("../escaped", "/abs"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo(CHECKPOINT_MEMBER)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(CheckpointMismatch, match="regular file"):
        checkpoint_path(lam)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["cache", "cache/lam-audio2exp", f"cache/lam-audio2exp/{ARCHIVE_NAME}"]


def test_empty_cache_raises_model_missing_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as missing:  # both models missing: both named in one message
        LAMExpressionEngine(tmp_path, device="cpu")
    assert "wav2vec2-base-960h/config.json" in str(missing.value) and "models pull" in str(missing.value)
    assert f"lam-audio2exp/{ARCHIVE_NAME}" in str(missing.value)
    (tmp_path / "wav2vec2-base-960h").mkdir()
    wav2vec2_base_config().to_json_file(str(tmp_path / "wav2vec2-base-960h" / "config.json"))
    with pytest.raises(ModelMissing, match=f"lam-audio2exp/{ARCHIVE_NAME}"):
        LAMExpressionEngine(tmp_path, device="cpu")


# -- streaming -------------------------------------------------------------------------------------------
def test_engine_implements_the_protocols(engine: LAMExpressionEngine) -> None:
    assert isinstance(engine, ExpressionEngine) and isinstance(engine.stream(), ExpressionStream)
    assert engine.name == "lam" and engine.fps == 30 and engine.max_push_s == pytest.approx(0.2)
    with pytest.raises(ValueError, match="slice_ms"):
        LAMExpressionEngine(network=tiny_network(), device="cpu", slice_ms=250)


@pytest.mark.parametrize("rate", [16000, 22050, 24000])
async def test_frames_are_released_with_every_slice(
    engine: LAMExpressionEngine, network: Audio2Expression, rate: int
) -> None:
    stream = engine.stream()
    audio = speechlike(1.0, rate)
    step = rate // 5  # 200 ms pushes, as the pipeline slices TTS audio to max_push_s
    counts = [len(await stream.push(SpeechChunk(audio[i : i + step], rate))) for i in range(0, len(audio), step)]
    assert counts == [6] * 5
    assert await stream.flush() == []

    small = LAMExpressionEngine(network=network, device="cpu", slice_ms=100, seed=1)
    try:
        stream = small.stream()
        counts = [
            len(await stream.push(SpeechChunk(audio[i : i + step // 2], rate))) for i in range(0, rate, step // 2)
        ]
        assert counts == [3] * 10 and small.max_push_s == pytest.approx(0.1)
    finally:
        small.close()


@pytest.mark.parametrize(
    ("n", "rate"), [(0, 16000), (1, 16000), (533, 16000), (3201, 16000), (37000, 24000), (22051, 22050)]
)
async def test_total_frames_after_flush_is_ceil_duration_times_30(
    engine: LAMExpressionEngine, n: int, rate: int
) -> None:
    audio = speechlike(n / rate + 0.01, rate)[:n]
    for size in (None, 1000, [7, 3333]):
        frames = await run(engine, audio, rate, size)
        assert len(frames) == math.ceil(Fraction(n * 30, rate))
        assert np.isfinite(frames).all() and np.all((frames >= 0.0) & (frames <= 1.0))


async def test_chunking_does_not_change_the_frames(engine: LAMExpressionEngine) -> None:
    audio = speechlike(2.3, 24000, seed=1)
    whole = await run(engine, audio, 24000, None)
    for size in (4800, 1001, [1, 7000, 333]):
        np.testing.assert_allclose(await run(engine, audio, 24000, size), whole, atol=1e-5)


async def test_concurrent_sessions_are_batched_and_match_one_by_one(engine: LAMExpressionEngine) -> None:
    audios = [speechlike(1.6, 16000, seed=s) for s in range(6)]
    alone = [await run(engine, a, 16000, 3200) for a in audios]
    before = engine.batch_sizes
    together = await asyncio.gather(*(run(engine, a, 16000, 3200) for a in audios))
    grew = {size: n - before.get(size, 0) for size, n in engine.batch_sizes.items()}
    assert any(size > 1 and n > 0 for size, n in grew.items()), engine.batch_sizes
    for one, batched in zip(alone, together, strict=True):
        np.testing.assert_allclose(batched, one, atol=1e-5)
    assert not np.allclose(alone[0][:, NOT_BLINK], alone[1][:, NOT_BLINK], atol=1e-3)  # sessions differ


async def test_silence_closes_the_mouth_at_the_right_frames(engine: LAMExpressionEngine) -> None:
    """Speech at [1.0, 1.5) s in 2.5 s of silence, at 24 kHz: frame k is audio [k/30, (k+1)/30)."""
    audio = np.zeros(60000, np.float32)
    audio[24000:36000] = speechlike(0.5, 24000, seed=2)[:12000] + 0.05  # offset: no silent dip in the burst
    frames = await run(engine, audio, 24000, 4800)
    mouth = frames[:, pp.MOUTH]
    moving = np.flatnonzero(mouth.max(axis=1) > 1e-4)
    assert moving[0] == 30  # the burst starts at 1.0 s: frame 30
    assert 45 + pp.HOLD_FRAMES <= moving[-1] <= 45 + pp.HOLD_FRAMES + pp.RELEASE_FRAMES + 2
    assert mouth[:30].max() == 0.0 and mouth[56:].max() == 0.0  # closed in the silences
    assert frames[31:45, JAW].mean() > 0.05  # and not closed while speaking


def boundary_ratio(frames: np.ndarray, slice_frames: int = 6, skip: int = 6) -> float:
    """Mean frame-to-frame change across slice boundaries over the mean change inside slices."""
    steps = np.abs(np.diff(frames[:, NOT_BLINK], axis=0)).mean(axis=1)[skip:]  # steps[j]: frame j+skip → j+skip+1
    k = np.arange(skip + 1, len(frames))
    return float(steps[k % slice_frames == 0].mean() / steps[k % slice_frames != 0].mean())


async def test_no_jumps_at_slice_boundaries(engine: LAMExpressionEngine) -> None:
    for seed in (0, 3):
        frames = await run(engine, speechlike(4.0, 16000, seed=seed) + 0.05, 16000, 3200)
        assert boundary_ratio(frames) <= 2.0


class OffsetPerWindow(torch.nn.Module):
    """A stand-in network with the failure the boundary blend exists for: each window's output carries its
    own offset (here the window's mean level) on top of the true trajectory (the audio level per frame)."""

    dims = LAMDims()

    def forward(self, audio: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        level = torch.nn.functional.adaptive_avg_pool1d(audio[:, None], frames_for(audio.shape[1]))[:, 0]
        return (level + audio.mean(dim=1, keepdim=True))[:, :, None].expand(-1, -1, 52).clamp(0, 1)


async def test_boundary_blend_hides_window_to_window_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    ramp = (0.1 + 0.1 * np.arange(48000) / 16000).astype(np.float32)  # a slowly rising level over 3 s
    engine = LAMExpressionEngine(network=OffsetPerWindow(), device="cpu", seed=1)
    try:
        blended = await run(engine, ramp, 16000, 3200)
        monkeypatch.setattr(pp, "BLEND_FRAMES", 0)
        unblended = await run(engine, ramp, 16000, 3200)
    finally:
        engine.close()
    assert boundary_ratio(unblended) > 2.0  # the offsets show as a step every slice…
    assert boundary_ratio(blended) < 1.2  # …and the blend removes them


# -- post-processing -------------------------------------------------------------------------------------
def random_walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + np.cumsum(rng.normal(0, 0.01, (n, NUM_BLENDSHAPES)), axis=0), 0, 1).astype(np.float32)


def process(raw: np.ndarray, volume: np.ndarray, sizes: list[int], seed: int = 5) -> np.ndarray:
    """Post-process a consistent trajectory slice by slice (the overlap frame is the raw frame before)."""
    state, out, f0, i = pp.PostState.start(seed), [], 0, 0
    while f0 < len(raw):
        f1 = min(len(raw), f0 + sizes[i % len(sizes)])
        overlap = raw[f0 - 1] if f0 else np.zeros(NUM_BLENDSHAPES, np.float32)
        frames, state = pp.postprocess(raw[f0:f1], overlap, volume[f0:f1], state)
        out.append(frames)
        f0, i = f1, i + 1
    return np.concatenate(out)


def test_postprocessing_does_not_depend_on_slice_sizes() -> None:
    raw, volume = random_walk(300), np.full(300, 0.1, np.float32)
    volume[100:140] = 0.0
    sixes = process(raw, volume, [6])
    for sizes in ([1], [3, 7, 1, 10], [30]):
        np.testing.assert_allclose(process(raw, volume, sizes), sixes, atol=1e-6)


def test_smoothing_is_savitzky_golay_with_the_future_mirrored() -> None:
    x = random_walk(40, seed=1)
    history = x[:0]
    smoothed = np.concatenate([pp.smooth(x[:7], history), pp.smooth(x[7:8], x[5:7]), pp.smooth(x[8:], x[6:8])])
    for k in (2, 7, 8, 20, 39):  # each frame: the published filter run on everything up to it
        np.testing.assert_allclose(smoothed[k], savgol_filter(x[: k + 1], 5, 2, axis=0, mode="mirror")[-1], atol=1e-6)
    np.testing.assert_allclose(smoothed[0], x[0], atol=1e-6)
    assert np.abs(np.diff(smoothed, 2, axis=0)).mean() < 0.8 * np.abs(np.diff(x, 2, axis=0)).mean()  # smoother


def test_boundary_blend_removes_the_jump_between_windows() -> None:
    previous = np.full(NUM_BLENDSHAPES, 0.3, np.float32)  # what the last slice ended on
    overlap = np.full(NUM_BLENDSHAPES, 0.6, np.float32)  # the new window's view of that same frame
    new = 0.6 + 0.01 * np.arange(1, 7, dtype=np.float32)[:, None] * np.ones(NUM_BLENDSHAPES, np.float32)
    out = pp.blend_boundary(new, overlap, previous)
    np.testing.assert_allclose(out[0] - previous, new[0] - overlap, atol=1e-6)  # its own step, not the jump
    np.testing.assert_allclose(out[pp.BLEND_FRAMES :], new[pp.BLEND_FRAMES :])  # then the network's own frames
    assert np.all(np.diff(out[:, 0]) < 0.15)  # the 0.3 offset is spread over the blend frames
    np.testing.assert_array_equal(pp.blend_boundary(new, overlap, None), new)  # the first slice: nothing before
    faded = pp.fade_in(new, 0)  # but a turn starts from the neutral face
    np.testing.assert_allclose(faded[:, 0], new[:, 0] * [0.25, 0.5, 0.75, 1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([pp.fade_in(new[:1], 0), pp.fade_in(new[1:], 1)]), faded)


async def test_a_turn_starts_from_the_neutral_face(engine: LAMExpressionEngine) -> None:
    frames = await run(engine, speechlike(0.5, 16000, seed=4) + 0.05, 16000, 3200)
    assert frames[0, NOT_BLINK].max() <= 0.25 + 1e-6  # a quarter of the network's first frame at most
    assert frames[3:, NOT_BLINK].max() > 0.4


def test_symmetrize_averages_left_and_right() -> None:
    frames = random_walk(5)
    out = pp.symmetrize(frames)
    left, right = INDEX["mouthSmileLeft"], INDEX["mouthSmileRight"]
    np.testing.assert_allclose(out[:, left], out[:, right])
    np.testing.assert_allclose(out[:, left], (frames[:, left] + frames[:, right]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[:, JAW], frames[:, JAW])  # unpaired channels untouched


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blinks_come_at_natural_intervals(seed: int) -> None:
    n = 20 * 30
    frames = process(np.full((n, NUM_BLENDSHAPES), 0.5, np.float32), np.full(n, 0.1, np.float32), [6], seed)
    lids = frames[:, pp.BLINK]
    np.testing.assert_array_equal(lids[:, 0], lids[:, 1])
    closed = np.concatenate([[0], (lids[:, 0] > 0).astype(int), [0]])
    starts, ends = np.flatnonzero(np.diff(closed) == 1), np.flatnonzero(np.diff(closed) == -1)
    assert 3 <= len(starts) <= 10, starts  # one every 2–6 s over 20 s
    assert all(5 <= e - s <= 7 for s, e in zip(starts, ends, strict=True))  # 167–233 ms each
    gaps = np.diff(starts) / 30
    assert np.all(gaps >= 2.0) and np.all(gaps <= 6.3), gaps
    assert starts[0] < 3 * 30  # the first one soon: turns are short
    assert all(lids[s:e, 0].max() >= 0.75 for s, e in zip(starts, ends, strict=True))


def test_frame_rms() -> None:
    pcm = np.concatenate([np.zeros(533, np.float32), np.full(534, 0.5, np.float32)])
    np.testing.assert_allclose(pp.frame_rms(pcm, np.array([0, 533, 1067])), [0.0, 0.5], atol=1e-6)
