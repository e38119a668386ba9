"""The fragmented MP4 muxer and the streaming encoder: box structure, timing, and real decoding."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from facecast.media import fmp4
from facecast.transports.fmp4.encoder import StreamEncoder

FPS = 25
RATE = 22050


def parse_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    return list(fmp4.iter_boxes(data, start, end))


def trafs(segment: bytes) -> dict[int, dict]:
    """track id -> {base, count, offset, durations, sizes, flags} of a segment's moof."""
    boxes = parse_boxes(segment)
    assert boxes[0][0] == b"moof"
    runs = fmp4.read_moof(segment[:boxes[0][2]])
    return {t: {"base": r.start, "count": len(r.durations), "offset": r.data_offset, "durations": r.durations,
                "sizes": r.sizes, "flags": r.flags} for t, r in runs.items()}


def noise_frames(n: int, size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size, 3), np.uint8)
    return np.stack([np.roll(base, 3 * i, axis=1) for i in range(n)])


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def encode_stream(seconds: float = 2.4, batch: int = 3) -> tuple[StreamEncoder, list]:
    enc = StreamEncoder((128, 128), FPS, RATE, keyint=FPS, max_frames=5)
    frames = noise_frames(int(seconds * FPS))
    audio = tone(seconds)
    spf = RATE // FPS
    segments = []
    for lo in range(0, len(frames), batch):
        hi = min(lo + batch, len(frames))
        segments += enc.encode(frames[lo:hi], audio[lo * spf: hi * spf])
    segments += enc.finish()
    return enc, segments


@pytest.fixture(scope="module")
def stream():
    return encode_stream()


def test_init_segment_describes_both_tracks(stream):
    enc, _ = stream
    boxes = parse_boxes(enc.init)
    assert [b[0] for b in boxes] == [b"ftyp", b"moov"]
    moov = boxes[1]
    kinds = [b[0] for b in parse_boxes(enc.init, moov[1], moov[2])]
    assert kinds == [b"mvhd", b"trak", b"trak", b"mvex"]
    assert b"avcC" in enc.init and b"esds" in enc.init
    assert enc.codecs.startswith("avc1.42") and enc.codecs.endswith("mp4a.40.2")
    assert enc.mime == f'video/mp4; codecs="{enc.codecs}"'


def test_segments_are_short_and_keyframes_open_them(stream):
    _, segments = stream
    frames_seen = 0
    for seg in segments:
        info = trafs(seg.data)
        video = info.get(fmp4.VIDEO_TRACK_ID)
        if video is None:
            continue
        assert video["count"] <= 5, "a segment holds at most 200 ms of video"
        assert video["base"] == frames_seen * 1000
        keys = [f == fmp4.SYNC_SAMPLE_FLAGS for f in video["flags"]]
        assert not any(keys[1:]), "a keyframe always opens its segment"
        assert keys[0] == ((frames_seen % FPS) == 0), f"keyframe every second (frame {frames_seen})"
        assert seg.keyframe == keys[0]
        frames_seen += video["count"]
    assert frames_seen == 60


def test_audio_is_continuous_from_zero(stream):
    _, segments = stream
    at = 0
    for seg in segments:
        audio = trafs(seg.data).get(fmp4.AUDIO_TRACK_ID)
        if audio:
            assert audio["base"] == at
            assert set(audio["durations"]) == {1024}
            at += 1024 * audio["count"]
    assert at >= 2.4 * RATE


def test_data_offsets_point_into_mdat(stream):
    _, segments = stream
    for seg in segments:
        boxes = parse_boxes(seg.data)
        assert [b[0] for b in boxes] == [b"moof", b"mdat"]
        mdat = boxes[1]
        for info in trafs(seg.data).values():
            assert mdat[1] <= info["offset"] and info["offset"] + sum(info["sizes"]) <= mdat[2]


def test_ffmpeg_decodes_the_stream(stream):
    enc, segments = stream
    data = enc.init + b"".join(s.data for s in segments)
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (128, 128)
        frames = list(container.decode(video=0))
    assert len(frames) == 60
    assert [f.pts for f in frames] == [i * 1000 for i in range(60)]
    with av.open(io.BytesIO(data)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert abs(samples - 2.4 * RATE) < 3 * 1024


def test_joining_at_a_keyframe_decodes():
    """A late reader gets the init segment and segments from a keyframe on."""
    enc, segments = encode_stream(seconds=2.0)
    keys = [i for i, s in enumerate(segments) if s.keyframe]
    assert len(keys) == 2
    data = enc.init + b"".join(s.data for s in segments[keys[1]:])
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 25 and frames[0].pts == 25 * 1000


@pytest.mark.parametrize("lead", [0, 3072])
def test_a_late_reader_gets_audio_and_video_from_the_same_keyframe_time(lead):
    """A reader joining at a keyframe segment gets audio from the keyframe's time on: a clip's (audio
    encoded `lead` samples ahead) starts in that segment, within one AAC frame before the keyframe
    (it started 56 ms after it); a live stream's (no lead) never starts after it."""
    enc = StreamEncoder((128, 128), FPS, RATE, keyint=FPS, max_frames=5)
    frames, audio, spf = noise_frames(3 * FPS), tone(3.2), RATE // FPS
    segments, fed = [], 0
    for lo in range(0, len(frames), 4):
        hi = min(lo + 4, len(frames))
        upto = min(hi * spf + lead, len(audio))
        segments += enc.encode(frames[lo:hi], audio[fed:upto])
        fed = upto
    segments += enc.finish()
    joins = [i for i, s in enumerate(segments) if s.keyframe][1:]
    assert len(joins) == 2
    for join in joins:
        video_s = trafs(segments[join].data)[fmp4.VIDEO_TRACK_ID]["base"] / (FPS * 1000)
        first_audio = next(trafs(s.data)[fmp4.AUDIO_TRACK_ID] for s in segments[join:]
                           if fmp4.AUDIO_TRACK_ID in trafs(s.data))
        audio_s = first_audio["base"] / RATE
        assert audio_s <= video_s, (video_s, audio_s)  # no silent start for the late reader
        if lead > 2048:  # a clip: its audio runs ahead of the AAC encoder's delay (2048 samples)
            assert video_s - 1024 / RATE < audio_s, (video_s, audio_s)
            assert fmp4.AUDIO_TRACK_ID in trafs(segments[join].data), "the join point carries its audio"
    bases = [trafs(s.data).get(fmp4.AUDIO_TRACK_ID) for s in segments]
    starts = [(b["base"], b["count"]) for b in bases if b]
    assert all(a + 1024 * n == b for (a, n), (b, _) in zip(starts, starts[1:])), "audio stays continuous"


def test_annexb_split():
    au = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x00\x01\x67\x42\x00" + b"\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88\x80"
    sample, params = fmp4.split_access_unit(au)
    assert params == {7: b"\x67\x42", 8: b"\x68\xce"}
    assert sample == struct.pack(">I", 3) + b"\x65\x88\x80"


def test_audio_specific_config():
    assert fmp4.AudioTrack(22050).audio_specific_config() == bytes([0x13, 0x88])
    assert fmp4.AudioTrack(48000).audio_specific_config() == bytes([0x11, 0x88])


def test_empty_segment_is_refused():
    with pytest.raises(ValueError, match="empty"):
        fmp4.media_segment(1, [fmp4.TrackRun(1, 0, [])])


def test_box_reader_splits_any_chunking(stream):
    enc, segments = stream
    data = enc.init + b"".join(s.data for s in segments)
    reader = fmp4.BoxReader()
    boxes = []
    for i in range(0, len(data), 777):
        boxes += reader.feed(data[i:i + 777])
    assert [k for k, _ in boxes[:2]] == [b"ftyp", b"moov"]
    assert [k for k, _ in boxes[2:]] == [b"moof", b"mdat"] * len(segments)
    assert b"".join(b for _, b in boxes) == data


def test_malformed_boxes_are_refused():
    with pytest.raises(ValueError, match="bad size"):
        list(fmp4.iter_boxes(struct.pack(">I4s", 4, b"moof")))
    with pytest.raises(ValueError, match="truncated"):
        list(fmp4.iter_boxes(b"\x00\x00"))
