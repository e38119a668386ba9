"""Measure how far a real (or rendered) face opens its mouth, frame by frame, with dlib's 68 points.

Benchmark-only: needs `pip install dlib-bin face-recognition-models "setuptools<82"`.
The inner-lip opening of a frame is the mean distance of landmark pairs (61,67), (62,66), (63,65)
divided by the eye-corner distance (36 to 45), so it does not depend on the face's size in pixels.

Landmarks come from DlibFaces: dlib's shape predictor starts from its mean shape placed in a face
box, so its 68 points move with the box. A fresh detection per frame jitters the box by several
per cent of its size from frame to frame (SD 19 px on a 720 px clip whose head hardly moves), and
that jitter shows up as landmark motion that is not in the image. DlibFaces places the box from
the previous frame's rigid points instead (eye corners and nose, which move with the skull) and
averages the predictor's points over 18 boxes shifted and scaled around it, so the points follow
the face, not the box.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import av
import numpy as np

from facecast.audio.pcm import Audio

_INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
_EYE_CORNERS = (36, 45)
_MOUTH_CORNERS = (48, 54)
_DETECT_WIDTH = 360  # px: frames are shrunk to this width for face detection only


def video_fps(video_path: str | Path) -> float:
    """Nominal frame rate of the first video stream (frames per second)."""
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        return float(stream.base_rate or stream.average_rate)


def lip_openings(video_path: str | Path, cache_dir: str | Path | None = None) -> np.ndarray:
    """Inner-lip opening per frame on the video's regular frame grid.

    Returns (N,) float64, N = last frame index + 1 at video_fps(); index i is time i / fps.
    Frames missing from a variable-frame-rate file, or without a detected face, are filled by
    linear interpolation. cache_dir: optional folder for a .npy cache keyed by the file's bytes.
    """
    return mouth_shapes(video_path, cache_dir)[:, 0]


def mouth_shapes(video_path: str | Path, cache_dir: str | Path | None = None) -> np.ndarray:
    """Per frame [inner-lip opening, mouth-corner width (48 to 54)], both / eye-corner distance.

    Returns (N, 2) float64 on the same grid as lip_openings.
    """
    cache = _cache_path(video_path, cache_dir)
    if cache is not None and cache.exists():
        return np.load(cache)
    times, values = _measure_frames(video_path)
    fps = video_fps(video_path)
    grid = np.stack([_regular_grid(times, values[:, c], fps) for c in range(2)], axis=1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, grid)
    return grid


def best_lag_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    """Highest Pearson r of a[i] against b[i + lag] over lag in [-max_lag, max_lag].

    a, b: (N,) and (M,) float; compared over their common length. Returns (r, lag in frames).
    """
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], float), np.asarray(b[:n], float)
    best = (-np.inf, 0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[: n - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: n + lag])
        if len(x) > 2 and x.std() > 0 and y.std() > 0:
            r = float(np.corrcoef(x, y)[0, 1])
            best = max(best, (r, lag))
    return best


def rms_db_per_frame(audio: Audio, n_frames: int, fps: float) -> np.ndarray:
    """RMS level of each video frame's audio samples: (n_frames,) float64 in dBFS (floor -100)."""
    out = np.full(n_frames, -100.0)
    x = audio.samples.astype(np.float64)
    for f in range(n_frames):
        start = int(round(f * audio.sample_rate / fps))
        stop = int(round((f + 1) * audio.sample_rate / fps))
        chunk = x[start:stop]
        if chunk.size:
            out[f] = max(-100.0, 10.0 * np.log10(np.mean(chunk**2) + 1e-10))
    return out


