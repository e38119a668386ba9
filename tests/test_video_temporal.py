"""Temporal consistency: less flicker on a noisy sequence, no ghosting on fast motion, reset."""

from __future__ import annotations

import numpy as np
import pytest
from support import metrics as M
from support import synthetic as syn

from facecast.errors import InvalidArgument
from facecast.video.temporal import FlowBlender, TemporalSettings, blend_weight

PORTRAITS = syn.data_dir() / "portraits"


def run(frames: np.ndarray, box, settings: TemporalSettings = TemporalSettings()) -> np.ndarray:
    blender = FlowBlender(settings)
    return np.stack([blender(f, box) for f in frames])


@pytest.mark.parametrize("flow", ["dis", "farneback"])
def test_flicker_lower_with_blending(flow):
    clean, noisy, box = syn.noisy_mouth(PORTRAITS, n=20)
    out = run(noisy, box, TemporalSettings(flow=flow))
    assert M.flicker(out, box) < 0.6 * M.flicker(noisy, box)
    assert M.psnr(out[-1], clean[-1]) > M.psnr(noisy[-1], clean[-1])  # closer to the truth, not just smoother


def test_no_ghosting_on_fast_mouth_motion():
    clean, noisy, box = syn.noisy_mouth(PORTRAITS, n=24, fast=True)
    ours = run(noisy, box)
    naive = run(noisy, box, TemporalSettings(tolerance=1e9))  # blends whatever the flow says
    moved = np.abs(np.diff(clean.astype(int), axis=0)).max(axis=3) > 40  # pixels the mouth left or reached

    def error(frames):
        return np.abs(frames[1:].astype(float) - clean[1:]).max(axis=3)[moved].mean()

    assert error(ours) <= error(noisy)  # no worse than doing nothing where it moves
    assert error(naive) > 1.5 * error(ours)  # the test can see ghosts


def test_outside_the_region_is_untouched():
    _, noisy, box = syn.noisy_mouth(PORTRAITS, n=5)
    out = run(noisy, box)
    x0, y0, x1, y1 = box
    assert np.array_equal(out[:, :10], noisy[:, :10]) and np.array_equal(out[:, :, :10], noisy[:, :, :10])


def test_reset_starts_fresh():
    _, noisy, box = syn.noisy_mouth(PORTRAITS, n=4)
    blender = FlowBlender()
    for f in noisy[:3]:
        blender(f, box)
    blender.reset()
    assert np.array_equal(blender(noisy[3], box), noisy[3])


def test_weight_drops_where_frames_disagree():
    diff = np.zeros((20, 20, 3), np.float32)
    diff[:, 10:] = 80.0
    w = blend_weight(diff, TemporalSettings(strength=0.6, tolerance=10.0))
    assert w[10, 2] == pytest.approx(0.6) and w[10, 18] < 1e-3


def test_settings_are_checked():
    with pytest.raises(InvalidArgument, match="strength"):
        TemporalSettings(strength=1.5)
    with pytest.raises(InvalidArgument, match="flow"):
        TemporalSettings(flow="magic")
