"""Motion transfer of the live portrait, measured by an independent landmark model (dlib, 68 points).

Each talking clip drives a portrait offline (facecast.portrait.offline.animate_file); dlib then
measures, frame by frame, the inner-lip opening and a head-yaw proxy on the driver and on the
rendered video, and the table gives their Pearson correlations (lag 0, plus the best lag in
+-2 frames). The "ceiling" columns correlate dlib with facecast's own (mediapipe, unfiltered)
measure on the driver itself: where the two landmark models disagree about the driver, no
rendering can score higher. Benchmark-only dependencies:
pip install dlib-bin face-recognition-models "setuptools<82".

usage: python benchmarks/bench_portrait_motion.py [--avatar PORTRAIT ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lipmeasure  # noqa: E402  (the shared dlib helpers of the benchmarks)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_AVATARS = ("woman_frontal_slight_turn_01.jpg", "man_webcam_offcenter_01.jpg")


def dlib_tracks(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per frame on the video's regular grid: (inner-lip opening / eye distance, yaw proxy).

    The yaw proxy is (left - right) / (left + right) of the nose tip's distances to the two
    sides of the jaw outline along the eye line: 0 frontal, +-1 in full profile.
    """
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(lipmeasure._predictor_path())
    times, rows, box = [], [], None
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray")
            box = lipmeasure._detect(detector, gray) or box
            times.append(float(frame.time))
            rows.append((np.nan, np.nan) if box is None else _measure(predictor(gray, box)))
    fps = lipmeasure.video_fps(video)
    values = np.array(rows, float)
    return tuple(lipmeasure._regular_grid(np.array(times), values[:, c], fps) for c in range(2))


def _measure(shape) -> tuple[float, float]:
    pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], float)
    opening = lipmeasure._shape(shape)[0]
    across = pts[45] - pts[36]
    across /= max(np.linalg.norm(across), 1e-6)
    left, right = (pts[30] - pts[0]) @ across, (pts[16] - pts[30]) @ across
    return opening, float((left - right) / max(left + right, 1e-6))


def tracker_tracks(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """facecast's unfiltered driver measures on the video's regular grid: (mouth opening since
    the most closed mouth, face units; yaw, degrees)."""
    from facecast.portrait.driver import DriverTracker
    from facecast.portrait.tracking import FaceTracker

    tracker, faces, times, rows = DriverTracker(), FaceTracker(), [], []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            pts = faces.landmarks(frame.to_ndarray(format="bgr24"))
            if pts is None:
                continue
            tracker.update(pts, float(frame.time))
            raw = tracker._measure(pts.astype(np.float64))
            times.append(float(frame.time))
            rows.append((raw.mouth_gap, raw.angles[0]))
    faces.close()
    values = np.array(rows)
    fps = lipmeasure.video_fps(video)
    return tuple(lipmeasure._regular_grid(np.array(times), values[:, c], fps) for c in range(2))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def run(avatars: list[str], out_dir: Path) -> list[dict]:
    from facecast.portrait.offline import animate_file
    from facecast.portrait.source import load_avatar, still_of

    rows = []
    ceilings = {}
    for clip in sorted((DATA / "talking").glob("*.mp4")):
        (d_open, d_yaw), (t_open, t_yaw) = dlib_tracks(clip), tracker_tracks(clip)
        ceilings[clip.name] = (pearson(d_open, t_open), abs(pearson(d_yaw, t_yaw)))  # yaw signs differ by convention
    for avatar_name in avatars:
        avatar = still_of(load_avatar(DATA / "portraits" / avatar_name))
        for clip in sorted((DATA / "talking").glob("*.mp4")):
            out = out_dir / f"{Path(avatar_name).stem}__{clip.stem}.mp4"
            start = time.perf_counter()
            animate_file(avatar, clip, out)
            took = time.perf_counter() - start
            d_open, d_yaw = dlib_tracks(clip)
            r_open, r_yaw = dlib_tracks(out)
            rows.append({
                "avatar": avatar_name, "driver": clip.name, "frames": len(r_open),
                "mouth_r": pearson(d_open, r_open), "mouth_best": lipmeasure.best_lag_correlation(d_open, r_open, 2),
                "yaw_r": pearson(d_yaw, r_yaw), "yaw_best": lipmeasure.best_lag_correlation(d_yaw, r_yaw, 2),
                "yaw_range": float(np.ptp(d_yaw)), "open_range": float(np.ptp(d_open)), "render_s": took,
                "ceiling": ceilings[clip.name],
            })
            print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['avatar']} | {r['driver']} | {r['frames']} | {r['mouth_r']:.3f} "
            f"({r['mouth_best'][0]:.3f} @ {r['mouth_best'][1]:+d}) | {r['yaw_r']:.3f} "
            f"({r['yaw_best'][0]:.3f} @ {r['yaw_best'][1]:+d}) | {r['ceiling'][0]:.3f} | {r['ceiling'][1]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", action="append", help="portrait file name in shared/data/portraits "
                        "(default: woman_frontal_slight_turn_01.jpg and man_webcam_offcenter_01.jpg)")
    parser.add_argument("--out", type=Path, help="keep the rendered videos here (default: a temporary folder)")
    args = parser.parse_args()
    print("| avatar | driver | frames | mouth r (best lag) | yaw r (best lag) | ceiling mouth | ceiling yaw |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = run(args.avatar or list(DEFAULT_AVATARS), out_dir)
    print(f"\nmean mouth r {np.mean([r['mouth_r'] for r in rows]):.3f}, "
          f"min {min(r['mouth_r'] for r in rows):.3f}; mean yaw r {np.mean([r['yaw_r'] for r in rows]):.3f}, "
          f"min {min(r['yaw_r'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
