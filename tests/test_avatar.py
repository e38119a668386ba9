"""Avatar preparation: every portrait, video avatars, the cache, faces at the border, bad input."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import portrait, speech, talking
from facecast.avatar.cache import AvatarCache
from facecast.avatar.model import Avatar
from facecast.avatar.prepare import prepare
from facecast.config import PrepareSettings
from facecast.errors import CorruptMedia, NoFaceFound, UnsupportedMedia


@pytest.fixture()
def cache(tmp_path):
    return AvatarCache(tmp_path / "cache")


def test_every_portrait_prepares(portraits, cache):
    for path in portraits:
        avatar = prepare(path, cache=cache)
        assert avatar.frames.shape[0] == 1
        h, w = avatar.frames.shape[1:3]
        assert h % 2 == 0 and w % 2 == 0 and max(h, w) <= 1024
        assert avatar.landmarks.shape == (1, 478, 3)
        x0, y0, x1, y1 = avatar.boxes[0]
        assert x1 - x0 > 10 and y1 - y0 > 10, path.name
        assert avatar.face_scale() > 10, path.name
        assert avatar.lower_face.shape[0] == 1 and avatar.mouth.shape == (1, 20, 2)
        lips = avatar.landmarks[0, 13, :2]
        assert cv2.pointPolygonTest(avatar.lower_face[0], tuple(map(float, lips)), False) > 0, path.name
        assert cv2.pointPolygonTest(avatar.mouth[0], tuple(map(float, lips)), False) > 0, path.name


def test_second_prepare_loads_from_cache_quickly(cache):
    source = portrait("man_glasses_01.jpg")
    first = prepare(source, cache=cache)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        again = prepare(source, cache=cache)
        times.append(time.perf_counter() - start)
    assert again.id == first.id
    np.testing.assert_array_equal(again.landmarks, first.landmarks)
    np.testing.assert_array_equal(again.frames, first.frames)
    # The bar for a cached image avatar: <= 20 ms (about 1 ms here; preparing afresh takes 50 ms or more).
    # The best of ten loads, so a busy machine's worst moments do not count.
    assert min(times) <= 0.020, f"cached preparation took {min(times) * 1000:.1f} ms at best"


def test_cache_key_depends_on_settings(cache):
    source = portrait("man_glasses_01.jpg")
    a = prepare(source, cache=cache)
    b = prepare(source, PrepareSettings(max_long_side=512), cache=cache)
    assert a.id != b.id
    assert max(b.size) == 512
    assert {e["id"] for e in cache.list()} == {a.id, b.id}


def test_faces_at_the_border(cache):
    for name in ("woman_face_near_left_edge_01.jpg", "man_head_turned_up_01.jpg", "man_face_fills_frame_01.jpg"):
        avatar = prepare(portrait(name), cache=cache)
        pts = avatar.landmarks[0, :, :2]
        # The mesh may reach past the frame; preparation must keep it and not crash.
        assert np.isfinite(pts).all()


def test_face_cut_by_the_border_prepares_and_renders(tmp_path, cache):
    from facecast.audio.decode import load_audio
    from facecast.audio.pcm import Audio
    from facecast.avatar.masks import rasterize
    from facecast.engine import Speech, render_to_file
    from facecast.lipsync.classic import ClassicBackend
    from facecast.lipsync.classic.rig import FaceRig
    from probe import probe

    image = cv2.imread(str(portrait("man_face_fills_frame_01.jpg")))
    cut = tmp_path / "cut.png"
    cv2.imwrite(str(cut), image[100:610, 200:680])  # the left cheek and the chin run off the frame
    avatar = prepare(cut, cache=cache)
    width, height = avatar.size
    pts = avatar.landmarks[0, :, :2]
    assert pts[:, 0].min() < -10 and pts[:, 1].max() > height + 5, "the face is not cut by the border"
    assert avatar.lower_face[0][:, 1].max() > height  # so is the region the mouth may change

    backend = ClassicBackend()
    shapes = np.array([[0, 0, 0], [1, 1, 0], [1, -1, 1]], np.float32)  # closed, wide open, rounded
    source = avatar.frames[0]
    still = backend.render(avatar, shapes, np.zeros(3, int))
    outside = ~rasterize(avatar.lower_face[0], (height, width))
    for frame in still:
        np.testing.assert_array_equal(frame[outside], source[outside])
    assert np.abs(still[1].astype(int) - source).max() > 40  # the mouth did open
    # Idle life reaches further (the whole head, past the frame on two sides): only the head changes.
    sway = np.array([[1.0, 1.2, 0.01, 0.006], [0.0, -1.2, -0.01, -0.006], [0.5, 0.8, 0.0, 0.006]], np.float32)
    moving = backend.render(avatar, shapes, np.zeros(3, int), idle=sway)
    x0, y0, x1, y1 = np.round(FaceRig.from_landmarks(avatar.landmarks[0]).head_box()).astype(int)
    head = np.zeros((height, width), bool)
    head[max(0, y0 - 2): y1 + 2, max(0, x0 - 2): x1 + 2] = True
    assert head[:, 0].any() and head[-1].any()  # the head box is clipped by the frame
    for frame in moving:
        np.testing.assert_array_equal(frame[~head], source[~head])

    audio = load_audio(speech("ru_01_6s.wav"))
    audio = Audio(audio.samples[: int(1.5 * audio.sample_rate)], audio.sample_rate)
    p = probe(render_to_file(avatar, Speech(audio), tmp_path / "cut.mp4"))
    assert p.size == avatar.size and abs(p.frames - audio.duration * 25) <= 1


def test_video_avatar(cache):
    avatar = prepare(talking("woman_glasses_5s.mp4"), cache=cache)
    assert avatar.is_video and avatar.frame_count > 100
    assert avatar.fps == pytest.approx(25, abs=0.5)
    # Boxes are smoothed: frame-to-frame box motion is small relative to the box.
    size = avatar.boxes[:, 2] - avatar.boxes[:, 0]
    step = np.abs(np.diff(avatar.boxes, axis=0)).max(axis=1)
    assert np.percentile(step / size[1:], 95) < 0.03
    loop = avatar.source_index(np.arange(3 * avatar.frame_count))
    n = avatar.frame_count
    assert loop[n - 1] == n - 1 and loop[n] == n - 2 and loop[2 * n - 2] == 0  # forward, then backward


def test_no_face_is_a_clear_error_and_caches_nothing(tmp_path, cache):
    import cv2

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 180, np.uint8))
    with pytest.raises(NoFaceFound, match="wall.png"):
        prepare(blank, cache=cache)
    assert cache.list() == []


@pytest.mark.parametrize("content, error", [
    (b"this is just text, not a picture", UnsupportedMedia),
    (b"", UnsupportedMedia),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 64, CorruptMedia),
    (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, CorruptMedia),
])
def test_bad_files(tmp_path, cache, content, error):
    bad = tmp_path / "portrait.jpg"
    bad.write_bytes(content)
    with pytest.raises(error, match="portrait.jpg"):
        prepare(bad, cache=cache)
    assert cache.list() == []


def test_audio_file_is_not_an_avatar(cache, data_dir):
    with pytest.raises(UnsupportedMedia, match="en_radio_address_01_8s.wav"):
        prepare(data_dir / "speech" / "en_radio_address_01_8s.wav", cache=cache)


def _bare_video_avatar(frames: int, fps: float) -> Avatar:
    """An Avatar of `frames` tiny black frames at `fps`, for the source-frame mapping alone."""
    zeros = np.zeros
    return Avatar(id="t", name="t.mp4", frames=zeros((frames, 2, 2, 3), np.uint8),
                  landmarks=zeros((frames, 478, 3), np.float32), boxes=zeros((frames, 4), np.float32),
                  lower_face=zeros((frames, 4, 2), np.float32), mouth=zeros((frames, 20, 2), np.float32),
                  fps=fps, cache_dir=Path("."))


def test_video_avatar_plays_at_its_own_speed():
    # A 30 fps source rendered at 25 fps: output second k shows source second k, looping
    # forward then backward over the source's own 4 s (120 frames).
    avatar = _bare_video_avatar(120, 30.0)
    out = np.arange(0, 8 * 25 + 1)
    src = avatar.source_index(out, 25.0)
    assert src[25] == 30 and src[50] == 60 and src[75] == 90
    steps = np.abs(np.diff(src))
    assert set(steps) <= {0, 1, 2} and np.count_nonzero(steps == 0) <= 2  # skips one in six; holds only at a turn
    turn = int(np.argmax(src))
    assert src[turn] >= 118 and abs(turn - 119 * 25 / 30) <= 1  # the turn comes after 4 s (frame 119 may be skipped)
    assert src[-1] == 240 % 238  # 8 s = 240 source frames: the period is 238, so frame 2 again
    # Same rate: one source frame per output frame, as without a rate.
    same = _bare_video_avatar(120, 25.0)
    assert np.array_equal(same.source_index(out, 25.0), same.source_index(out))
