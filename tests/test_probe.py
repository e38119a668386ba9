"""media.probe and the readers built on it, on media the tests make: EXIF orientation, rotated and
variable-frame-rate MP4s, 16-bit PNGs, stereo WAVs, fast-start MP4s, and what a non-media file is
called."""

from __future__ import annotations

import av
import numpy as np
import pytest

from facecast.audio.decode import load_audio
from facecast.errors import UnsupportedMedia
from facecast.media.probe import AAC_SAMPLE_RATES, aac_rate, probe, sniff
from facecast.media.reader import read_visual
from facecast.media.writer import Mp4Writer
from facecast.server.uploads import sniff_visual
from facecast.video.stream import frames as stream_frames, probe as probe_video
from support.media import (write_wav, counter_frames, dim_png16, frame_index, jpeg_with_orientation, marker_image,
                           shown_by_pil, stereo_wav, top_level_boxes, vfr_times, write_video)

RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)


def _corner_colours(img: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """Colour (B, G, R) at the four corners of a marker image, rounded to 0/255."""
    h, w = img.shape[:2]
    pick = {"tl": img[2, 2], "tr": img[2, w - 3], "bl": img[h - 3, 2], "br": img[h - 3, w - 3]}
    return {k: tuple(int(v > 200) * 255 for v in px) for k, px in pick.items()}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    stored = marker_image(64, 40)
    path = jpeg_with_orientation(tmp_path / f"phone_{orientation}.jpg", stored, orientation)
    info = probe(path)
    assert info.kind == "image" and info.image.orientation == orientation
    shown = read_visual(path).frames[0]
    assert shown.shape[:2] == ((64, 40) if orientation >= 5 else (40, 64))
    assert np.abs(shown.astype(int) - shown_by_pil(path)).max() <= 8


def test_orientation_6_turns_a_phone_photo_clockwise(tmp_path):
    path = jpeg_with_orientation(tmp_path / "phone.jpg", marker_image(64, 40), 6)
    corners = _corner_colours(read_visual(path).frames[0])
    # stored: red top-left, green top-right, blue bottom-left; turned 90 degrees clockwise
    assert corners["tr"] == RED and corners["br"] == GREEN and corners["tl"] == BLUE


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_video_rotation_is_applied(tmp_path, rotation):
    stored = marker_image(64, 48)
    path = write_video(tmp_path / f"rot{rotation}.mp4", [stored] * 5, [i / 25 for i in range(5)],
                       rotation=rotation)
    video = probe(path).video
    assert video.rotation == rotation and video.size == (64, 48)
    expected = np.ascontiguousarray(np.rot90(stored, rotation // 90))  # counter-clockwise
    for shown in (read_visual(path).frames[0], next(stream_frames(probe_video(path)))):
        assert shown.shape == expected.shape
        assert _corner_colours(shown) == _corner_colours(expected)
    assert probe_video(path).size == (expected.shape[1], expected.shape[0])


def test_phone_portrait_video_is_shown_upright(tmp_path):
    """What phones write: a landscape picture and a display matrix of -90 degrees."""
    path = write_video(tmp_path / "phone.mp4", [marker_image(64, 48)] * 3, [0, 0.04, 0.08], rotation=-90)
    shown = read_visual(path).frames[0]
    assert shown.shape[:2] == (64, 48)
    corners = _corner_colours(shown)
    assert corners["tr"] == RED and corners["br"] == GREEN and corners["tl"] == BLUE


def test_variable_frame_rate_is_timed_by_each_frame(tmp_path):
    path = write_video(tmp_path / "vfr.mp4", counter_frames(60), vfr_times())
    video = probe(path).video
    assert video.variable_rate and video.frame_count == 60
    assert video.duration == pytest.approx(4.0, abs=0.01) and video.grid_fps == pytest.approx(25.0)
    decoded = read_visual(path)
    assert decoded.fps == pytest.approx(25.0) and len(decoded.frames) == 100
    shown = [frame_index(f) for f in decoded.frames]
    # grid slot k (time k / 25 s) shows the frame on screen at that time
    want = [k // 5 if k < 50 else 10 + (k - 50) for k in range(100)]
    assert shown == want
    streamed = [frame_index(f) for f in stream_frames(probe_video(path))]
    assert streamed == want


def test_constant_rate_clip_is_read_frame_for_frame(tmp_path):
    path = write_video(tmp_path / "cfr.mp4", counter_frames(30), [i / 30 for i in range(30)])
    video = probe(path).video
    assert not video.variable_rate and video.average_fps == pytest.approx(30.0)
    assert [frame_index(f) for f in read_visual(path).frames] == list(range(30))


def test_sixteen_bit_png_is_scaled_by_bit_depth(tmp_path):
    path = dim_png16(tmp_path / "dim.png", level=6000)
    assert probe(path).image.bit_depth == 16
    img = read_visual(path).frames[0]
    assert img[0, 0].tolist() == [round(6000 * 255 / 65535)] * 3  # 23: still dim
    assert img[15, 15].tolist() == [round(3000 * 255 / 65535)] * 3


def test_stereo_wav_is_kept_for_output_and_mixed_for_analysis(tmp_path):
    path = stereo_wav(tmp_path / "stereo.wav")
    info = probe(path)
    assert info.kind == "audio" and info.audio.channels == 2 and info.audio.sample_rate == 16000
    audio = load_audio(path)
    assert audio.channels.shape == (2, 16000)
    assert np.abs(audio.channels[1]).max() == 0 and np.abs(audio.channels[0]).max() > 0.45
    np.testing.assert_allclose(audio.samples, audio.channels.mean(axis=0), atol=1e-6)


def test_mp4_keeps_stereo_and_is_fast_start(tmp_path):
    audio = load_audio(stereo_wav(tmp_path / "stereo.wav"))
    out = tmp_path / "out.mp4"
    with Mp4Writer(out, (64, 48), 25, audio) as writer:
        writer.write(np.stack(counter_frames(25)))
    boxes = top_level_boxes(out.read_bytes())
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), boxes
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.channels == 2
        planes = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
    left, right = np.abs(planes[0]).max(), np.abs(planes[1]).max()
    assert left > 0.3 and right < 0.05, (left, right)


def test_mono_audio_stays_mono(tmp_path):
    path = write_wav(tmp_path / "mono.wav", np.sin(np.arange(16000) / 5) * 9000 / 32767)
    audio = load_audio(path)
    assert audio.channels is None and audio.output_channels.shape == (1, 16000)


@pytest.mark.parametrize("content, what", [
    (b"hello, I am not a picture at all\n" * 10, "looks like text"),
    (b"%PDF-1.7\n" + bytes(range(256)) * 4, "looks like a PDF document"),
    (b"PK\x03\x04" + bytes(300), "looks like a ZIP archive"),
    (bytes(range(7, 256)) * 4, "looks like unknown binary data"),
])
def test_non_media_is_named_not_guessed(tmp_path, content, what):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    for call in (lambda: read_visual(path), lambda: probe(path), lambda: probe_video(path),
                 lambda: load_audio(path), lambda: sniff_visual(content, "photo.jpg")):
        with pytest.raises(UnsupportedMedia) as err:
            call()
        message = str(err.value)
        assert what in message and "photo.jpg" in message and "image2" not in message and "detected" not in message


def test_audio_only_is_not_an_avatar(tmp_path):
    path = stereo_wav(tmp_path / "voice.wav")
    with pytest.raises(UnsupportedMedia, match="not an image or video: it is WAV audio"):
        read_visual(path)
    with pytest.raises(UnsupportedMedia, match="not an image or video"):
        sniff_visual(path.read_bytes(), "voice.wav")


def test_sniff_knows_the_formats():
    assert sniff(b"\xff\xd8\xff\xe0").kind == "image"
    assert sniff(b"\x00\x00\x00\x18ftypisom").kind == "media"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ").format == "webp"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ").kind == "audio"
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST").kind == "video"
    assert sniff(b"").what == "empty"


def test_one_aac_rate_table():
    from facecast.media import fmp4, writer
    from facecast.transports.fmp4 import encoder

    assert aac_rate(44000) == 44100 and aac_rate(7000) == 8000 and aac_rate(200000) == 96000
    assert set(encoder.AAC_RATES) <= set(AAC_SAMPLE_RATES)
    assert fmp4.AudioTrack(44100).audio_specific_config() == bytes([0x12, 0x08])
    assert not hasattr(writer, "AAC_RATES")

