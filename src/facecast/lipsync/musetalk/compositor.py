"""Pasting redrawn face crops back into avatar frames, on the model's device.

Everything an avatar needs per frame is stacked on the device once (latents, blend masks, crop
maps, and the source frames when they fit), so a batch costs one gather, one grid_sample over a
fixed window of the frame, and one blend; no host work and no per-frame Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facecast import compose
from facecast.lipsync.musetalk.crops import CropLayout, paste_affines

FRAMES_ON_DEVICE_BYTES = 2 << 30  # 2 GiB: larger avatars keep full frames on the host


@dataclass
class AvatarPlanes:
    """One avatar's per-frame data on the device.

    latents: (F, 8, 32, 32) model dtype, the UNet's image input
    masks: (F, 1, 256, 256) model dtype in [0, 1], blend masks in crop coordinates
    affines: (F, 2, 3) float32, window -> crop maps (crops.paste_affines)
    frames: (F, H, W, 3) uint8 BGR source frames, or None when kept on the host
    windows: (F, Wh, Ww, 3) uint8 BGR window of each source frame (a view of frames when present)
    window: (x0, y0, x1, y1) of the window in frame pixels
    """

    latents: torch.Tensor
    masks: torch.Tensor
    affines: torch.Tensor
    frames: torch.Tensor | None
    windows: torch.Tensor
    window: tuple[int, int, int, int]

    @classmethod
    def build(cls, frames: np.ndarray, layout: CropLayout, latents: torch.Tensor, masks: np.ndarray,
              frame_budget: int = FRAMES_ON_DEVICE_BYTES) -> "AvatarPlanes":
        """frames: (F, H, W, 3) uint8 BGR; latents on the device; masks: (F, 256, 256) float32."""
        device, dtype = latents.device, latents.dtype
        x0, y0, x1, y1 = layout.window
        if frames.nbytes <= frame_budget:
            full = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
            windows = full[:, y0:y1, x0:x1]
        else:
            full = None
            windows = torch.from_numpy(np.ascontiguousarray(frames[:, y0:y1, x0:x1])).to(device)
        return cls(latents=latents,
                   masks=torch.from_numpy(masks[:, None]).to(device, dtype),
                   affines=torch.from_numpy(paste_affines(layout.boxes, layout.window)).to(device),
                   frames=full, windows=windows, window=layout.window)

    @property
    def frame_count(self) -> int:
        return int(self.latents.shape[0])


def blend(planes: AvatarPlanes, crops: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Paste redrawn crops into their source frames.

    crops: (B, 3, 256, 256) RGB in [0, 1] (any float dtype); index: (B,) int64 source frames on the device.
    returns (B, H, W, 3) uint8 BGR full frames when planes.frames is set, else (B, Wh, Ww, 3) windows.
    """
    x0, y0, x1, y1 = planes.window
    b = crops.shape[0]
    rgba = torch.cat([crops.to(planes.masks.dtype), planes.masks[index]], dim=1)  # (B, 4, 256, 256)
    grid = F.affine_grid(planes.affines[index].to(rgba.dtype), [b, 4, y1 - y0, x1 - x0], align_corners=False)
    warped = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    generated = warped[:, :3].flip(1).float().permute(0, 2, 3, 1) * 255.0  # (B, Wh, Ww, 3) BGR
    alpha = warped[:, 3:4].float().permute(0, 2, 3, 1)
    if planes.frames is not None:
        out = planes.frames[index]
        region = out[:, y0:y1, x0:x1]
    else:
        out = region = planes.windows[index]
    source = region.float()
    region.copy_(compose.blend(source, generated, alpha))
    return out
