"""The avatar cache: compressed video frames, size limit with LRU eviction, stale temporary
folders, damaged entries rebuilt. Every test uses its own cache folder."""

from __future__ import annotations

import json
import os
import time

import av
import cv2
import numpy as np
import pytest
from conftest import portrait

from facecast.avatar.cache import AvatarCache, enforce_limit, sweep_stale
from facecast.avatar.frame_store import BLOB, INDEX, DamagedFrames, FrameStore, write_frames
from facecast.avatar.prepare import prepare
from facecast.errors import InvalidArgument, NotFound
from facecast.lru import LRU


def _face_clip(path, frames: int = 8, side: int = 256):
    """A short 25 fps video of a portrait, the camera panning 4 px per frame."""
    image = cv2.resize(cv2.imread(str(portrait("man_webcam_offcenter_01.jpg"))), (side + 4 * frames, side + 40))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for k in range(frames):
            frame = np.ascontiguousarray(image[20:20 + side, 4 * k: 4 * k + side])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    return path


def _decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="bgr24") for f in container.decode(video=0)])


@pytest.fixture
def cache(tmp_path):
    return AvatarCache(tmp_path / "cache")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _face_clip(tmp_path_factory.mktemp("clip") / "face.mp4")


def test_video_avatar_frames_are_stored_compressed_and_decode_close_to_the_source(cache, clip):
    avatar = prepare(clip, cache=cache)
    source = _decoded(clip)
    assert avatar.frame_count == len(source) and avatar.frames.shape == source.shape
    assert not (avatar.cache_dir / "frames.npy").exists()
    stored = (avatar.cache_dir / BLOB).stat().st_size
    assert stored < source.nbytes / 4, (stored, source.nbytes)
    frames = np.asarray(avatar.frames)
    assert np.abs(frames.astype(int) - source).mean() < 1.5
    # indexed like the array it replaces
    np.testing.assert_array_equal(avatar.frames[3], frames[3])
    np.testing.assert_array_equal(avatar.frames[[5, 1]], frames[[5, 1]])
    np.testing.assert_array_equal(avatar.frames[2:4], frames[2:4])
    np.testing.assert_array_equal(avatar.frames[:, 10:20, 5:9], frames[:, 10:20, 5:9])
    keep = np.zeros(frames.shape[1:3], bool)
    keep[::7, ::5] = True
    np.testing.assert_array_equal(avatar.frames[:, keep], frames[:, keep])
    assert not avatar.frames[0].flags.writeable
    # a photo stays a plain array (the fast path)
    photo = prepare(portrait("man_glasses_01.jpg"), cache=cache)
    assert isinstance(photo.frames, np.ndarray) and photo.frames.shape[0] == 1


def test_frame_store_reads_any_order_with_a_bounded_decode_cache(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (64, 96, 3), np.uint8), (0, 0), 3) for _ in range(40)]
    assert write_frames(tmp_path, frames) == 40
    store = FrameStore(tmp_path, 40, cache_mb=10 * frames[0].nbytes / 2**20)
    order = list(range(40)) + list(range(38, -1, -1)) + [7, 33, 0]  # forward, backward, jumps
    for i in order:
        assert np.abs(store[i].astype(int) - frames[i]).mean() < 2
    assert store._lru.total <= 10 * frames[0].nbytes
    with pytest.raises(IndexError):
        store[40]
    with pytest.raises(DamagedFrames):
        FrameStore(tmp_path, 41)  # not the count the metadata says


def test_lru_keeps_the_most_recently_used_within_its_capacity():
    lru = LRU(10, cost=len)
    lru.put("a", "xxxx")
    lru.put("b", "xxxx")
    assert lru.get("a") == "xxxx"  # a is now the most recent
    lru.put("c", "xxxx")  # 12 > 10: b goes
    assert "b" not in lru and "a" in lru and "c" in lru and lru.total == 8
    lru.put("d", "x" * 20)  # larger than the capacity: kept alone
    assert len(lru) == 1 and lru.get("d")


def _damage_truncate_frames(folder):
    blob = folder / BLOB
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])


def _damage_meta(folder):
    (folder / "meta.json").write_text('{"name": "x", "frames": ')


def _damage_missing_landmarks(folder):
    (folder / "landmarks.npy").unlink()


def _damage_index(folder):
    (folder / INDEX).write_bytes(b"not numpy")


@pytest.mark.parametrize("damage", [_damage_truncate_frames, _damage_meta, _damage_missing_landmarks, _damage_index])
def test_a_damaged_entry_is_rebuilt_by_the_next_prepare(cache, clip, damage):
    from facecast.engine import Speech, render_to_file
    from facecast.audio.pcm import Audio

    first = prepare(clip, cache=cache)
    expected = np.asarray(first.frames)
    damage(first.cache_dir)
    again = prepare(clip, cache=cache)  # before the fix: a traceback here, on every later call
    assert again.id == first.id
    np.testing.assert_array_equal(np.asarray(again.frames), expected)
    assert json.loads((again.cache_dir / "meta.json").read_text())["frames"] == len(expected)
    out = render_to_file(again, Speech(Audio(np.zeros(16000, np.float32), 16000)), cache.root.parent / "o.mp4")
    assert len(_decoded(out)) == 25
    # loading by id alone (no source to rebuild from) says what happened, once
    damage(again.cache_dir)
    with pytest.raises(NotFound, match="damaged"):
        cache.load(again.id)
    assert not again.cache_dir.exists()


