"""Render one avatar frame under driver motion: mesh warp, head mask, painted inner mouth."""

from __future__ import annotations

import cv2
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame
from facecast.compose import feathered_mask
from facecast.face.inner_mouth import MouthColors, inner_lip_opening, paint_mouth
from facecast.portrait.driver import DriverMotion
from facecast.portrait.mesh_warp import MeshWarp
from facecast.portrait.pose import N_MESH
from facecast.portrait.retarget import Retargeter, box_anchors
from facecast.face.warp import GRID_STEP, WarpGrid, smoothstep

BOX_MARGIN = 4 * GRID_STEP  # px around the still ring
MOUTH_SAMPLES = 24  # points along each inner-lip edge of the painted mouth
MASK_FEATHER_PX = 4.0  # inward feather of the head mask's edge, frame px
PAINT_RAMP = 0.04  # face units of extra opening over which the painted mouth fades in
FINE_PIXELS = 400 * 400  # px: warp boxes up to this area get the field at every pixel (step 1)


class PortraitRenderer:
    """Animates one still avatar frame.

    frame: (H, W, 3) uint8 BGR; mesh: (478, 3) float px (the avatar's face mesh on it);
    step: px between samples of the warp field (1: sharp edges where a turned head folds over
    itself; 2: four times fewer samples); None picks 1 for boxes up to FINE_PIXELS, else 2.
    Precomputes everything that depends only on the avatar (rings, triangulation, grid,
    head mask, mouth colours) so a frame costs one rasterization and one remap.
    """

    def __init__(self, frame: np.ndarray, mesh: np.ndarray, step: int | None = None):
        self.frame = np.ascontiguousarray(frame)
        self.retarget = Retargeter(mesh)
        rings = self.retarget.rings
        h, w = frame.shape[:2]
        pts = np.concatenate([mesh[:, :2], rings.head[:, :2], rings.still])
        box = np.concatenate([pts.min(0) - BOX_MARGIN, pts.max(0) + BOX_MARGIN])
        self.grid = WarpGrid.over(box, (w, h), self.retarget.face)
        g = self.grid
        step = step or (1 if g.width * g.height <= FINE_PIXELS else GRID_STEP)
        self._still = np.concatenate([rings.still, box_anchors(g.x0, g.y0, g.x0 + g.width, g.y0 + g.height)])
        self.warp = MeshWarp(np.concatenate([mesh[:N_MESH, :2], rings.head[:, :2], self._still]), g, step)
        self.mask = head_mask(rings.still, g, step)
        self.colors = MouthColors.sample(frame, mesh)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) px of the output frames."""
        return int(self.frame.shape[1]), int(self.frame.shape[0])

    def moved_mesh(self, motion: DriverMotion) -> tuple[np.ndarray, np.ndarray]:
        """Where the avatar's mesh and head ring go: (468, 3) px mesh, (K, 3) px ring."""
        rt = self.retarget
        return rt.head_motion(rt.expression(motion), motion), rt.head_motion(rt.rings.head, motion)

    def render(self, motion: DriverMotion | None) -> np.ndarray:
        """The avatar under `motion` (None: at rest): (H, W, 3) uint8 BGR, a new array."""
        out = self.frame.copy()
        if motion is None:
            return out
        mesh, ring = self.moved_mesh(motion)
        target = np.concatenate([mesh[:, :2], ring[:, :2], self._still])
        depth = np.concatenate([mesh[:, 2], ring[:, 2], np.full(len(self._still), np.inf)])
        field = self.warp.field(target, depth) * self.mask[..., None]
        self.grid.apply(self.frame, field, out)
        self._paint_mouth(out, mesh, self.retarget.head_motion(self.retarget.mesh[:N_MESH], motion))
        return out

    def _paint_mouth(self, out: np.ndarray, mesh: np.ndarray, rest: np.ndarray) -> None:
        """Paint the inner mouth between the moved inner-lip edges of `mesh` (468, 3) px where
        the mouth opened wider than the avatar's own under the same head pose (`rest`, (468, 3)
        px): the warp already shows the avatar's real mouth inside."""
        face = FaceFrame.from_landmarks(mesh)
        upper, lower = inner_lip_edges(face, mesh)
        rest_gap = inner_lip_opening(*inner_lip_edges(face, rest))
        weight = float(smoothstep((inner_lip_opening(upper, lower) - rest_gap) / PAINT_RAMP))
        if weight > 0.0:
            paint_mouth(out, face, upper, lower, self.colors, face.to_image, opacity=min(weight, 1.0))


def inner_lip_edges(face: FaceFrame, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inner-lip edges (upper, lower) of a (468+, 2+) px mesh, each (MOUTH_SAMPLES, 2) face units
    sampled at the same increasing a from corner to corner."""
    upper = face.to_face(mesh[topo.LIPS_INNER_UPPER, :2])
    lower = face.to_face(mesh[topo.LIPS_INNER_LOWER, :2])
    a = np.linspace(upper[0, 0], upper[-1, 0], MOUTH_SAMPLES)
    if a[-1] < a[0]:
        a = a[::-1]

    def along(edge: np.ndarray) -> np.ndarray:
        order = np.argsort(edge[:, 0])
        return np.interp(a, edge[order, 0], edge[order, 1])

    return np.stack([a, along(upper)], 1), np.stack([a, along(lower)], 1)


def head_mask(still_ring: np.ndarray, grid: WarpGrid, step: int) -> np.ndarray:
    """(h, w) float32 mask sampled every `step` px over the grid's box: 1 well inside the still
    ring, feathered inward, exactly 0 outside it (what may move)."""
    poly = cv2.convexHull(((still_ring - [grid.x0, grid.y0]) / step).astype(np.float32))[:, 0]
    shape = (len(range(0, grid.height, step)), len(range(0, grid.width, step)))
    mask = feathered_mask(poly, shape, MASK_FEATHER_PX / step)
    if step > 1:  # upsampling spreads the field by up to a sample: keep that margin inside the ring
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask
