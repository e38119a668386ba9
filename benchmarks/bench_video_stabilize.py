"""Stabilisation bar: injected random shake + a deliberate pan; residual jitter <= 20% of the
injected jitter, the pan kept within 5%. Measured from pixels: each stabilised frame is
registered (ECC, not the tracker the stabiliser uses) to the frame the pan alone would show.

Run: python benchmarks/bench_video_stabilize.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: synthetic clips, metrics

from bench_video_all import machine, print_table  # noqa: E402

from support import metrics as M  # noqa: E402  (tests/support)
from support import synthetic as syn  # noqa: E402  (tests/support)
from facecast.video.pipeline import VideoJob, run_job  # noqa: E402
from facecast.video.stream import frames, probe  # noqa: E402

TITLE = ("Stabilisation: 320x240, 150 frames, pan 2 px/frame, shake 4 px + 0.5 deg (std), window 30, "
         "person masking on")
SIZE, N, PAN = (320, 240), 150, 2.0


def bar_rows(label: str, ideal, steady: list[np.ndarray], shake: np.ndarray) -> list[tuple[str, str, str, bool | None]]:
    """The bar rows of one clip: ideal and steady (N, H, W, 3) uint8 frames, shake (N, 3, 3) injected."""
    residual = np.array([M.register(a, b) for a, b in zip(ideal, steady)])
    jitter_in, jitter_out = M.jitter(shake, SIZE), M.jitter(residual, SIZE)
    drift_in, drift_out = M.deviation(shake, SIZE), M.deviation(residual, SIZE)
    c = M.corners(residual, SIZE)
    pan_error = abs((c[-1] - c[0])[:, 0].mean()) / (PAN * (N - 1))
    return [
        (f"{label}: residual frame-to-frame jitter / injected", f"{jitter_out:.2f} / {jitter_in:.2f} px = "
         f"{jitter_out / jitter_in:.1%}", "<= 20%", jitter_out <= 0.2 * jitter_in),
        (f"{label}: residual offset from the ideal path (incl. slow drift) / injected",
         f"{drift_out:.2f} / {drift_in:.2f} px = {drift_out / drift_in:.1%}", "-", None),
        (f"{label}: pan kept, error of the total pan", f"{pan_error:.2%} of {PAN * (N - 1):.0f} px", "<= 5%",
         pan_error <= 0.05),
    ]


def stabilised(folder: Path, name: str) -> tuple[list[np.ndarray], float]:
    """Stabilise folder/name.mp4 with the default job (person masking on): (frames, seconds)."""
    start = time.perf_counter()
    run_job(folder / f"{name}.mp4", folder / f"{name}.steady.mp4", VideoJob(stabilize=True))
    seconds = time.perf_counter() - start
    return list(frames(probe(folder / f"{name}.steady.mp4"))), seconds


def measure() -> list[tuple[str, str, str, bool | None]]:
    portraits = syn.data_dir() / "portraits"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mosaic = syn.shaky_clip(folder / "mosaic.mp4", portraits, n=N, size=SIZE, pan_px=PAN)
        person = syn.shaky_person_clip(folder / "person.mp4", portraits, n=N, size=SIZE, pan_px=PAN)
        steady_mosaic, seconds = stabilised(folder, "mosaic")
        steady_person, _ = stabilised(folder, "person")
    ideal = [syn.view(mosaic["scene"], p @ mosaic["base"], SIZE) for p in mosaic["pan"]]
    return [
        *bar_rows("portrait mosaic", ideal, steady_mosaic, mosaic["shake"]),
        *bar_rows("person over fabric, camera following them", person["truth"], steady_person, person["shake"]),
        ("speed, the mosaic clip (analysis with person masking + warp + encode)", f"{N / seconds:.0f} frames/s",
         "-", None),
        real_clip_speed(),
    ]


def real_clip_speed() -> tuple[str, str, str, None]:
    """Frames per second stabilising a real 700x700 talking clip (person masked out of tracking)."""
    clip = syn.data_dir() / "talking" / "man_suit_6s.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run_job(clip, Path(tmp) / "steady.mp4", VideoJob(stabilize=True))
        seconds = time.perf_counter() - start
    return (f"speed, {clip.name} (700x700, {report.frames} frames)", f"{report.frames / seconds:.0f} frames/s",
            "-", None)


if __name__ == "__main__":
    print(machine())
    print_table(TITLE, measure())
