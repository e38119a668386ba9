"""The background plate: what the scene looks like without the person.

A bounded, evenly spaced sample of frames is taken; in each, the person (selfie
segmentation, the maximum over the frame and its two neighbours, grown by a margin) is
masked out; the plate is the per-pixel median of what remains; pixels the person covered in
every sampled frame are inpainted (OpenCV Telea).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.errors import NoFaceFound
from facecast.types import Progress
from facecast.video.matte import PERSON_THRESHOLD, PersonSegmenter, grow, smooth3
from facecast.video.stream import VideoInfo, frames

DEFAULT_SAMPLES = 48  # frames the median is taken over (memory: samples x one frame)
PERSON_MARGIN = 0.015  # fraction of the long side the person mask grows by
INPAINT_RADIUS = 5  # px
BAND_ROWS = 32  # rows per median band (bounds the float working memory)
CONFIRM_FRAMES = 8  # sampled frames searched for a face or a body before the person mask is trusted


@dataclass(frozen=True)
class Plate:
    """image: (H, W, 3) uint8 BGR; holes: (H, W) bool, pixels never seen without the person
    (inpainted); samples: frames used; person_fraction: mean share of a sample covered by the person."""

    image: np.ndarray
    holes: np.ndarray
    samples: int
    person_fraction: float


def extract_plate(info: VideoInfo, *, samples: int = DEFAULT_SAMPLES, require_person: bool = True,
                  progress: Progress | None = None) -> Plate:
    """Estimate the background plate of a video (streams it once).

    Raises NoFaceFound when no sampled frame shows a person and `require_person` is set.
    """
    stack, masks = _sample(info, samples, progress)
    person = float(np.mean([m.mean() for m in masks]))
    if person > 0.0 and not person_confirmed(stack):  # segmentation alone also marks person-like shapes
        masks, person = [np.zeros_like(m) for m in masks], 0.0
    if require_person and person == 0.0:
        raise NoFaceFound(f"{info.path}: no person found in any sampled frame (no face or body, selfie "
                          "segmentation); there is nothing to remove from the background")
    image, count = masked_median(_stack_freeing(stack), ~np.stack(masks))
    holes = count == 0
    if holes.any():
        image = cv2.inpaint(image, holes.astype(np.uint8) * 255, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    return Plate(image, holes, len(stack), person)


def person_confirmed(stack: list[np.ndarray], checks: int = CONFIRM_FRAMES) -> bool:
    """Whether a face (face detection) or a body (pose) is seen in up to `checks` evenly spaced frames of
    `stack` ((H, W, 3) uint8 BGR each): selfie segmentation alone marks person-like shapes too."""
    from facecast.avatar.landmarks import FaceMesher
    from facecast.video.pose import PoseTracker

    picked = [stack[i] for i in sample_indices(len(stack), checks)]
    with FaceMesher(static=True) as mesher:
        if any(mesher.boxes(frame) for frame in picked):
            return True
    with PoseTracker(static=True) as tracker:
        return bool(tracker.track(picked).person.any())


def _stack_freeing(frames: list[np.ndarray]) -> np.ndarray:
    """np.stack of (H, W, 3) frames that drops each list item once copied, so the samples are
    held about once, not twice."""
    out = np.empty((len(frames),) + frames[0].shape, frames[0].dtype)
    for i in range(len(frames)):
        out[i] = frames[i]
        frames[i] = None
    return out


def sample_indices(frame_count: int, samples: int) -> np.ndarray:
    """Up to `samples` evenly spaced frame numbers in [0, frame_count)."""
    return np.unique(np.linspace(0, frame_count - 1, min(samples, frame_count)).round().astype(np.int64))


def _sample(info: VideoInfo, samples: int, progress: Progress | None) -> tuple[list, list]:
    """Sampled frames (H, W, 3) uint8 and their person masks (H, W) bool, streaming."""
    wanted = set(sample_indices(max(1, info.frame_count), samples).tolist())
    with PersonSegmenter() as segmenter:
        sampler = _Sampler(wanted, segmenter, int(PERSON_MARGIN * max(info.size)))
        for i, frame in enumerate(frames(info)):
            sampler.push(i, frame)
            if progress:
                progress(i + 1, max(info.frame_count, i + 1))
        sampler.finish()
    return sampler.frames, sampler.masks


class _Sampler:
    """Keeps the last three frames; a wanted frame is taken once its next neighbour arrives,
    with a person mask that is the maximum of its own and its neighbours' mattes."""

    def __init__(self, wanted: set[int], segmenter: PersonSegmenter, margin_px: int):
        self.wanted, self.segmenter, self.margin = wanted, segmenter, margin_px
        self.window: list[tuple[int, np.ndarray]] = []  # (index, frame), at most 3
        self.mattes: dict[int, np.ndarray] = {}
        self.frames: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []

    def push(self, index: int, frame: np.ndarray) -> None:
        self.window = (self.window + [(index, frame)])[-3:]
        self.mattes = {j: m for j, m in self.mattes.items() if j >= self.window[0][0]}
        if len(self.window) >= 2:
            self._take(len(self.window) - 2)

    def finish(self) -> None:
        if self.window:
            self._take(len(self.window) - 1)

    def _take(self, pos: int) -> None:
        index, frame = self.window[pos]
        if index not in self.wanted:
            return
        near = self.window[max(0, pos - 1): pos + 2]
        for j, f in near:
            if j not in self.mattes:
                self.mattes[j] = self.segmenter.matte(f)
        person = smooth3(np.stack([self.mattes[j] for j, _ in near]), "max")[0] > PERSON_THRESHOLD
        self.frames.append(frame)
        self.masks.append(grow(person, self.margin))
        self.wanted.discard(index)


def masked_median(stack: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median over samples where valid.

    stack: (S, H, W, 3) uint8; valid: (S, H, W) bool. Returns ((H, W, 3) uint8, with 0 where
    no sample is valid, and (H, W) int the number of valid samples).
    """
    s, h, w, _ = stack.shape
    out = np.zeros((h, w, 3), np.uint8)
    count = valid.sum(axis=0)
    for r0 in range(0, h, BAND_ROWS):
        r1 = min(h, r0 + BAND_ROWS)
        data = stack[:, r0:r1].astype(np.float32)
        data[~valid[:, r0:r1]] = np.nan
        data.sort(axis=0)  # NaN sorts last
        k = count[r0:r1][None, :, :, None]
        lo = np.take_along_axis(data, np.maximum(k - 1, 0) // 2, axis=0)[0]
        hi = np.take_along_axis(data, k // 2, axis=0)[0]
        band = np.nan_to_num((lo + hi) / 2.0, nan=0.0)
        out[r0:r1] = np.clip(band + 0.5, 0, 255).astype(np.uint8)
    return out, count
