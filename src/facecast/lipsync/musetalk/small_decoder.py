"""The small decoder: diffusers' AutoencoderTiny decoder (TAESD layout) standing in for the VAE's.

It reads the UNet's output as it is (scaled latents, (B, 4, 32, 32)) and returns (B, 3, 256, 256)
in [-1, 1], like the full decoder, at about a hundredth of its FLOPs. A small-decoder directory is
a diffusers AutoencoderTiny directory, so a TAESD trained for Stable Diffusion's latent space works
as it is, and `facecast distill decoder` writes one:

    <model_dir>/small-decoder/config.json                            AutoencoderTiny's config
    <model_dir>/small-decoder/diffusion_pytorch_model.safetensors    decoder.* (encoder.* optional)
    <model_dir>/small-decoder/distill.json                           how it was trained (optional)

Only the decoder's weights are read; a distilled one has no encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from facecast.errors import InvalidArgument, ModelFilesMissing

SMALL_DECODER_DIR = "small-decoder"
CONFIG, WEIGHTS = "config.json", "diffusion_pytorch_model.safetensors"
PREFIX = "decoder."
# preset -> AutoencoderTiny decoder arguments. "taesd" is AutoencoderTiny's default decoder
# (64 channels, 3-3-3-1 blocks, ~1.2 M parameters); "narrow" halves its width; "tiny" is for tests.
PRESETS = {
    "taesd": {"decoder_block_out_channels": [64, 64, 64, 64], "num_decoder_blocks": [3, 3, 3, 1]},
    "narrow": {"decoder_block_out_channels": [32, 32, 32, 32], "num_decoder_blocks": [3, 3, 3, 1]},
    "tiny": {"decoder_block_out_channels": [8, 8, 8, 8], "num_decoder_blocks": [1, 1, 1, 1]},
}


def decoder_config(preset: str = "taesd", latent_channels: int = 4) -> dict:
    """AutoencoderTiny config (as saved in config.json) whose decoder is `preset`."""
    if preset not in PRESETS:
        raise InvalidArgument(f"decoder preset={preset!r} is not one of {sorted(PRESETS)}")
    return {"_class_name": "AutoencoderTiny", "in_channels": 3, "out_channels": 3,
            "latent_channels": latent_channels, "act_fn": "relu", "upsample_fn": "nearest",
            "upsampling_scaling_factor": 2, "scaling_factor": 1.0, "shift_factor": 0.0,
            "encoder_block_out_channels": [8, 8, 8, 8], "num_encoder_blocks": [1, 1, 1, 1],
            **PRESETS[preset]}


def build_decoder(config: dict) -> nn.Module:
    """A fresh DecoderTiny from an AutoencoderTiny config: (B, 4, 32, 32) scaled latents -> (B, 3, 256, 256)."""
    from diffusers.models.autoencoders.vae import DecoderTiny

    return DecoderTiny(in_channels=int(config.get("latent_channels", 4)), out_channels=int(config.get("out_channels", 3)),
                       num_blocks=tuple(config.get("num_decoder_blocks", (3, 3, 3, 1))),
                       block_out_channels=tuple(config.get("decoder_block_out_channels", (64, 64, 64, 64))),
                       upsampling_scaling_factor=int(config.get("upsampling_scaling_factor", 2)),
                       act_fn=config.get("act_fn", "relu"), upsample_fn=config.get("upsample_fn", "nearest"))


def locate_small_decoder(model_dir: str | Path) -> Path:
    """<model_dir>/small-decoder (or model_dir itself when it holds the files); ModelFilesMissing if absent."""
    from facecast.lipsync.musetalk.files import variant_folder

    root = Path(model_dir).expanduser()
    folder = variant_folder(root, SMALL_DECODER_DIR, CONFIG, WEIGHTS)
    if folder is not None:
        return folder
    raise ModelFilesMissing(
        f"no small decoder in {str(root)!r}: expected {root / SMALL_DECODER_DIR / CONFIG} and {WEIGHTS} beside it "
        f"(make one with `facecast distill decoder --model-dir {root}`, or put a diffusers AutoencoderTiny there)")


def load_decoder(folder: str | Path) -> nn.Module:
    """The DecoderTiny saved in `folder` (float32, on the CPU)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    decoder = build_decoder(config)
    state = {k[len(PREFIX):]: v for k, v in load_file(str(folder / WEIGHTS)).items() if k.startswith(PREFIX)}
    try:
        decoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InvalidArgument(f"{folder / WEIGHTS}: decoder weights do not fit {folder / CONFIG}: "
                              f"{str(exc).splitlines()[0]}") from None
    return decoder.float()


def save_decoder(decoder: nn.Module, config: dict, folder: str | Path, provenance: dict | None = None) -> Path:
    """Write `decoder` (a DecoderTiny built from `config`) as an AutoencoderTiny directory holding
    decoder weights only; the folder is replaced as a whole (atomically). Returns `folder`."""
    from safetensors.torch import save_file

    from facecast.files import atomic_dir

    state = {PREFIX + k: v.detach().float().cpu().contiguous() for k, v in decoder.state_dict().items()}
    with atomic_dir(Path(folder)) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
        if provenance is not None:
            (tmp / "distill.json").write_text(json.dumps(provenance, indent=2))
    return Path(folder)


def decoder_flops(decoder: nn.Module, latent: int = 32) -> float:
    """FLOPs of one frame through `decoder` (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    param = next(decoder.parameters())
    x = torch.zeros(1, 4, latent, latent, device=param.device, dtype=param.dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        decoder(x)
    return float(counter.get_total_flops())
