"""Motion transfer of the live portrait, measured by an independent landmark model (dlib, 68 points).

Each talking clip drives a portrait offline (facecast.portrait.offline.animate_file); dlib then
measures, frame by frame, the inner-lip opening and the head yaw on the driver and on the
rendered video, and the table gives their Pearson correlations (lag 0, plus the best lag in
+-2 frames). Yaw is measured twice: in degrees by solvePnP of the rigid dlib points against a
generic 3D face (headpose.py), and by the older 2D proxy (nose tip between the jaw sides). The
"ceiling" columns correlate dlib with facecast's own (mediapipe, unfiltered) measure on the
driver itself. Each driver is also measured mirrored left-right: dlib on the mirror image against
dlib on the original is the measure's own repeatability on that clip, the most that a perfect
copy of the motion in other pixels could score. Landmarks: lipmeasure.DlibFaces. Benchmark-only dependencies:
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
import headpose  # noqa: E402  (head pose from dlib's points)
import lipmeasure  # noqa: E402  (the shared dlib helpers of the benchmarks)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_AVATARS = ("woman_frontal_slight_turn_01.jpg", "man_webcam_offcenter_01.jpg")


def dlib_tracks(video: Path, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame on the video's regular grid, each (N,): inner-lip opening / eye distance, yaw
    proxy, and yaw in degrees (headpose.head_angles; > 0: the face turns toward image-left).
    Landmarks: lipmeasure.DlibFaces (box placed from the last frame's points, 18 boxes averaged).
    mirrored: measure the left-right mirror image of each frame instead (the yaw and the proxy
    then change sign: they are returned with the sign turned back).

    The yaw proxy is (left - right) / (left + right) of the nose tip's distances to the two
    sides of the jaw outline along the eye line: 0 frontal, +-1 in full profile (> 0: the face
    turns toward image-right).
    """
    faces, times, rows = lipmeasure.DlibFaces(), [], []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray")
            if mirrored:
                gray = np.ascontiguousarray(gray[:, ::-1])
            pts = faces.points(gray)
            times.append(float(frame.time))
            rows.append((np.nan,) * 3 if pts is None else _measure(pts, gray.shape))
    fps = lipmeasure.video_fps(video)
    values = np.array(rows, float)
    if mirrored:
        values[:, 1:] *= -1.0
    return tuple(lipmeasure._regular_grid(np.array(times), values[:, c], fps) for c in range(3))


def _measure(pts: np.ndarray, image_shape: tuple) -> tuple[float, float, float]:
    """(opening, yaw proxy, PnP yaw degrees) of dlib points (68, 2) px in an image of `image_shape` (h, w)."""
    opening = lipmeasure.mouth_of(pts)[0]
    across = pts[45] - pts[36]
    across /= max(np.linalg.norm(across), 1e-6)
    left, right = (pts[30] - pts[0]) @ across, (pts[16] - pts[30]) @ across
    yaw = headpose.head_angles(pts, image_shape[1], image_shape[0])[0]
    return opening, float((left - right) / max(left + right, 1e-6)), float(yaw)


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

    rows, ceilings, drivers = [], {}, {}
    for clip in sorted((DATA / "talking").glob("*.mp4")):
        drivers[clip.name] = dlib_tracks(clip)
        (d_open, d_proxy, d_yaw), (t_open, t_yaw) = drivers[clip.name], tracker_tracks(clip)
        m_open, _, m_yaw = dlib_tracks(clip, mirrored=True)
        ceilings[clip.name] = (pearson(d_open, t_open), pearson(d_yaw, t_yaw),
                               -pearson(d_proxy, t_yaw))  # the proxy's sign is the other way round
        print(f"driver {clip.name}: yaw peak to peak {np.ptp(d_yaw):.1f} deg, SD {np.std(d_yaw):.2f} (dlib PnP), "
              f"{np.ptp(t_yaw):.1f} deg (facecast); ceilings mouth {ceilings[clip.name][0]:.3f}, "
              f"yaw PnP {ceilings[clip.name][1]:.3f}, yaw proxy {ceilings[clip.name][2]:.3f}; dlib on the "
              f"mirrored driver against dlib on the driver: mouth {pearson(d_open, m_open):.3f}, "
              f"yaw PnP {pearson(d_yaw, m_yaw):.3f}", flush=True)
    print("| avatar | driver | frames | mouth r (best lag) | yaw r, PnP (best lag) | yaw r, proxy | "
          "yaw peak to peak, driver / render (deg) | ceiling mouth | ceiling yaw PnP | ceiling yaw proxy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for avatar_name in avatars:
        avatar = still_of(load_avatar(DATA / "portraits" / avatar_name))
        for clip in sorted((DATA / "talking").glob("*.mp4")):
            out = out_dir / f"{Path(avatar_name).stem}__{clip.stem}.mp4"
            start = time.perf_counter()
            animate_file(avatar, clip, out)
            took = time.perf_counter() - start
            d_open, d_proxy, d_yaw = drivers[clip.name]
            r_open, r_proxy, r_yaw = dlib_tracks(out)
            rows.append({
                "avatar": avatar_name, "driver": clip.name, "frames": len(r_open),
                "mouth_r": pearson(d_open, r_open), "mouth_best": lipmeasure.best_lag_correlation(d_open, r_open, 2),
                "yaw_r": pearson(d_yaw, r_yaw), "yaw_best": lipmeasure.best_lag_correlation(d_yaw, r_yaw, 2),
                "proxy_r": pearson(d_proxy, r_proxy), "yaw_range": float(np.ptp(d_yaw)),
                "render_yaw_range": float(np.ptp(r_yaw)), "open_range": float(np.ptp(d_open)), "render_s": took,
                "ceiling": ceilings[clip.name],
            })
            print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['avatar']} | {r['driver']} | {r['frames']} | {r['mouth_r']:.3f} "
            f"({r['mouth_best'][0]:.3f} @ {r['mouth_best'][1]:+d}) | {r['yaw_r']:.3f} "
            f"({r['yaw_best'][0]:.3f} @ {r['yaw_best'][1]:+d}) | {r['proxy_r']:.3f} | {r['yaw_range']:.1f} / "
            f"{r['render_yaw_range']:.1f} | {r['ceiling'][0]:.3f} | {r['ceiling'][1]:.3f} | {r['ceiling'][2]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", action="append", help="portrait file name in shared/data/portraits "
                        "(default: woman_frontal_slight_turn_01.jpg and man_webcam_offcenter_01.jpg)")
    parser.add_argument("--out", type=Path, help="keep the rendered videos here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = run(args.avatar or list(DEFAULT_AVATARS), out_dir)
    print(f"\nmean mouth r {np.mean([r['mouth_r'] for r in rows]):.3f}, "
          f"min {min(r['mouth_r'] for r in rows):.3f}; mean yaw r {np.mean([r['yaw_r'] for r in rows]):.3f}, "
          f"min {min(r['yaw_r'] for r in rows):.3f}; mean yaw proxy r {np.mean([r['proxy_r'] for r in rows]):.3f}")


if __name__ == "__main__":
    main()
