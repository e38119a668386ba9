"""How close a student is to its teacher: PSNR overall and on the mouth region, and the edge loss.

Images are (B, 3, 256, 256) tensors in the crop layout of lipsync.musetalk.crops (nose bridge on
the middle row, chin near the bottom); the mouth region is a fixed box of that layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (y0, y1, x0, x1) px of the 256x256 crop: nose tip to chin, the middle 56 % of the width;
# the lips of a frontal face lie inside it in every crop of the test portraits
MOUTH_BOX = (152, 240, 56, 200)
MAX_PSNR = 100.0  # dB reported for identical images


def mouth(images: torch.Tensor) -> torch.Tensor:
    """The mouth box of (B, C, 256, 256) images -> (B, C, 88, 144)."""
    y0, y1, x0, x1 = MOUTH_BOX
    return images[..., y0:y1, x0:x1]


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1]: a, b (B, C, H, W) -> (B,) float32, capped at MAX_PSNR."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(10 ** (-MAX_PSNR / 10)))).clamp(max=MAX_PSNR)


def psnr_pair(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(overall, mouth) per-image PSNR of student vs teacher images in [0, 1], each (B,)."""
    return psnr(student, teacher), psnr(mouth(student), mouth(teacher))


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def edges(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradients of each channel: (B, C, H, W) -> (B, 2C, H - 2, W - 2) (x then y), same dtype."""
    c = images.shape[1]
    kernel = torch.stack([_SOBEL, _SOBEL.T])[:, None].to(images.device, images.dtype)  # (2, 1, 3, 3)
    out = F.conv2d(images.reshape(-1, 1, *images.shape[2:]), kernel)
    return out.reshape(images.shape[0], 2 * c, *out.shape[2:])


def edge_loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the Sobel gradients of two image batches (B, C, H, W) -> scalar float32."""
    return (edges(student.float()) - edges(target.float())).abs().mean()
