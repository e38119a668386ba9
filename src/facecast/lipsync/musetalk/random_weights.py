"""Seeded random-weight models with the MuseTalk architecture, for tests and benchmarks (no download).

"full" is the released architecture (UNet 320-640-1280-1280, sd-vae-ft-mse, whisper-tiny);
"tiny" keeps every structural choice but is small enough for a CPU test in seconds.
write_model_dir saves either in the release layout so the real loading code reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SIZES = ("tiny", "full")
LAYOUTS = {"v1.5": ("musetalkV15", "unet.pth"), "v1": ("musetalk", "pytorch_model.bin")}


def unet_config(size: str) -> dict:
    """musetalk.json contents for `size`."""
    full = size == "full"
    return {
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280] if full else [32, 64, 64, 64],
        "center_input_sample": False,
        "cross_attention_dim": 384 if full else 32,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 8,
        "layers_per_block": 2 if full else 1,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "out_channels": 4,
        "sample_size": 64 if full else 32,
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    }


def vae_config(size: str) -> dict:
    """AutoencoderKL arguments: sd-vae-ft-mse's for "full"."""
    full = size == "full"
    return {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512] if full else [8, 16, 16, 16],
        "layers_per_block": 2 if full else 1,
        "norm_num_groups": 32 if full else 8,
        "sample_size": 256,
        "scaling_factor": 0.18215,
    }


def whisper_config(size: str) -> dict:
    """WhisperConfig arguments: whisper-tiny's for "full" (a tiny decoder either way is never used)."""
    full = size == "full"
    width = 384 if full else 32
    return {
        "d_model": width,
        "encoder_layers": 4,
        "encoder_attention_heads": 6 if full else 2,
        "encoder_ffn_dim": 4 * width,
        "decoder_layers": 4 if full else 1,
        "decoder_attention_heads": 6 if full else 2,
        "decoder_ffn_dim": 4 * width,
        "vocab_size": 51865 if full else 64,
        "num_mel_bins": 80,
        "max_source_positions": 1500,
        "max_target_positions": 448 if full else 8,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1,
    }


def build(size: str = "tiny", seed: int = 0):
    """(unet, vae, whisper_model, feature_extractor) with seeded random weights, float32 on the CPU."""
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {SIZES}")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config({k: v for k, v in unet_config(size).items() if k[0] != "_"})
    vae = AutoencoderKL(**vae_config(size))
    whisper = WhisperModel(WhisperConfig(**whisper_config(size)))
    return unet, vae, whisper, WhisperFeatureExtractor(feature_size=80)


def write_model_dir(root: str | Path, size: str = "tiny", layout: str = "v1.5", seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> Path:
    """Save seeded random weights laid out like the MuseTalk release under `root`; returns root."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {sorted(LAYOUTS)}")
    root = Path(root)
    unet, vae, whisper, extractor = build(size, seed)
    folder, weights = LAYOUTS[layout]
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "musetalk.json").write_text(json.dumps(unet_config(size), indent=2))
    torch.save({k: v.to(dtype) for k, v in unet.state_dict().items()}, root / folder / weights)
    vae.to(dtype).save_pretrained(root / "sd-vae")
    whisper.to(dtype).save_pretrained(root / "whisper")
    extractor.save_pretrained(root / "whisper")
    return root

