"""Face detection and the 478-point face mesh (mediapipe, models shipped in its wheel)."""

from __future__ import annotations

import contextlib
import os
import threading

import cv2
import numpy as np

from facecast.compose import safe_crop

os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's C++ logging quiet
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from facecast.deps import require  # noqa: E402

mp = require("mediapipe")

N_LANDMARKS = 478
_lock = threading.Lock()


class FaceMesher:
    """Finds one face per frame and returns its mesh.

    Use `static=True` for unrelated images, `static=False` for the frames of one
    video (mediapipe then tracks from frame to frame). Not thread-safe: one per thread.
    """

    def __init__(self, *, static: bool = True, min_confidence: float = 0.3):
        with _lock, quiet_native_stderr():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=0.5,
            )
            self._detectors = [
                mp.solutions.face_detection.FaceDetection(model_selection=sel, min_detection_confidence=min_confidence)
                for sel in (0, 1)
            ]

    def close(self) -> None:
        self._mesh.close()
        for det in self._detectors:
            det.close()

    def __enter__(self) -> "FaceMesher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """Face mesh of the largest face in `frame` (H, W, 3) uint8 BGR.

        Returns (478, 3) float32 pixel coordinates (x, y, z; z scaled like x) or None.
        Tries the whole frame, then a padded crop around a face detection
        (small or off-centre faces), so faces at the border work.
        """
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        pts = self._mesh_of(rgb)
        if pts is not None:
            return pts
        box = self.detect(frame, rgb)
        if box is None:
            return None
        return self._mesh_in_box(rgb, box)

    def detect(self, frame: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray | None:
        """Largest face box (4,) float32 x0, y0, x1, y1 in pixels, or None."""
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if rgb is None else rgb
        h, w = rgb.shape[:2]
        best = None
        for det in self._detectors:
            with quiet_native_stderr():
                result = det.process(rgb)
            for d in result.detections or []:
                bb = d.location_data.relative_bounding_box
                box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h], np.float32)
                if best is None or _area(box) > _area(best):
                    best = box
            if best is not None:
                return best
        return None

    def _mesh_of(self, rgb: np.ndarray) -> np.ndarray | None:
        with quiet_native_stderr():
            result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        lm = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * w, p.y * h, p.z * w) for p in lm], dtype=np.float32)

    def _mesh_in_box(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Run the mesh on a square crop 2.2x the box, padded where it leaves the frame."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = 1.1 * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        side = int(round(2 * half))
        crop = safe_crop(rgb, x0, y0, side, side)
        scale = 256.0 / side if side < 256 else 1.0
        if scale != 1.0:
            crop = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
        pts = self._mesh_of(crop)
        if pts is None:
            return None
        pts /= scale
        pts[:, 0] += x0
        pts[:, 1] += y0
        return pts


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence native (C++) writes to stderr while mediapipe builds its graphs; its
    start-up warnings are not actionable. Python-level stderr is left alone."""
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def box_of(landmarks: np.ndarray) -> np.ndarray:
    """Bounding box (4,) float32 of a mesh (478, 2+)."""
    xy = landmarks[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))
