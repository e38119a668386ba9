"""Loading the three networks from a model directory (local files only), onto a device and dtype."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facecast.errors import InvalidArgument
from facecast.lipsync.musetalk.files import UNETS, ModelFiles
from facecast.lipsync.musetalk.network import LipsyncNet
from facecast.lipsync.musetalk.whisper import WhisperStates

DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float32": torch.float32, "fp32": torch.float32}


@dataclass
class Models:
    """The loaded networks. identity names the VAE weights (the avatar-latent cache key: the VAE
    encodes the avatars whichever decoder decodes). unet: "teacher" or "student", decoder: "full"
    or "small": which networks net runs (for logs and benchmarks)."""

    net: LipsyncNet
    whisper: WhisperStates
    identity: str
    unet: str = "teacher"
    decoder: str = "full"

    @property
    def variant(self) -> str:
        """e.g. "unet=student decoder=small"."""
        return f"unet={self.unet} decoder={self.decoder}"

    @property
    def device(self) -> torch.device:
        return self.net.position.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.unet.parameters()).dtype


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None -> cuda when available, else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgument(f"device={device!r} is not a torch device (e.g. 'cuda', 'cuda:1', 'cpu')") from None


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None -> float16 on a GPU, float32 on a CPU; names: float16/fp16, bfloat16/bf16, float32/fp32."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype).lower() not in DTYPES:
        raise InvalidArgument(f"dtype={dtype!r} is not one of {sorted(DTYPES)}")
    return DTYPES[str(dtype).lower()]


def load_models(files: ModelFiles, device: torch.device, dtype: torch.dtype) -> Models:
    """Read the UNet (teacher or student), VAE, whisper encoder and, for files.decoder "small",
    the small decoder from `files`; never touches the network."""
    with _quiet_loading():
        return _load(files, device, dtype)


def _load(files: ModelFiles, device: torch.device, dtype: torch.dtype) -> Models:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperFeatureExtractor, WhisperModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(files.unet_settings())
    state = torch.load(files.unet_weights, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        unet.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise InvalidArgument(f"{files.unet_weights}: weights do not fit {files.unet_config}: "
                              f"{str(exc).splitlines()[0]}") from None
    vae = AutoencoderKL.from_pretrained(files.vae_dir, local_files_only=True)
    whisper = WhisperModel.from_pretrained(files.whisper_dir, local_files_only=True, attn_implementation="sdpa")
    if files.whisper_preprocessor is not None:
        extractor = WhisperFeatureExtractor.from_pretrained(files.whisper_dir, local_files_only=True)
    else:
        extractor = WhisperFeatureExtractor(feature_size=whisper.config.num_mel_bins)
    decoder = None
    if files.small_decoder_dir is not None:
        from facecast.lipsync.musetalk.small_decoder import load_decoder

        decoder = load_decoder(files.small_decoder_dir)
    return assemble(unet, vae, whisper.get_encoder(), extractor.mel_filters, files.vae_identity(), device, dtype,
                    decoder=decoder, unet_kind=files.unet)


def assemble(unet: nn.Module, vae: nn.Module, encoder: nn.Module, mel_filters: np.ndarray, identity: str,
             device: torch.device, dtype: torch.dtype, *, decoder: nn.Module | None = None,
             unet_kind: str = "teacher") -> Models:
    """Put already-built networks on `device` in `dtype` (channels-last convolutions, inference only).

    decoder: a small decoder (small_decoder.py: scaled latents -> [-1, 1]) to decode instead of the
    VAE, which then only encodes avatars; unet_kind: "teacher" or "student", recorded in Models.unet.
    """
    if unet_kind not in UNETS:
        raise InvalidArgument(f"unet_kind={unet_kind!r} is not one of {list(UNETS)}")
    small = [decoder] if decoder is not None else []
    for module in (unet, vae, encoder, *small):
        module.requires_grad_(False).eval()
    # nn.Module.to, not the libraries' overrides, which log about dtype casts on every call
    for module in (unet, vae, *small):
        nn.Module.to(module, device=device, dtype=dtype, memory_format=torch.channels_last)
    nn.Module.to(encoder, device=device, dtype=dtype)
    whisper = WhisperStates(encoder, mel_filters)
    if int(unet.config.cross_attention_dim) != whisper.width:
        raise InvalidArgument(f"the UNet's cross_attention_dim ({unet.config.cross_attention_dim}) differs from "
                              f"the whisper encoder's width ({whisper.width}): not a matching model set")
    net = LipsyncNet(unet, vae, whisper.depth, decoder).to(device)
    return Models(net, whisper, identity, unet_kind, "full" if decoder is None else "small")


@contextmanager
def _quiet_loading():
    """No progress bars from transformers or diffusers while the weights load."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    restore = []
    for lib in (transformers_logging, diffusers_logging):
        if lib.is_progress_bar_enabled():
            lib.disable_progress_bar()
            restore.append(lib)
    try:
        yield
    finally:
        for lib in restore:
            lib.enable_progress_bar()
