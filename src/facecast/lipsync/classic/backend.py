"""The CPU default backend: speech -> mouth parameters -> a mesh-driven warp of the
lower face with a synthesized inner mouth. Needs no GPU and no model download."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.avatar.model import Avatar
from facecast.compose import feathered_mask
from facecast.face.inner_mouth import MouthColors, paint_mouth
from facecast.face.warp import GRID_STEP, WarpGrid
from facecast.lipsync.base import FeatureStream, LipsyncBackend
from facecast.lipsync.classic.fields import (MouthShape, blink_field, head_weight, inner_lip_contours,
                                             mouth_field, sway_field, sway_forward)
from facecast.lipsync.classic.rig import FaceRig
from facecast.lru import LRU

MOUTH_COLUMNS = 3  # open, width, round
MASK_FEATHER_FACE_UNITS = 0.07  # inward feather of the lower-face mask
STATE_CACHE = 64  # source frames whose rigs are kept


@dataclass
class FrameState:
    """Everything the warp needs about one source frame, for one idle setting."""

    rig: FaceRig
    grid: WarpGrid
    lower_mask: np.ndarray  # (h, w) float32 on the coarse grid, 0 outside the lower face
    mouth_region: tuple[slice, slice]
    eye_regions: list[tuple[slice, slice]]
    colors: MouthColors
    head: np.ndarray | None = None  # (h, w) float64 head_weight on the coarse grid (idle only)


class ClassicBackend(LipsyncBackend):
    """Mesh-warp lip-sync for any face, on a CPU."""

    name = "classic"

    def __init__(self):
        self._states: LRU[tuple[str, int, bool], FrameState] = LRU(STATE_CACHE)

    # -- features ---------------------------------------------------------------
    def audio_features(self, audio, fps: int) -> np.ndarray:
        from facecast.audio.mouth import mouth_track

        return mouth_track(audio, fps)

    def text_features(self, phonemes, n_frames: int, fps: int) -> np.ndarray:
        from facecast.audio.visemes import phonemes_to_track

        return phonemes_to_track(phonemes, n_frames, fps)

    def stream_features(self, sample_rate: int, fps: int) -> FeatureStream:
        from facecast.audio.mouth import LIVE_LOOKAHEAD_HOPS, MouthStream

        return MouthStream(sample_rate, fps, LIVE_LOOKAHEAD_HOPS)

    def silence_features(self, n_frames: int) -> np.ndarray:
        return np.zeros((n_frames, MOUTH_COLUMNS), np.float32)

    # -- rendering ----------------------------------------------------------------
    def prepare(self, avatar: Avatar) -> None:
        """Nothing heavy to precompute: rigs are built on first use (a few ms)."""
        self._state(avatar, 0, idle=not avatar.is_video)

    def render(self, avatar: Avatar, features: np.ndarray, source_indices: np.ndarray, *,
               idle: np.ndarray | None = None) -> np.ndarray:
        """features: (B, 3) float32 open/width/round; source_indices: (B,) int source frames;
        idle: (B, 4) float32 blink/roll/shift rows from facecast.idle, or None.
        Returns (B, H, W, 3) uint8 BGR."""
        out = np.empty((len(source_indices),) + avatar.frames.shape[1:], np.uint8)
        for i, (row, src) in enumerate(zip(features, source_indices)):
            motion = None if idle is None else idle[i]
            out[i] = self.render_one(avatar, row, int(src), motion)
        return out

    def render_one(self, avatar: Avatar, row: np.ndarray, src: int, motion: np.ndarray | None) -> np.ndarray:
        """One frame: row (3,) mouth parameters, motion (4,) idle or None -> (H, W, 3) uint8."""
        state = self._state(avatar, src, idle=motion is not None)
        rig, grid = state.rig, state.grid
        shape = MouthShape(float(row[0]), float(row[1]), float(row[2]))
        da = np.zeros(grid.coarse_shape, np.float64)
        db = np.zeros(grid.coarse_shape, np.float64)
        rows, cols = state.mouth_region
        ma, mb = mouth_field(rig, shape, grid.a[rows, cols], grid.b[rows, cols])
        da[rows, cols] += ma * state.lower_mask[rows, cols]
        db[rows, cols] += mb * state.lower_mask[rows, cols]
        roll, shift = 0.0, (0.0, 0.0)
        if motion is not None:
            if motion[0] > 0:
                for eye, (er, ec) in zip(rig.eyes, state.eye_regions):
                    db[er, ec] += blink_field(eye, float(motion[0]), grid.a[er, ec], grid.b[er, ec])
            roll, shift = float(motion[1]), (float(motion[2]), float(motion[3]))
            sa, sb = sway_field(rig, roll, shift, grid.a, grid.b, state.head)
            da += sa
            db += sb
        source = avatar.frames[src]
        frame = source.copy()
        grid.apply(source, rig.frame.displacement_px(da, db), frame)
        upper, lower = inner_lip_contours(rig, shape)

        def to_image(ab: np.ndarray) -> np.ndarray:
            return rig.frame.to_image(sway_forward(rig, roll, shift, ab) if motion is not None else ab)

        paint_mouth(frame, rig.frame, upper, lower, state.colors, to_image)
        return frame

    def _state(self, avatar: Avatar, src: int, idle: bool) -> FrameState:
        key = (avatar.id, src, idle)
        state = self._states.get(key)
        if state is None:
            state = build_state(avatar, src, idle)
            self._states.put(key, state)
        return state


def build_state(avatar: Avatar, src: int, idle: bool) -> FrameState:
    """Rig, warp grid and masks of source frame `src`."""
    landmarks = avatar.landmarks[src]
    rig = FaceRig.from_landmarks(landmarks, avatar.lower_face[src])
    margin = 4 * GRID_STEP  # px around the polygon, so the mask's feather fits inside the grid
    lower_box = np.concatenate([rig.lower_face.min(0) - margin, rig.lower_face.max(0) + margin])
    box = rig.head_box() if idle else lower_box
    box = np.concatenate([np.minimum(box[:2], lower_box[:2]), np.maximum(box[2:], lower_box[2:])])
    grid = WarpGrid.over(box, avatar.size, rig.frame)
    coarse_poly = (rig.lower_face - [grid.x0, grid.y0]) / GRID_STEP
    feather = MASK_FEATHER_FACE_UNITS * rig.frame.scale / GRID_STEP  # coarse px
    mask = feathered_mask(coarse_poly, grid.coarse_shape, feather)
    # Upsampling spreads the field by up to a coarse pixel: keep that margin inside the polygon.
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    eye_regions = []
    for eye in rig.eyes:
        a0, a1 = eye.a_range
        corners = np.array([[a0, eye.brow_b], [a1, eye.brow_b],
                            [a0, eye.lower.b.max() + 0.08], [a1, eye.lower.b.max() + 0.08]])
        px = rig.frame.to_image(corners)
        eye_regions.append(grid.region(np.concatenate([px.min(0), px.max(0)])))
    head = head_weight(rig, grid.a, grid.b) if idle else None
    return FrameState(rig, grid, mask, grid.region(lower_box), eye_regions,
                      MouthColors.sample(avatar.frames[src], landmarks), head)

