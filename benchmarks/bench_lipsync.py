"""Lip-sync accuracy of the CPU default, measured with an independent landmark model.

For each clip in ../shared/data/talking: its first frame is the avatar and its own audio the
speech. dlib's 68-point predictor (not mediapipe, which renders) measures the inner-lip opening
per frame of the rendered and of the real video; we report Pearson r (best over +-3 frames of
lag), and the same for plain loudness (RMS dB per frame) against the real opening.
Bar (issue 2): above the loudness correlation on every clip, and >= 0.5 on average.

Needs (benchmark only): pip install dlib-bin face-recognition-models "setuptools<82"
Run: .venv/bin/python benchmarks/bench_lipsync.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lipmeasure import best_lag_correlation, lip_openings, rms_db_per_frame, video_fps  # noqa: E402

from facecast.audio.decode import load_audio  # noqa: E402
from facecast.avatar.prepare import prepare  # noqa: E402
from facecast.config import RenderSettings  # noqa: E402
from facecast.engine import Speech, render_to_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TALKING = REPO.parent / "shared" / "data" / "talking"


def first_frame(video: Path, out: Path) -> Path:
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
    cv2.imwrite(str(out), frame)
    return out


def evaluate(clip: Path, work: Path) -> dict:
    fps = int(round(video_fps(clip)))
    audio = load_audio(clip)
    avatar = prepare(first_frame(clip, work / f"{clip.stem}.png"))
    rendered = render_to_file(avatar, Speech(audio), work / f"{clip.stem}.mp4", RenderSettings(fps=fps))
    real = lip_openings(clip, cache_dir=work / "dlib")
    ours = lip_openings(rendered)
    n = min(len(real), len(ours))
    loud = rms_db_per_frame(audio, n, fps)
    r_ours, lag_ours = best_lag_correlation(ours[:n], real[:n])
    r_loud, _ = best_lag_correlation(loud[:n], real[:n])
    return {"clip": clip.name, "frames": n, "fps": fps, "r_loud": r_loud, "r_ours": r_ours, "lag": lag_ours}


def main() -> int:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in sorted(TALKING.glob("*.mp4")):
            rows.append(evaluate(clip, Path(tmp)))
    print("\n| clip | frames | r(loudness, real) | r(facecast, real) | lag (frames) | beats loudness |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {r['frames']} | {r['r_loud']:.3f} | {r['r_ours']:.3f} | {r['lag']:+d} | "
              f"{'yes' if r['r_ours'] > r['r_loud'] else 'NO'} |")
    mean_ours = np.mean([r["r_ours"] for r in rows])
    mean_loud = np.mean([r["r_loud"] for r in rows])
    ok = all(r["r_ours"] > r["r_loud"] for r in rows) and mean_ours >= 0.5
    print(f"| **mean** | | {mean_loud:.3f} | **{mean_ours:.3f}** | | bar: every clip, mean >= 0.5: {'PASS' if ok else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
