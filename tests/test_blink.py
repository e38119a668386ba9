"""Idle blinks: the lid slides down without folding the warp, at any face size."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import portrait
from facecast.avatar import topology as topo
from facecast.avatar.prepare import prepare
from facecast.config import PrepareSettings
from facecast.lipsync.classic.fields import blink_field
from facecast.lipsync.classic import ClassicBackend
from facecast.lipsync.classic.rig import Curve, EyeRig


def _eye(gap: float, lid_to_brow: float) -> EyeRig:
    """A synthetic eye 0.3 face units wide, open `gap` at its centre."""
    a = np.linspace(-0.15, 0.15, 9)
    bulge = 1.0 - (a / 0.15) ** 2
    upper = Curve(a, -0.5 - 0.5 * gap * bulge)
    lower = Curve(a, -0.5 + 0.5 * gap * bulge)
    return EyeRig(upper, lower, (-0.15, 0.15), float(-0.5 - 0.5 * gap - lid_to_brow))


@pytest.mark.parametrize("gap, lid_to_brow", [(0.06, 0.13), (0.11, 0.14), (0.12, 0.12)])  # rig: lid_to_brow >= gap
@pytest.mark.parametrize("amount", [0.3, 0.7, 1.0])
def test_blink_never_folds(gap, lid_to_brow, amount):
    # A folded backward map (b - db decreasing in b) shows what lies below the lid (the
    # iris) above it: the dark oval of issue 12 on large faces.
    eye = _eye(gap, lid_to_brow)
    a, b = np.meshgrid(np.linspace(-0.14, 0.14, 15), np.linspace(-1.0, 0.0, 4001), indexing="xy")
    src = b - blink_field(eye, amount, a, b)
    assert np.diff(src, axis=0).min() > 0.0
    closed_src = b - blink_field(eye, 1.0, a, b)
    lower = eye.lower(a[0])
    at_lower = np.abs(b - lower[None, :]).argmin(axis=0)
    # closed: the lower lash line shows the upper lid's margin
    np.testing.assert_allclose(closed_src[at_lower, np.arange(a.shape[1])], eye.upper(a[0]), atol=2e-3)


@pytest.fixture(scope="module")
def large_face(tmp_path_factory):
    """A face filling a 1024 x 1024 frame (a shared portrait, upscaled), prepared."""
    img = cv2.imread(str(portrait("man_face_fills_frame_01.jpg")))
    img = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("blink") / "face_1024.png"
    cv2.imwrite(str(path), img)
    avatar = prepare(path, PrepareSettings(max_long_side=1024))
    assert avatar.frames.shape[1:3] == (1024, 1024)
    return avatar


def test_closed_eye_shows_only_skin_from_above_the_lid(large_face):
    """Render a blink of a row-coded image: above the closed lid's margin every output pixel
    must come from above the open upper lid, in order (a fold there shows the iris as a
    detached dark oval above the closed eye, issue 12)."""
    avatar = large_face
    lm = avatar.landmarks[0][:, :2]
    H, W = avatar.frames.shape[1:3]
    rows = np.arange(H, dtype=np.float64)
    for upper_idx, lower_idx, brow_idx in ((topo.EYE_L_UPPER, topo.EYE_L_LOWER, topo.BROW_L),
                                           (topo.EYE_R_UPPER, topo.EYE_R_LOWER, topo.BROW_R)):
        top, bottom = lm[brow_idx, 1].min() - 10, lm[lower_idx, 1].max() + 10
        k = 255.0 / (bottom - top)  # source row -> code, about 2 levels per pixel here
        code = np.clip((rows - top) * k, 0, 255)
        coded = replace(avatar, frames=np.repeat(np.round(code).astype(np.uint8)[None, :, None, None], W, 2)
                        .repeat(3, 3))
        frame = ClassicBackend().render(coded, np.zeros((1, 3), np.float32), np.zeros(1, int),
                                        idle=np.array([[1.0, 0, 0, 0]], np.float32))[0]
        upper, lower = lm[upper_idx], lm[lower_idx]
        x0, x1 = np.percentile(upper[:, 0], [30, 70])
        for x in range(int(x0), int(x1) + 1):
            lid_y = np.interp(x, *_by_x(upper))
            lash_y = np.interp(x, *_by_x(lower))
            brow_y = np.interp(x, *_by_x(lm[brow_idx]))
            column = frame[int(brow_y) + 2: int(lash_y - 0.3 * (lash_y - lid_y)), x, 1].astype(np.float64)
            src_rows = column / k + top
            assert src_rows.max() <= lid_y + 1.5, \
                f"x={x}: the closed lid shows source row {src_rows.max():.0f}, below the lid at {lid_y:.0f}"
            fold = float((np.maximum.accumulate(src_rows) - src_rows).max())  # px the map runs back
            assert fold < 1.0, f"x={x}: the lid's skin folds back over {fold:.1f} source rows"


def _by_x(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]
