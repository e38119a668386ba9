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

from facecast.deps import require_mediapipe  # noqa: E402

mp = require_mediapipe()

N_LANDMARKS = 478
MAX_FACES = 8  # faces the mesh looks for when a frame shows several
_lock = threading.Lock()


class FaceMesher:
    """Finds the chosen face of a frame and returns its mesh.

    Use `static=True` for unrelated images, `static=False` for the frames of one
    video (mediapipe then tracks from frame to frame). Not thread-safe: one per thread.
    face: which face when a frame shows several: None = the largest, N = the N-th from the left
    (0-based, by the centre of its box). In a video the face chosen on the first frame is followed:
    each later frame takes the face nearest to the previous one.
    """

    def __init__(self, *, static: bool = True, min_confidence: float = 0.3, face: int | None = None):
        self._static, self._min_confidence, self._face = static, min_confidence, face
        self._mesh = None  # built on the first frame: one face, or several when the frame shows several
        self._previous: np.ndarray | None = None  # (2,) px centre of the face chosen last (video)
        with _lock, quiet_native_stderr():
            self._detectors = [
                mp.solutions.face_detection.FaceDetection(model_selection=sel, min_detection_confidence=min_confidence)
                for sel in (0, 1)
            ]
            for det in self._detectors:
                settle(det)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
        for det in self._detectors:
            det.close()

    def __enter__(self) -> "FaceMesher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """Face mesh of the chosen face in `frame` (H, W, 3) uint8 BGR (see the class).

        Returns (478, 3) float32 pixel coordinates (x, y, z; z scaled like x) or None.
        Tries the whole frame, then a padded crop around a face detection
        (small or off-centre faces), so faces at the border work.
        Raises NoFaceFound when `face` asks for a face beyond those found in a still image.
        """
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if self._mesh is None:
            self._mesh = self._build(rgb)
        meshes = self._meshes(rgb)
        if self._face is not None and self._previous is None:  # by index: count the detector's faces
            box = self.detect(frame, rgb)
            if box is None:
                return None
            centre = 0.5 * (box[:2] + box[2:])
            inside = [m for m in meshes if _contains(box_of(m), centre)]
            pts = inside[0] if inside else self._mesh_in_box(rgb, box)
        elif meshes:
            pts = meshes[self._pick([box_of(m) for m in meshes])]
        else:
            box = self.detect(frame, rgb)
            pts = None if box is None else self._mesh_in_box(rgb, box)
        return None if pts is None else self._remember(pts)

    def detect(self, frame: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray | None:
        """Box (4,) float32 x0, y0, x1, y1 in pixels of the chosen face (see the class), or None."""
        boxes = self.boxes(frame, rgb)
        return boxes[self._pick(boxes, strict=True)] if boxes else None

    def boxes(self, frame: np.ndarray, rgb: np.ndarray | None = None) -> list[np.ndarray]:
        """Every detected face's box (4,) float32 x0, y0, x1, y1 in pixels (the short-range model's
        faces, else the full-range model's)."""
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if rgb is None else rgb
        h, w = rgb.shape[:2]
        for det in self._detectors:
            with quiet_native_stderr():
                result = det.process(rgb)
            found = []
            for d in result.detections or []:
                bb = d.location_data.relative_bounding_box
                found.append(np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w,
                                       (bb.ymin + bb.height) * h], np.float32))
            if found:
                return found
        return []

    def _build(self, rgb: np.ndarray):
        """The face mesh graph: tracking several faces only when asked for one by index or when the
        first frame shows several (one face keeps mediapipe's faster single-face tracking)."""
        many = self._face is not None or len(self.boxes(rgb, rgb)) > 1
        with _lock, quiet_native_stderr():
            mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=self._static,
                max_num_faces=MAX_FACES if many else 1,
                refine_landmarks=True,
                min_detection_confidence=self._min_confidence,
                min_tracking_confidence=0.5,
            )
            settle(mesh)
        return mesh

    def _pick(self, boxes: list[np.ndarray], strict: bool = False) -> int:
        """Index of the chosen face among `boxes` ((4,) px each, not empty): the one nearest the face
        chosen before (video), else the largest, or with `strict` the `face`-th from the left
        (NoFaceFound when there are fewer)."""
        centres = [0.5 * (b[:2] + b[2:]) for b in boxes]
        if self._previous is not None:  # a video: follow the face chosen before
            return int(np.argmin([np.linalg.norm(c - self._previous) for c in centres]))
        if self._face is None or not strict:
            return int(np.argmax([_area(b) for b in boxes]))
        if self._face >= len(boxes):
            from facecast.errors import NoFaceFound

            raise NoFaceFound(f"--face {self._face}: only {len(boxes)} face(s) found (indices 0.."
                              f"{len(boxes) - 1}, from the left)")
        return int(np.argsort([c[0] for c in centres], kind="stable")[self._face])

    def _remember(self, pts: np.ndarray) -> np.ndarray:
        if not self._static:
            self._previous = 0.5 * (pts[:, :2].min(0) + pts[:, :2].max(0))
        return pts

    def _meshes(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Every face mesh the face-mesh graph finds in `rgb`: (478, 3) float32 px each."""
        with quiet_native_stderr():
            result = self._mesh.process(rgb)
        h, w = rgb.shape[:2]
        return [np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float32)
                for face in result.multi_face_landmarks or []]

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
        meshes = self._meshes(crop)
        if not meshes:
            return None
        pts = max(meshes, key=lambda m: _area(box_of(m)))  # the face the crop is centred on
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
    except (AttributeError, OSError, ValueError):  # sys.stderr replaced (captured): native code still writes to 2
        fd = 2
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


def settle(solution) -> None:
    """Wait until a mediapipe solution's graph has opened all its calculators, so their start-up
    warnings (absl, written by graph threads after the constructor returns) fall inside
    `quiet_native_stderr` instead of reaching the user's terminal later."""
    graph = getattr(solution, "_graph", None)
    wait = getattr(graph, "wait_until_idle", None)
    if wait is not None:
        wait()


def box_of(landmarks: np.ndarray) -> np.ndarray:
    """Bounding box (4,) float32 of a mesh (478, 2+)."""
    xy = landmarks[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)


def _contains(box: np.ndarray, point: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))
