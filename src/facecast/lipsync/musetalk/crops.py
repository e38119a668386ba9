"""The 256x256 face crop the model sees, the blend mask in it, and the map back into the frame.

The crop follows the MuseTalk framing: horizontally the face oval's extent; vertically from the
chin (plus a small margin) up to the same distance above the lower nose bridge, so the nose bridge
sits at the crop's middle row and the masked lower half holds nose tip, mouth and chin. The box
is resized to CROP x CROP regardless of its aspect ratio. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.masks import lower_face_polygon
from facecast.compose import feathered_mask, safe_crop

CROP = 256  # px: side of the model's face crop
NOSE_BRIDGE = 195  # mesh point on the lower nose bridge: the crop's middle row
CHIN_MARGIN = 0.05  # of the chin-to-bridge distance, added below the chin
MASK_FEATHER_CROP_PX = 10.0  # inward feather of the blend mask, px of the 256x256 crop
MASK_TOP = CROP // 2  # rows above this are never blended (the model only redraws the lower half)


@dataclass(frozen=True)
class CropLayout:
    """Per-frame crop boxes and the fixed window of the frame they all fall in.

    boxes: (F, 4) int64 x0, y0, x1, y1 in frame pixels (may reach outside the frame)
    window: (x0, y0, x1, y1) ints, the union of the boxes clipped to the frame
    """

    boxes: np.ndarray
    window: tuple[int, int, int, int]

    @property
    def window_size(self) -> tuple[int, int]:
        """(width, height) of the window in pixels."""
        x0, y0, x1, y1 = self.window
        return x1 - x0, y1 - y0


def crop_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Crop boxes of every frame. landmarks: (F, 478, 2+) px -> (F, 4) int64 x0, y0, x1, y1."""
    pts = landmarks[..., :2].astype(np.float64)
    oval = pts[:, topo.FACE_OVAL]
    x0, x1 = oval[..., 0].min(1), oval[..., 0].max(1)
    middle = pts[:, NOSE_BRIDGE, 1]
    chin = pts[:, topo.CHIN, 1]
    bottom = chin + CHIN_MARGIN * np.maximum(chin - middle, 1.0)
    top = 2 * middle - bottom
    boxes = np.stack([np.floor(x0), np.floor(top), np.ceil(x1), np.ceil(bottom)], axis=1).astype(np.int64)
    boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0] + 8)  # degenerate meshes still get a box
    boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1] + 8)
    return boxes


def layout(landmarks: np.ndarray, frame_size: tuple[int, int]) -> CropLayout:
    """Boxes and paste window for an avatar. landmarks: (F, 478, 2+) px; frame_size: (width, height)."""
    boxes = crop_boxes(landmarks)
    width, height = frame_size
    x0, y0 = max(0, int(boxes[:, 0].min())), max(0, int(boxes[:, 1].min()))
    x1, y1 = min(width, int(boxes[:, 2].max())), min(height, int(boxes[:, 3].max()))
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = 0, 0, width, height
    return CropLayout(boxes, (x0, y0, x1, y1))


def face_crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The model's input crop: frame (H, W, 3) uint8 BGR, box (4,) int -> (256, 256, 3) uint8 RGB."""
    x0, y0, x1, y1 = (int(v) for v in box)
    patch = safe_crop(frame, x0, y0, x1 - x0, y1 - y0)
    patch = cv2.resize(patch, (CROP, CROP), interpolation=cv2.INTER_LANCZOS4)
    return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB)


def blend_mask(landmarks: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Where generated pixels replace the frame, in crop coordinates.

    landmarks: (478, 2+) px of one frame; box: (4,) int its crop box.
    returns (256, 256) float32 in [0, 1]: the feathered lower-face region, 0 on the crop's border
    and above its middle row, so the paste never shows a seam.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    polygon = lower_face_polygon(landmarks)
    scale = np.array([CROP / (x1 - x0), CROP / (y1 - y0)])
    in_crop = (polygon - [x0, y0] + 0.5) * scale - 0.5
    inset = MASK_FEATHER_CROP_PX / 2
    limit = np.array([[inset, MASK_TOP], [CROP - 1 - inset, MASK_TOP],
                      [CROP - 1 - inset, CROP - 1 - inset], [inset, CROP - 1 - inset]], np.float32)
    area, clipped = cv2.intersectConvexConvex(in_crop.astype(np.float32), limit)
    if area <= 0 or clipped is None:
        return np.zeros((CROP, CROP), np.float32)
    return feathered_mask(clipped.reshape(-1, 2), (CROP, CROP), MASK_FEATHER_CROP_PX)


def paste_affines(boxes: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Affine maps from window pixels to crop pixels, in grid_sample's normalized units.

    For torch.nn.functional.affine_grid(theta, (B, C, Wh, Ww), align_corners=False): output pixel
    (u, v) of the window samples the crop where cv2.resize put frame pixel (wx0 + u, wy0 + v).
    boxes: (F, 4) int; returns (F, 2, 3) float32.
    """
    wx0, wy0, wx1, wy1 = window
    ww, wh = wx1 - wx0, wy1 - wy0
    b = boxes.astype(np.float64)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    theta = np.zeros((len(boxes), 2, 3), np.float64)
    theta[:, 0, 0] = ww / w
    theta[:, 0, 2] = (2 * (wx0 - b[:, 0]) + ww) / w - 1
    theta[:, 1, 1] = wh / h
    theta[:, 1, 2] = (2 * (wy0 - b[:, 1]) + wh) / h - 1
    return theta.astype(np.float32)
