"""The synthesized inner mouth (face/inner_mouth.py) on large faces: upper teeth fixed to
the skull, lower teeth riding on the jaw, a soft inner lip edge, a smiling source's own teeth
kept. The face here is 400 px between the outer eye corners (a face crop of ~600 px)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import portrait
from facecast.avatar.face_frame import FaceFrame
from facecast.avatar.prepare import prepare
from facecast.config import PrepareSettings
from facecast.face.inner_mouth import UPPER_LIP_SHARE
from facecast.lipsync.classic.fields import MouthShape, inner_lip_contours
from facecast.lipsync.classic import ClassicBackend
from facecast.face.inner_mouth import MouthColors, paint_mouth
from facecast.lipsync.classic.rig import FaceRig

SCALE = 400.0  # px per face unit
FACE = FaceFrame(np.array([400.0, 400.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), SCALE)
LIP = np.array([90.0, 100.0, 170.0], np.float32)  # BGR
COLORS = MouthColors(cavity=LIP * 0.3, tongue=LIP * 0.8, teeth=np.array([225.0, 230.0, 235.0], np.float32))
HALF = 0.25  # face units: half the mouth width


def edges(gap: float, samples: int = 33) -> tuple[np.ndarray, np.ndarray]:
    """Inner-lip edges (upper, lower) of a mouth opened by `gap` face units at its centre,
    the way fields.py opens it: the lips part about a contact line fixed to the skull, the
    upper lip taking UPPER_LIP_SHARE of the opening."""
    a = np.linspace(-HALF, HALF, samples)
    contact = 0.03 * (a / HALF) ** 2  # a slight smile
    profile = np.clip(1.0 - (a / HALF) ** 2, 0.0, 1.0) ** 0.4
    g = gap * profile
    return np.stack([a, contact - UPPER_LIP_SHARE * g], 1), np.stack([a, contact + (1 - UPPER_LIP_SHARE) * g], 1)


def painted(gap: float) -> np.ndarray:
    """Luma (H, W) float of the mouth painted on a flat lip-coloured canvas."""
    canvas = np.empty((800, 800, 3), np.uint8)
    canvas[:] = np.round(LIP).astype(np.uint8)
    upper, lower = edges(gap)
    paint_mouth(canvas, FACE, upper, lower, COLORS, FACE.to_image)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY).astype(np.float64)


def column(luma: np.ndarray, a: float) -> np.ndarray:
    return luma[:, int(round(FACE.to_image(np.array([a, 0.0]))[0]))]


def row_of(b: float) -> float:
    return float(FACE.to_image(np.array([0.0, b]))[1])


def test_upper_teeth_stay_with_the_skull_as_the_jaw_opens():
    incisal = []
    for gap in (0.08, 0.16, 0.24):
        upper, lower = edges(gap)
        col = column(painted(gap), 0.0)
        top, bottom = int(np.ceil(row_of(upper[16, 1]))), int(row_of(lower[16, 1]))
        inner = col[top:bottom]
        assert inner[: int(0.02 * SCALE)].max() > 160, "no upper teeth under the upper lip"
        incisal.append(top + int(np.argmin(np.diff(inner))))  # teeth -> dark: the incisal edge
    lip_moved = UPPER_LIP_SHARE * (0.24 - 0.08) * SCALE
    assert lip_moved > 9  # the upper lip rises ~10 px ...
    assert max(incisal) - min(incisal) <= 1.5, incisal  # ... the teeth stay (fixed to the skull)


def test_lower_teeth_ride_on_the_jaw():
    above_lip = []
    for gap in (0.14, 0.19, 0.24):
        upper, lower = edges(gap)
        col = column(painted(gap), 0.0)
        bottom = int(row_of(lower[16, 1]))
        band = col[bottom - int(0.05 * SCALE): bottom]
        rise = int(np.argmax(np.diff(band)))  # dark cavity/tongue -> bright lower teeth
        assert band[rise + 2: rise + 6].mean() - band[:rise].min() > 40, "no lower teeth"
        above_lip.append(len(band) - rise)
    # the jaw dropped 0.1 face units = 40 px; the lower teeth kept their place on it
    assert max(above_lip) - min(above_lip) <= 1.5, above_lip


def test_inner_lip_edge_is_soft():
    gap = 0.2
    upper, lower = edges(gap)
    luma = painted(gap)
    for a in (-0.2, 0.15, 0.2):  # where the dark inside meets the lower lip
        k = int(np.argmin(np.abs(upper[:, 0] - a)))
        col = column(luma, upper[k, 0])
        bottom = row_of(lower[k, 1])
        profile = col[int(bottom - 0.02 * SCALE): int(bottom + 0.01 * SCALE)]  # inside -> lower lip
        contrast = profile.max() - profile.min()
        assert contrast > 30
        step = np.abs(np.diff(profile)).max()
        assert step < 0.4 * contrast, f"a={a}: a {step:.0f} step of a {contrast:.0f} edge"


def test_closed_mouth_paints_nothing():
    canvas = np.full((800, 800, 3), 120, np.uint8)
    upper, lower = edges(0.0)
    paint_mouth(canvas, FACE, upper, lower, COLORS, FACE.to_image)
    assert (canvas == 120).all()


@pytest.fixture(scope="module")
def smiling(tmp_path_factory):
    """woman_frontal_lowres_01.png (smiling, upper teeth showing) at 4x: face ~260 px."""
    img = cv2.imread(str(portrait("woman_frontal_lowres_01.png")))
    img = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("smile") / "smile.png"
    cv2.imwrite(str(path), img)
    return prepare(path, PrepareSettings(max_long_side=max(img.shape[:2])))


def test_smiling_source_keeps_its_own_teeth(smiling):
    avatar = smiling
    rig = FaceRig.from_landmarks(avatar.landmarks[0])
    shape = MouthShape(0.9, 0.0, 0.0)
    frame = ClassicBackend().render(avatar, np.array([[shape.open, 0, 0]], np.float32), np.zeros(1, int))[0]
    out_upper, _ = inner_lip_contours(rig, shape)
    a = np.linspace(rig.mouth_center_a - 0.35 * rig.mouth_half_width,
                    rig.mouth_center_a + 0.35 * rig.mouth_half_width, 15)
    t = np.linspace(0.015, 0.08, 12)  # face units under the upper lip: the source shows 0.1 of teeth
    src_b = rig.lip_upper(a)[None, :] + t[:, None]
    out_b = np.interp(a, out_upper[:, 0], out_upper[:, 1])[None, :] + t[:, None]

    def sample(img, bs):
        px = rig.frame.to_image(np.stack([np.broadcast_to(a, bs.shape), bs], -1))
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return cv2.remap(grey, px[..., 0].astype(np.float32), px[..., 1].astype(np.float32), cv2.INTER_LINEAR)

    source, output = sample(avatar.frames[0], src_b), sample(frame, out_b)
    assert np.abs(output - source).mean() < 12, np.abs(output - source).mean()
    assert MouthColors.sample(avatar.frames[0], avatar.landmarks[0]).own_teeth > 0.09
