"""Phone media end to end (issue 12 items 3-5): an EXIF-rotated photo and a display-matrix-rotated
video prepare upright avatars; a variable-frame-rate video avatar is timed by each frame's
timestamp (source_index, video stabilize keeps the clip's duration). Media made here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import portrait
from facecast.avatar.cache import AvatarCache
from facecast.avatar.prepare import prepare
from facecast.media.probe import probe
from support import synthetic as syn
from facecast.video.pipeline import VideoJob, run_job
from support.media import frame_index, jpeg_with_orientation, vfr_times, write_video

FACE = "man_glasses_01.jpg"
SIZE = 256  # px: side of the synthetic avatar frames


def _face(size: int = SIZE) -> np.ndarray:
    img = cv2.imread(str(portrait(FACE)), cv2.IMREAD_COLOR)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _stamped(face: np.ndarray, index: int) -> np.ndarray:
    """The face with `index` written as six black/white stripes in a 64x48 top-left corner patch
    (read back with media_factory.frame_index on that patch)."""
    img = face.copy()
    patch = np.zeros((48, 64, 3), np.uint8)
    for bit in range(6):
        if index >> (5 - bit) & 1:
            patch[:, (bit + 1) * 8: (bit + 2) * 8] = 255
    img[:48, :64] = patch
    return img


@pytest.fixture()
def cache(tmp_path):
    return AvatarCache(tmp_path / "cache")


def test_exif_rotated_photo_prepares_upright(tmp_path, cache):
    upright = _face()
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # what a phone stores for Orientation 6
    path = jpeg_with_orientation(tmp_path / "phone.jpg", stored, 6)
    avatar = prepare(path, cache=cache)
    assert avatar.frames.shape[1:3] == (SIZE, SIZE)
    assert np.abs(avatar.frames[0].astype(int) - upright).mean() < 6
    eyes = avatar.landmarks[0, [33, 263], :2]  # outer eye corners: level in an upright face
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.2 * abs(eyes[0, 0] - eyes[1, 0])


def test_rotated_phone_video_prepares_upright(tmp_path, cache):
    upright = _face()
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # display matrix -90: turn clockwise to show
    path = write_video(tmp_path / "phone.mp4", [stored] * 6, [i / 25 for i in range(6)], rotation=-90)
    avatar = prepare(path, cache=cache)
    assert avatar.is_video and avatar.frames.shape[1:3] == (SIZE, SIZE)
    assert np.abs(avatar.frames[0].astype(int) - upright).mean() < 8
    eyes = avatar.landmarks[0, [33, 263], :2]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.2 * abs(eyes[0, 0] - eyes[1, 0])


def test_variable_rate_avatar_is_timed_by_its_timestamps(tmp_path, cache):
    face = _face()
    path = write_video(tmp_path / "vfr.mp4", [_stamped(face, i) for i in range(60)], vfr_times())
    avatar = prepare(path, cache=cache)
    assert avatar.fps == pytest.approx(25.0) and avatar.frame_count == 100
    shown = [frame_index(avatar.frames[i, :48, :64]) for i in avatar.source_index(np.arange(100), 25)]
    # output frame f at 25 fps shows the source frame on screen at f / 25 s: 5 fps for 2 s, then 25 fps
    assert shown == [f // 5 if f < 50 else f - 40 for f in range(100)]
    at_30 = avatar.source_index(np.arange(120), 30)  # 4 s of output at 30 fps
    assert frame_index(avatar.frames[at_30[60], :48, :64]) == 10  # t = 2.0 s: the first fast frame
    assert frame_index(avatar.frames[at_30[30], :48, :64]) == 5  # t = 1.0 s


def test_video_stabilize_keeps_a_variable_rate_clip_duration(tmp_path):
    texture = syn.fabric(syn.data_dir() / "portraits", (192, 144))
    times = vfr_times()
    frames = [np.ascontiguousarray(np.roll(texture, int(2 * np.sin(i)), axis=1)) for i in range(len(times))]
    source = write_video(tmp_path / "vfr.mp4", frames, times)
    out = tmp_path / "steady.mp4"
    run_job(source, out, VideoJob(stabilize=True, ignore_person=False))
    video = probe(out).video
    assert video.duration == pytest.approx(probe(source).video.duration, abs=0.05)  # 4.0 s, not 60 / 15 fps
    assert video.frame_count == 100


def test_video_stabilize_turns_a_rotated_clip_upright(tmp_path):
    texture = syn.fabric(syn.data_dir() / "portraits", (192, 144))
    stored = [np.ascontiguousarray(np.rot90(texture, 1))] * 20
    source = write_video(tmp_path / "phone.mp4", stored, [i / 25 for i in range(20)], rotation=-90)
    out = tmp_path / "steady.mp4"
    run_job(source, out, VideoJob(stabilize=True, ignore_person=False))
    video = probe(out).video
    assert video.rotation == 0 and video.size == (192, 144)
