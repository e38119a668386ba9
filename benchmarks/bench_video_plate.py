"""Background plate bar: a person moving over a known background; plate PSNR >= 30 dB.

Run: python benchmarks/bench_video_plate.py
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
from facecast.video.plate import extract_plate  # noqa: E402
from facecast.video.stream import frames, probe  # noqa: E402

TITLE = "Background plate: 320x240, 60 frames, a real person (cut out) over fabric, centre covered 60% of the time"


def measure() -> list[tuple[str, str, str, bool | None]]:
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "sway.mp4"
        background = syn.plate_clip(clip, syn.data_dir() / "portraits", n=60, size=(320, 240))
        start = time.perf_counter()
        plate = extract_plate(probe(clip))
        seconds = time.perf_counter() - start
        plain = np.median(np.stack(list(frames(probe(clip)))), axis=0).astype(np.uint8)
    value = M.psnr(plate.image, background)
    return [
        ("plate PSNR vs the known background", f"{value:.1f} dB", ">= 30 dB", value >= 30.0),
        ("plain temporal median, no person mask (for comparison)", f"{M.psnr(plain, background):.1f} dB", "-", None),
        ("inpainted share of the plate", f"{plate.holes.mean():.1%}", "-", None),
        ("time (48 samples, selfie segmentation on 3 frames each)", f"{seconds:.1f} s", "-", None),
    ]


if __name__ == "__main__":
    print(machine())
    print_table(TITLE, measure())
