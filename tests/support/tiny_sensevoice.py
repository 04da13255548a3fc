"""Build a complete, tiny SenseVoiceSmall model directory, laid out like the real download, for tests.

The real weights (~900 MB) cannot be fetched here, so this writes the same five files the real model directory
holds — config.yaml, configuration.json, model.pt, am.mvn and a SentencePiece model under the real name — but
with a 2-block encoder of width 64, random weights and a tokenizer trained on the fly. funasr's `AutoModel`
loads it exactly as it loads the real one (same classes, same file resolution), so the engine's whole code
path runs. The tokenizer carries SenseVoice's special tokens (`<|en|>`, `<|HAPPY|>`, ...) as user-defined
pieces, as the real BPE model does, so decoded output can contain the same markup.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

BPE_MODEL = "chn_jpn_yue_eng_ko_spectok.bpe.model"  # the real model's tokenizer file name
LFR_DIM = 80 * 7  # 80 mel bins stacked over lfr_m=7 frames: the encoder's input width

# SenseVoice's rich-transcription tokens (language, emotion, audio event, text normalisation).
SPECIAL_TOKENS = [
    *("<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>"),
    *("<|HAPPY|>", "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|FEARFUL|>", "<|DISGUSTED|>", "<|SURPRISED|>"),
    "<|EMO_UNKNOWN|>",
    *("<|Speech|>", "<|BGM|>", "<|Applause|>", "<|Laughter|>", "<|Cry|>", "<|Sneeze|>", "<|Breath|>", "<|Cough|>"),
    "<|Event_UNK|>",
    *("<|withitn|>", "<|woitn|>"),
]

_CORPUS = """\
hello there how are you doing today
the weather is lovely this morning and the sky is clear
i think we should go for a walk in the park after lunch
could you tell me the time please
thank you very much for your help with the project
what would you like to talk about this evening
the quick brown fox jumps over the lazy dog
please speak a little more slowly so i can follow
we are testing a small speech recogniser on a laptop
numbers like one two three four five six seven eight nine ten
"""

ENCODER_CONF = {
    "output_size": 64,
    "attention_heads": 4,
    "linear_units": 128,
    "num_blocks": 2,
    "tp_blocks": 1,
    "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1,
    "attention_dropout_rate": 0.1,
    "input_layer": "pe",
    "pos_enc_class": "SinusoidalPositionEncoder",
    "normalize_before": True,
    "kernel_size": 11,
    "sanm_shfit": 0,
    "selfattention_layer_type": "sanm",
}

FRONTEND_CONF = {
    "fs": 16000,
    "window": "hamming",
    "n_mels": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "lfr_m": 7,
    "lfr_n": 6,
    "cmvn_file": None,  # filled in by configuration.json's file_path_metas, as in the real model
}


def _config_yaml() -> str:
    import yaml

    config = {
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": ENCODER_CONF,
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": FRONTEND_CONF,
    }
    return yaml.safe_dump(config, sort_keys=False)


def _configuration_json() -> str:
    """ModelScope's metadata: tells funasr which file is which (the tokenizer is found only through it)."""
    return json.dumps(
        {
            "framework": "pytorch",
            "task": "auto-speech-recognition",
            "model": {"type": "funasr"},
            "pipeline": {"type": "funasr-pipeline"},
            "file_path_metas": {
                "init_param": "model.pt",
                "config": "config.yaml",
                "tokenizer_conf": {"bpemodel": BPE_MODEL},
                "frontend_conf": {"cmvn_file": "am.mvn"},
            },
        },
        indent=2,
    )


def _am_mvn(shift: float = -10.0, scale: float = 0.25) -> str:
    """Global CMVN in Kaldi nnet text format (what funasr's `load_cmvn` parses): x -> (x + shift) * scale."""
    shifts = " ".join([f"{shift:g}"] * LFR_DIM)
    scales = " ".join([f"{scale:g}"] * LFR_DIM)
    return (
        "<Nnet>\n"
        f"<Splice> {LFR_DIM} {LFR_DIM}\n[ 0 ]\n"
        f"<AddShift> {LFR_DIM} {LFR_DIM}\n<LearnRateCoef> 0 [ {shifts} ]\n"
        f"<Rescale> {LFR_DIM} {LFR_DIM}\n<LearnRateCoef> 0 [ {scales} ]\n"
        "</Nnet>\n"
    )


def _train_tokenizer() -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS.splitlines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=160,
        hard_vocab_limit=False,
        character_coverage=1.0,
        user_defined_symbols=SPECIAL_TOKENS,
        minloglevel=2,
    )
    return model.getvalue()


def build_tiny_sensevoice(directory: Path, seed: int = 0, force_piece: str | None = None) -> Path:
    """Write a loadable tiny SenseVoiceSmall model into `directory` (created); returns it.

    `force_piece` makes the CTC head emit that tokenizer piece on every frame (zero weights, one-hot bias),
    so a test can know what the random model will say: CTC collapses the repeats into one piece.
    """
    import sentencepiece as spm
    import torch
    from avatar_runtime.engines.asr_sensevoice import contain_funasr_side_effects

    with contain_funasr_side_effects():  # importing funasr reconfigures logging and warnings process-wide
        from funasr.models.sense_voice.model import SenseVoiceSmall

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    (directory / BPE_MODEL).write_bytes(tokenizer)
    sp = spm.SentencePieceProcessor(model_proto=tokenizer)

    torch.manual_seed(seed)
    model = SenseVoiceSmall(
        encoder="SenseVoiceEncoderSmall",
        encoder_conf=ENCODER_CONF,
        input_size=LFR_DIM,
        vocab_size=sp.GetPieceSize(),  # funasr sizes the CTC head from the tokenizer when it loads
    )
    if force_piece is not None:
        piece_id = sp.PieceToId(force_piece)
        if sp.IdToPiece(piece_id) != force_piece:
            raise ValueError(f"{force_piece!r} is not a piece of the tiny tokenizer")
        with torch.no_grad():
            model.ctc.ctc_lo.weight.zero_()
            model.ctc.ctc_lo.bias.fill_(-10.0)
            model.ctc.ctc_lo.bias[piece_id] = 10.0
    torch.save(model.state_dict(), directory / "model.pt")

    (directory / "config.yaml").write_text(_config_yaml())
    (directory / "configuration.json").write_text(_configuration_json())
    (directory / "am.mvn").write_text(_am_mvn())
    return directory