def test_a_damaged_photo_entry_is_rebuilt(cache):
    first = prepare(portrait("man_glasses_01.jpg"), cache=cache)
    frames = first.cache_dir / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:1000])
    again = prepare(portrait("man_glasses_01.jpg"), cache=cache)
    np.testing.assert_array_equal(again.frames, first.frames)


def test_stale_temporary_folders_are_removed_at_start_and_fresh_ones_kept(tmp_path):
    base = tmp_path / "cache"
    old = time.time() - 2 * 86400
    stale = []
    for kind in ("avatars", "video"):
        folder = base / kind / f".{'a' * 24}-killed"
        folder.mkdir(parents=True)
        (folder / "frames.jpgs").write_bytes(b"\xff" * 4096)
        os.utime(folder / "frames.jpgs", (old, old))
        os.utime(folder, (old, old))
        stale.append(folder)
    fresh = base / "avatars" / f".{'b' * 24}-running"
    fresh.mkdir()
    (fresh / "frames.jpgs").write_bytes(b"\xff")
    finished = base / "avatars" / ("c" * 24)
    finished.mkdir()
    os.utime(finished, (old, old))
    AvatarCache(base)  # what a process (CLI or server) does when it starts
    assert not any(f.exists() for f in stale)
    assert fresh.exists() and finished.exists()
    assert sweep_stale(base) == []  # once per process and root


def _store(cache, key, seed, side=160):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (4, side, side, 3), np.uint8)  # noise: JPEG cannot shrink it much
    marks = np.zeros((4, 478, 3), np.float32)
    return cache.store(key, key, frames, marks, np.zeros((4, 4), np.float32),
                       {"lower_face": np.zeros((4, 8, 2), np.float32), "mouth": np.zeros((4, 20, 2), np.float32)},
                       25.0)


def test_the_cache_evicts_least_recently_used_entries_beyond_its_limit(cache, monkeypatch):
    keys = [c * 24 for c in "abcd"]
    a = _store(cache, keys[0], 0)
    _store(cache, keys[1], 1)
    _store(cache, keys[2], 2)
    entry_mb = sum(f.stat().st_size for f in a.cache_dir.iterdir()) / 2**20
    now = time.time()
    for age, key in zip((300, 200, 100), keys[:3]):
        os.utime(cache.path(key), (now - age, now - age))
    cache.load(keys[0])  # a is used again: now the most recent
    monkeypatch.setenv("FACECAST_CACHE_MAX_MB", f"{2.5 * entry_mb:.3f}")
    _store(cache, keys[3], 3)  # four entries > 2.5: the two least recently used (b, c) go
    assert [cache.has(k) for k in keys] == [True, False, False, True]
    monkeypatch.setenv("FACECAST_CACHE_MAX_MB", f"{0.5 * entry_mb:.3f}")
    assert enforce_limit(cache.base, keep=cache.path(keys[3])) == [cache.path(keys[0])]
    assert cache.has(keys[3])  # the entry just made stays, even alone over the limit


def test_cache_limit_setting_is_checked(monkeypatch):
    from facecast.avatar.cache import CACHE_MAX_MB, cache_limit_bytes

    monkeypatch.delenv("FACECAST_CACHE_MAX_MB", raising=False)
    assert cache_limit_bytes() == CACHE_MAX_MB << 20
    monkeypatch.setenv("FACECAST_CACHE_MAX_MB", "-3")
    with pytest.raises(InvalidArgument, match="FACECAST_CACHE_MAX_MB"):
        cache_limit_bytes()


def test_preparing_a_video_avatar_streams_its_frames(tmp_path):
    """Traced memory of preparation hardly grows with the video's length (it held every
    decoded frame, twice, while stacking them)."""
    import tracemalloc

    prepare(_face_clip(tmp_path / "warm.mp4", frames=3, side=256), cache=AvatarCache(tmp_path / "warm"))  # models
    peaks = []
    for n in (8, 40):
        clip = _face_clip(tmp_path / f"face{n}.mp4", frames=n, side=256)
        cache = AvatarCache(tmp_path / f"cache{n}")
        tracemalloc.start()
        avatar = prepare(clip, cache=cache)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert avatar.frame_count == n
    frame = 256 * 256 * 3
    assert peaks[1] - peaks[0] < 8 * frame, peaks  # 32 more frames held would be 32 (before: 64) frames' worth
