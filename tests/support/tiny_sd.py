"""A seeded random-weight Stable Diffusion 1.x directory, small enough for CPU tests in seconds.

write_tiny_sd(folder) saves the diffusers layout that `facecast stylize --model-dir` reads
(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); the CLIP tokenizer is
built offline from a vocabulary of single letters written here. Nothing is downloaded.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

CROSS_WIDTH = 32  # the text encoder's width = the UNet's cross_attention_dim


def _tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt of a byte-level BPE over lowercase letters and digits, CLIP style
    (a word's last piece ends in </w>), with CLIP's start and end tokens."""
    pieces = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for piece in pieces + [p + "</w>" for p in pieces]:
        vocab[piece] = len(vocab)
    merges = ["#version: 0.2"]  # no merges: every word is spelled letter by letter
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")


def write_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Save a random SD 1.x-layout pipeline (UNet 32-64 channels, 8x VAE, 2-layer CLIP text encoder,
    PNDM scheduler as SD 1.5 ships it) into `folder`; returns `folder`."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_WIDTH, attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
        sample_size=256)
    _tokenizer_files(folder / "_vocab")
    tokenizer = CLIPTokenizer(str(folder / "_vocab" / "vocab.json"), str(folder / "_vocab" / "merges.txt"),
                              model_max_length=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=CROSS_WIDTH, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    for name in ("vocab.json", "merges.txt"):
        (folder / "_vocab" / name).unlink()
    (folder / "_vocab").rmdir()
    return folder
