"""A dense backward warp from sparse point motion: piecewise-affine over a fixed triangulation.

The triangulation is built once on the source points (Delaunay). Each frame, every moved
triangle is rasterized into a map of triangle ids (far triangles first, so nearer ones win
where a turned head folds over itself) and each sample takes the affine map of its
triangle. Sampling every pixel (step 1) keeps fold edges sharp; a coarser step is faster
but blurs them when the field is upsampled.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

from facecast.face.warp import WarpGrid

SUBPIXEL_BITS = 4  # fixed-point bits of the rasterized triangle corners
MIN_AREA = 1e-3  # px^2: thinner moved triangles are skipped


class MeshWarp:
    """Piecewise-affine warp of the points `source` (V, 2) px over the box of `grid`.

    Output pixel x shows source pixel x - D(x); D is affine inside each moved triangle.
    step: px between samples of D (1 = every pixel of the box).
    """

    def __init__(self, source: np.ndarray, grid: WarpGrid, step: int = 1):
        self.source = np.asarray(source, np.float64)
        self.origin = np.array([grid.x0, grid.y0], np.float64)
        self.step = step
        self.triangles = Delaunay(self.source).simplices.astype(np.int32)
        xs = np.arange(grid.x0, grid.x0 + grid.width, step, dtype=np.float32)
        ys = np.arange(grid.y0, grid.y0 + grid.height, step, dtype=np.float32)
        self._xs, self._ys = np.meshgrid(xs, ys)
        self.shape = self._xs.shape  # (h, w) samples
        self._zero_row = np.zeros((self.shape[0], self.shape[1]), np.float32)

    def field(self, target: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Backward displacement (h, w, 2) float32 px at the samples.

        target: (V, 2) px where each source point moved to; depth: (V,) px, larger = farther
        (triangles are drawn far to near; use +inf for fixed background points).
        """
        target = np.asarray(target, np.float64)
        table, ok = self._affine_maps(target)
        order = np.argsort(-depth[self.triangles].mean(1), kind="stable")
        ids = self._rasterize(target, order[ok[order]])
        return self._evaluate(ids, table)

    def _affine_maps(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per triangle t, D = (x, y, 1) . table[t + 1, :3] along x and . table[t + 1, 3:] along y.

        Returns the (1, T + 1, 6) float32 table (row 0 is all zero: no triangle) and a (T,)
        bool mask of the triangles that are not degenerate.
        """
        o = target[self.triangles]  # (T, 3, 2) where the corners went
        v = o - self.source[self.triangles]  # (T, 3, 2) displacement at the corners
        e1, e2 = o[:, 1] - o[:, 0], o[:, 2] - o[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        ok = np.abs(det) > MIN_AREA
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)[:, None]
        # barycentric weights l1, l2 as affine functions of (x, y, 1); D = v0 + l1 dv1 + l2 dv2
        l1 = np.stack([e2[:, 1], -e2[:, 0], e2[:, 0] * o[:, 0, 1] - e2[:, 1] * o[:, 0, 0]], 1) * inv
        l2 = np.stack([-e1[:, 1], e1[:, 0], e1[:, 1] * o[:, 0, 0] - e1[:, 0] * o[:, 0, 1]], 1) * inv
        dv1, dv2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
        coef = l1[:, :, None] * dv1[:, None, :] + l2[:, :, None] * dv2[:, None, :]  # (T, 3, 2)
        coef[:, 2] += v[:, 0]
        table = np.zeros((1, len(o) + 1, 6), np.float32)
        table[0, 1:] = coef.transpose(0, 2, 1).reshape(len(o), 6)
        return table, ok

    def _rasterize(self, target: np.ndarray, order: np.ndarray) -> np.ndarray:
        """(h, w) float32 map of 1 + the triangle index at each sample (0 where none)."""
        ids = np.zeros(self.shape, np.int16)
        corners = (target - self.origin) / self.step * (1 << SUBPIXEL_BITS)
        pts = np.round(corners[self.triangles]).astype(np.int32)
        for t in order.tolist():
            cv2.fillConvexPoly(ids, pts[t], t + 1, cv2.LINE_8, SUBPIXEL_BITS)
        holes = ids == 0
        if holes.any():  # rare samples between triangles: borrow a neighbour's map
            grown = cv2.dilate(ids, np.ones((3, 3), np.uint8))
            ids[holes] = grown[holes]
        return ids.astype(np.float32)

    def _evaluate(self, ids: np.ndarray, table: np.ndarray) -> np.ndarray:
        """D (h, w, 2) float32 at every sample from its triangle's row of `table`."""
        c = cv2.remap(table, ids, self._zero_row, cv2.INTER_NEAREST)  # per-sample lookup
        xs, ys = self._xs, self._ys
        out = np.empty(self.shape + (2,), np.float32)
        out[..., 0] = c[..., 0] * xs + c[..., 1] * ys + c[..., 2]
        out[..., 1] = c[..., 3] * xs + c[..., 4] * ys + c[..., 5]
        return out