def _measure_frames(video_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(times s (T,), [opening, width] (T, 2)) of every decoded frame; NaN where no face."""
    faces = DlibFaces()
    times, values = [], []
    with av.open(str(video_path)) as container:
        for frame in container.decode(video=0):
            pts = faces.points(frame.to_ndarray(format="gray"))
            times.append(float(frame.time))
            values.append((np.nan, np.nan) if pts is None else mouth_of(pts))
    return np.array(times), np.array(values, dtype=float).reshape(-1, 2)


class DlibFaces:
    """dlib's 68 landmarks of the largest face, frame after frame of one video (module docstring).

    The first frame's box is a detection; each later box is placed from the previous frame's
    rigid points (centre and eye-corner distance, in the same relation to the box as on the
    frame where it was detected). A detection whose centre is further than RESET_SHARE of the
    box width from the placed box's (another face, or tracking gone astray) starts over from it.
    """

    RIGID = np.array([27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45])  # nose and eye corners
    JITTER = [(dx, dy, s) for dx in (-0.04, 0.0, 0.04) for dy in (-0.04, 0.0, 0.04) for s in (0.95, 1.05)]
    RESET_SHARE = 0.25

    def __init__(self):
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(_predictor_path())
        self._box: tuple[float, float, float] | None = None  # centre x, y and width, px
        self._relation: tuple[np.ndarray, float] | None = None  # box centre - rigid centre; width / eye distance

    def points(self, gray: np.ndarray) -> np.ndarray | None:
        """(68, 2) float64 px of the face in `gray` (H, W) uint8, or None when none is found."""
        found = _detect(self._detector, gray)
        if found is not None:
            cx, cy, w = (found.left() + found.right()) / 2, (found.top() + found.bottom()) / 2, found.width()
            if self._box is None or np.hypot(cx - self._box[0], cy - self._box[1]) > self.RESET_SHARE * w:
                self._box, self._relation = (cx, cy, float(w)), None
        if self._box is None:
            return None
        pts = self._averaged(gray, *self._box)
        centre, eyes = pts[self.RIGID].mean(0), float(np.linalg.norm(pts[45] - pts[36]))
        if self._relation is None:
            self._relation = (np.array(self._box[:2]) - centre, self._box[2] / max(eyes, 1e-6))
        offset, ratio = self._relation
        self._box = (float(centre[0] + offset[0]), float(centre[1] + offset[1]), ratio * eyes)
        return pts

    def _averaged(self, gray: np.ndarray, cx: float, cy: float, w: float) -> np.ndarray:
        """(68, 2) mean of the predictor's points over the JITTER boxes around (cx, cy, w)."""
        acc = np.zeros((68, 2))
        for dx, dy, s in self.JITTER:
            x, y, half = cx + dx * w, cy + dy * w, s * w / 2
            box = self._dlib.rectangle(int(round(x - half)), int(round(y - half)),
                                       int(round(x + half)), int(round(y + half)))
            shape = self._predictor(gray, box)
            acc += [(shape.part(i).x, shape.part(i).y) for i in range(68)]
        return acc / len(self.JITTER)


def _predictor_path() -> str:
    """shape_predictor_68_face_landmarks.dat of the face_recognition_models package.

    Its __init__ imports pkg_resources, which setuptools >= 82 no longer ships; then the file is
    found next to the package without importing it.
    """
    try:
        import face_recognition_models

        return face_recognition_models.pose_predictor_model_location()
    except ImportError:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise
        root = Path(list(spec.submodule_search_locations)[0])
        return str(root / "models" / "shape_predictor_68_face_landmarks.dat")


def _detect(detector, gray: np.ndarray):
    """Largest face as a dlib.rectangle in full-resolution pixels, or None."""
    import dlib

    scale = min(1.0, _DETECT_WIDTH / gray.shape[1])
    small = gray[:: int(round(1 / scale)), :: int(round(1 / scale))] if scale < 1 else gray
    step = gray.shape[1] / small.shape[1]
    faces = detector(np.ascontiguousarray(small), 1)
    if not faces:
        return None
    f = max(faces, key=lambda r: r.area())
    return dlib.rectangle(
        int(f.left() * step), int(f.top() * step), int(f.right() * step), int(f.bottom() * step)
    )


def mouth_of(pts: np.ndarray) -> tuple[float, float]:
    """(inner-lip opening, mouth width) of dlib points (68, 2) px, each / the eye-corner distance."""
    gaps = [np.linalg.norm(pts[i] - pts[j]) for i, j in _INNER_LIP_PAIRS]
    eye = max(np.linalg.norm(pts[_EYE_CORNERS[0]] - pts[_EYE_CORNERS[1]]), 1e-6)
    width = np.linalg.norm(pts[_MOUTH_CORNERS[0]] - pts[_MOUTH_CORNERS[1]])
    return float(np.mean(gaps) / eye), float(width / eye)


def _regular_grid(times: np.ndarray, values: np.ndarray, fps: float) -> np.ndarray:
    """Place per-frame values at round(t * fps) and interpolate holes (missing frames, NaNs)."""
    idx = np.round(times * fps).astype(int)
    grid = np.full(idx.max() + 1, np.nan)
    grid[idx] = values
    known = np.flatnonzero(~np.isnan(grid))
    if known.size == 0:
        raise RuntimeError("no face found in any frame")
    return np.interp(np.arange(grid.size), known, grid[known])


def _cache_path(video_path: str | Path, cache_dir: str | Path | None) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha1(Path(video_path).read_bytes()).hexdigest()[:16]
    return Path(cache_dir) / f"mouth2_{Path(video_path).stem}_{digest}.npy"  # 2: DlibFaces
