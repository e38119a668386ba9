"""The teacher: the musetalk networks of a model directory, and what the tasks ask of them.

Latents are in the UNet's space (the VAE posterior scaled by its scaling factor), images are
(B, 3, 256, 256) float32 in [-1, 1]. Every call runs without gradients in the teacher's dtype and
returns float32 on the teacher's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecast.lipsync.musetalk.crops import CROP
from facecast.lipsync.musetalk.loading import Models


@dataclass
class Teacher:
    """models: the loaded networks; identity: what names them in distill.json."""

    models: Models
    identity: dict

    @property
    def device(self) -> torch.device:
        return self.models.device

    @property
    def dtype(self) -> torch.dtype:
        return self.models.dtype

    @property
    def unet(self) -> nn.Module:
        return self.models.net.unet

    @property
    def vae(self) -> nn.Module:
        return self.models.net.vae

    @property
    def scaling(self) -> float:
        return self.models.net.scaling

    @property
    def position(self) -> torch.Tensor:
        """(1, 50, width) float32 position code added to every speech window (LipsyncNet's)."""
        return self.models.net.position

    def images(self, crops: np.ndarray) -> torch.Tensor:
        """crops (B, 256, 256, 3) uint8 RGB -> (B, 3, 256, 256) float32 in [-1, 1] on the device."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    @torch.no_grad()
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of the VAE posterior, scaled: images (B, 3, 256, 256) -> 2 x (B, 4, 32, 32)."""
        x = images.to(self.dtype).contiguous(memory_format=torch.channels_last)
        dist = self.vae.encode(x, return_dict=False)[0]
        return (dist.mean.float() * self.scaling, dist.std.float() * self.scaling)

    @torch.no_grad()
    def unet_input(self, images: torch.Tensor) -> torch.Tensor:
        """The UNet's 8-channel input (as LipsyncNet.encode_crops makes it): the posterior mean of the
        crop with rows 128.. black, then of the whole crop. images (B, 3, 256, 256) -> (B, 8, 32, 32)."""
        masked = images.clone()
        masked[:, :, CROP // 2:, :] = -1.0
        mean = self.posterior(torch.cat([masked, images]))[0]
        return torch.cat([mean[: len(images)], mean[len(images):]], dim=1)

    def condition(self, audio: torch.Tensor) -> torch.Tensor:
        """Speech windows (B, 50, width) -> the UNet's encoder states, float32 (audio + position code)."""
        return audio.to(self.device).float() + self.position.float()

    @torch.no_grad()
    def redraw(self, latents: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """The teacher UNet at timestep 0: latents (B, 8, 32, 32), audio (B, 50, width) -> (B, 4, 32, 32)."""
        x = latents.to(self.dtype).contiguous(memory_format=torch.channels_last)
        out = self.unet(x, self.models.net.timestep, encoder_hidden_states=self.condition(audio).to(self.dtype),
                        return_dict=False)[0]
        return out.float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The full VAE decoder: scaled latents (B, 4, 32, 32) -> images (B, 3, 256, 256) float32 (not
        clamped). Gradients flow to `latents` when they require them (the decoder stays frozen)."""
        x = (latents / self.scaling).to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.vae.decode(x, return_dict=False)[0].float()


def load_teacher(model_dir: str | Path | None, device: torch.device, dtype: torch.dtype) -> Teacher:
    """The networks of `model_dir` (local files only; ModelFilesMissing lists what is missing)."""
    from facecast.lipsync.musetalk.files import _identity, locate
    from facecast.lipsync.musetalk.loading import load_models

    files = locate(model_dir)
    models = load_models(files, device, dtype)
    identity = {"model_dir": str(files.root.resolve()), "version": files.version, "vae": files.vae_identity(),
                "unet": _identity([files.unet_config], [files.unet_weights])}
    return Teacher(models, identity)


def in_process(models: Models) -> Teacher:
    """A teacher from networks already loaded (benchmarks, tests): identity from the VAE only."""
    return Teacher(models, {"vae": models.identity})
