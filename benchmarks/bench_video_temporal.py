"""Temporal-consistency bar: flicker in the mouth region lower with flow-guided blending than
without on a noisy sequence; no ghosting when the mouth moves fast.

Run: python benchmarks/bench_video_temporal.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: synthetic clips, metrics

from bench_video_all import machine, print_table  # noqa: E402

from support import metrics as M  # noqa: E402  (tests/support)
from support import synthetic as syn  # noqa: E402  (tests/support)
from facecast.video.temporal import FlowBlender, TemporalSettings  # noqa: E402

TITLE = "Temporal consistency: 200x200 face crop, white noise std 8, 100x100 mouth region, DIS flow"


def run(frames: np.ndarray, box, settings: TemporalSettings = TemporalSettings()) -> np.ndarray:
    blender = FlowBlender(settings)
    return np.stack([blender(f, box) for f in frames])


def measure() -> list[tuple[str, str, str, bool | None]]:
    portraits = syn.data_dir() / "portraits"
    clean, noisy, box = syn.noisy_mouth(portraits, n=60)
    start = time.perf_counter()
    smooth = run(noisy, box)
    ms = (time.perf_counter() - start) / len(noisy) * 1000
    f_raw, f_ours = M.flicker(noisy, box), M.flicker(smooth, box)
    clean_f, noisy_f, box_f = syn.noisy_mouth(portraits, n=60, fast=True)
    moved = np.abs(np.diff(clean_f.astype(int), axis=0)).max(axis=3) > 40

    def ghost(frames):
        return np.abs(frames[1:].astype(float) - clean_f[1:]).max(axis=3)[moved].mean()

    g_raw, g_ours = ghost(noisy_f), ghost(run(noisy_f, box_f))
    g_naive = ghost(run(noisy_f, box_f, TemporalSettings(tolerance=1e9)))
    return [
        ("mouth flicker: with / without blending", f"{f_ours:.2f} / {f_raw:.2f} grey levels "
         f"({1 - f_ours / f_raw:.0%} lower)", "lower with", f_ours < f_raw),
        ("fast mouth motion, error where it moved: with / without", f"{g_ours:.1f} / {g_raw:.1f} grey levels",
         "no ghosting (with <= without)", g_ours <= g_raw),
        ("same, blending that ignores disagreement (ghosts)", f"{g_naive:.1f} grey levels", "-", None),
        ("cost per frame (100x100 region)", f"{ms:.1f} ms", "-", None),
    ]


if __name__ == "__main__":
    print(machine())
    print_table(TITLE, measure())
