"""Avatar preparation: every portrait, video avatars, the cache, faces at the border, bad input."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from conftest import portrait, talking
from facecast.avatar.cache import AvatarCache
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
    for _ in range(5):
        start = time.perf_counter()
        again = prepare(source, cache=cache)
        times.append(time.perf_counter() - start)
    assert again.id == first.id
    np.testing.assert_array_equal(again.landmarks, first.landmarks)
    assert min(times) < 0.05  # the bar (20 ms) is measured by benchmarks/bench_speed.py


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
