"""The per-frame network: one UNet step at timestep 0 in the VAE's latent space, then a decode.

Input of the UNet (8 channels): the latent of the face crop with its lower half blacked out
(channels 0-3), then the latent of the reference crop (channels 4-7). Condition: a frame's
whisper window plus a sinusoidal position code. Output: the latent of the face crop with the
mouth redrawn, decoded to pixels by the VAE's decoder or, given one, a small decoder
(small_decoder.py) that reads the scaled latents as they are.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from facecast.lipsync.musetalk import speedups
from facecast.lipsync.musetalk.crops import CROP, MASK_TOP
from facecast.lipsync.musetalk.windows import WINDOW, sinusoidal_encoding

LATENT = CROP // 8  # 32: side of a VAE latent
DEFAULT_SCALING = 0.18215  # sd-vae-ft-mse's latent scaling factor, when its config has none
# "lower-decode": the first latent row decoded at high resolution (the blend mask starts at MASK_TOP px)
LOWER_DECODE_FIRST_ROW = MASK_TOP // 8 - speedups.LOWER_DECODE_HALO


class LipsyncNet(nn.Module):
    """UNet + decoder as one module with fixed-shape inputs, for torch.compile and CUDA graphs.

    unet: diffusers UNet2DConditionModel (in_channels 8, out_channels 4): the teacher or a student
    vae: diffusers AutoencoderKL (encodes the avatar crops; decodes unless `decoder` is given)
    states: encoder states per whisper frame (5 for whisper-tiny)
    decoder: None (the VAE's decoder) or a small decoder, (B, 4, 32, 32) scaled latents ->
             (B, 3, 256, 256) in [-1, 1] (a diffusers DecoderTiny)
    """

    def __init__(self, unet: nn.Module, vae: nn.Module, states: int, decoder: nn.Module | None = None):
        super().__init__()
        self.unet, self.vae = unet, vae
        self.small_decoder = decoder  # a submodule when given: it moves and casts with the net
        self.small = decoder is not None  # a constant for torch.compile: only one path is traced
        self.scaling = float(getattr(vae.config, "scaling_factor", None) or DEFAULT_SCALING)
        width = int(unet.config.cross_attention_dim)
        code = torch.from_numpy(sinusoidal_encoding(WINDOW * states, width))
        self.register_buffer("position", code[None], persistent=False)  # (1, WINDOW * states, width)
        # timestep 0 as a device tensor: a Python int would be copied from the host on every call,
        # which CUDA graph capture forbids
        self.register_buffer("timestep", torch.zeros(1, dtype=torch.int64), persistent=False)
        self.speedups: tuple[str, ...] = ()  # speedups.apply sets them on a copy

    def forward(self, latents: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """latents: (B, 8, 32, 32), audio: (B, WINDOW * states, width), both in the model's dtype.
        Returns the redrawn crops (B, 3, 256, 256) in [0, 1], model dtype, RGB."""
        condition = (audio.float() + self.position).to(audio.dtype)
        latents = latents.contiguous(memory_format=torch.channels_last)
        out = self.unet(latents, self.timestep, encoder_hidden_states=condition, return_dict=False)[0]
        if self.small:
            image = self.small_decoder(out)
        else:
            first_row = LOWER_DECODE_FIRST_ROW if "lower-decode" in self.speedups else None
            image = speedups.decode(self.vae, out / self.scaling, first_row)
        return (image * 0.5 + 0.5).clamp(0.0, 1.0)

    @torch.inference_mode()
    def encode_crops(self, crops: np.ndarray, batch: int = 16) -> torch.Tensor:
        """The UNet's image input for each avatar crop.

        crops: (F, 256, 256, 3) uint8 RGB -> (F, 8, 32, 32) in the model's dtype, on its device:
        scaled mean latent of the crop with rows 128.. black, then of the whole crop.
        """
        param = next(self.vae.parameters())
        out = []
        for lo in range(0, len(crops), batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[lo: lo + batch])).to(param.device)
            x = x.permute(0, 3, 1, 2).float() / 255.0
            masked = x.clone()
            masked[:, :, CROP // 2:, :] = 0.0
            both = torch.cat([masked, x]) * 2.0 - 1.0
            both = both.to(param.dtype).contiguous(memory_format=torch.channels_last)
            mean = self.vae.encode(both, return_dict=False)[0].mode() * self.scaling
            n = len(x)
            out.append(torch.cat([mean[:n], mean[n:]], dim=1))
        return torch.cat(out)


class Graphed:
    """A function of fixed-shape device tensors captured as one CUDA graph (no launch gaps).

    fn(*inputs) -> tensor. Calls copy their arguments into the captured inputs and replay; the
    returned tensor is a static buffer that the next call overwrites, so consume it first. The
    warm-up calls run (and, for a torch.compile'd fn, compile) on a side stream before capture.
    """

    def __init__(self, fn: Callable, *inputs: torch.Tensor, warmup: int = 2):
        self.inputs = [x.clone() for x in inputs]
        device = self.inputs[0].device
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(warmup):
                fn(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(stream)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph), torch.inference_mode():
            self.output = fn(*self.inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for static, given in zip(self.inputs, inputs):
            if given is not static:
                static.copy_(given)
        self._graph.replay()
        return self.output
