"""Which estimate of a driver's head yaw does the image support? Three landmark-based estimates
and one image-based check, per talking clip, frame by frame (every decoded frame, no grid).

Yaw estimates (degrees, > 0: the face turns toward image-left):
  facecast  the driver's own measure: 3D similarity fit of mediapipe's skull points from the
            first frame (portrait/driver.py), unfiltered;
  mp PnP    cv2.solvePnP (SQPnP) of mediapipe's 2D points of 14 rigid points (nose ridge, tip,
            nostrils, subnasale, eye corners) against the first frame's own mesh as the 3D model,
            relative to the first frame: the 2D projection only, no per-frame z;
  dlib PnP  the motion benchmark's measure (headpose.py: dlib's 15 rigid points, generic face;
            landmarks from lipmeasure.DlibFaces).
Image check: how far the nose tip moves sideways against the midpoint of the inner eye corners
(px along the eye line), by each landmark model and by pyramidal Lucas-Kanade optical flow of
the image itself (each frame tracked from the first frame, 41 px windows, starting from
mediapipe's first-frame points). The flow follows the skin's texture, not a face model.

usage: python benchmarks/bench_driver_yaw.py  (about a minute; needs dlib as bench_portrait_motion.py)
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np

from facecast.portrait.pose import euler_deg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import headpose  # noqa: E402
import lipmeasure  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MP_RIGID = np.array([168, 6, 197, 195, 5, 4, 1, 98, 327, 2, 33, 133, 362, 263])
# (nose tip, inner eye corners) in each model
MP_NOSE, DLIB_NOSE = (1, 133, 362), (30, 39, 42)
FLOW_WINDOW = (41, 41)


def solve(model: np.ndarray, image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(3, 3) rotation of `model` (N, 3) seen at `image` (N, 2) px by a pinhole camera, f = width."""
    camera = np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])
    _, rvec, _ = cv2.solvePnP(model, np.ascontiguousarray(image, np.float64), camera, None,
                              flags=cv2.SOLVEPNP_SQPNP)
    return cv2.Rodrigues(rvec)[0]


def sideways(points: np.ndarray, nose: int, left: int, right: int) -> np.ndarray:
    """(T,) px: the nose point's offset from the inner-eye-corner midpoint along the eye line."""
    mid = (points[:, left] + points[:, right]) / 2
    axis = points[:, right] - points[:, left]
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return ((points[:, nose] - mid) * axis).sum(1)


def clip_tracks(clip: Path) -> dict:
    """Per decoded frame of `clip`: the three yaw estimates and the three nose-tip offsets."""
    from facecast.portrait.driver import DriverTracker
    from facecast.portrait.tracking import FaceTracker

    faces, driver, dlib_faces = FaceTracker(), DriverTracker(), lipmeasure.DlibFaces()
    grays, meshes, dlib_pts, yaw_fc = [], [], [], []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray")
            mesh = faces.landmarks(frame.to_ndarray(format="bgr24"))
            points = dlib_faces.points(gray)
            if mesh is None or points is None:
                continue
            mesh = mesh.astype(np.float64)
            driver.update(mesh, float(frame.time))
            yaw_fc.append(driver._measure(mesh).angles[0])
            dlib_pts.append(points)
            meshes.append(mesh)
            grays.append(gray)
    faces.close()
    meshes, dlib_pts = np.array(meshes), np.array(dlib_pts, np.float64)
    height, width = grays[0].shape

    model = meshes[0][MP_RIGID] - meshes[0][MP_RIGID].mean(0)
    first = solve(model, meshes[0][MP_RIGID, :2], width, height)
    yaw_mp = [euler_deg(solve(model, m[MP_RIGID, :2], width, height) @ first.T)[0] for m in meshes]
    yaw_dlib = [headpose.head_angles(p, width, height)[0] for p in dlib_pts]

    start = meshes[0][list(MP_NOSE), :2].astype(np.float32)
    flow, guess = [], start.copy()
    for gray in grays:
        guess, _, _ = cv2.calcOpticalFlowPyrLK(grays[0], gray, start, guess.copy(), winSize=FLOW_WINDOW,
                                               maxLevel=3, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        flow.append(guess.copy())
    return {
        "yaw": {"facecast": np.array(yaw_fc), "mp PnP": np.array(yaw_mp), "dlib PnP": np.array(yaw_dlib)},
        "nose": {"image flow": sideways(np.array(flow, np.float64), 0, 1, 2),
                 "mediapipe": sideways(meshes[..., :2], *MP_NOSE), "dlib": sideways(dlib_pts, *DLIB_NOSE)},
    }


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    print("| driver | frames | yaw p-p facecast / mp PnP / dlib PnP (deg) | r facecast-mp PnP | "
          "r facecast-dlib | r mp PnP-dlib | nose tip sideways p-p, image flow / mediapipe / dlib (px) | "
          "r flow-mediapipe | r flow-dlib |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clip in sorted((DATA / "talking").glob("*.mp4")):
        t = clip_tracks(clip)
        fc, mp, dl = t["yaw"].values()
        flow, mesh, dnose = t["nose"].values()
        print(f"| {clip.stem} | {len(fc)} | {np.ptp(fc):.1f} / {np.ptp(mp):.1f} / {np.ptp(dl):.1f} | "
              f"{pearson(fc, mp):.3f} | {pearson(fc, dl):.3f} | {pearson(mp, dl):.3f} | "
              f"{np.ptp(flow):.1f} / {np.ptp(mesh):.1f} / {np.ptp(dnose):.1f} | "
              f"{pearson(flow, mesh):.3f} | {pearson(flow, dnose):.3f} |", flush=True)


if __name__ == "__main__":
    main()
