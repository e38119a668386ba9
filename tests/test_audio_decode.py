"""facecast.audio.decode: every format and rate to mono float32, and the errors users see."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf
from audio_testdata import SPEECH

from facecast.audio.decode import load_audio, resample
from facecast.errors import CorruptMedia, EmptyAudio, InvalidArgument, UnsupportedMedia


def _sine(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """(N,) or (N, channels) float32 sine at -6 dBFS; channel c is scaled by 1 / (c + 1)."""
    t = np.arange(int(round(seconds * rate))) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("name", sorted(SPEECH))
def test_every_speech_clip_decodes_to_mono_float32(data_dir, name):
    duration, rate = SPEECH[name]
    audio = load_audio(data_dir / "speech" / name)
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert audio.sample_rate == rate
    assert audio.duration == pytest.approx(duration, abs=0.1)
    assert 0.05 < np.abs(audio.samples).max() <= 1.0


def test_stereo_24bit_48k_is_the_channel_mean(data_dir):
    path = data_dir / "speech" / "de_01_9s.wav"
    info = sf.info(str(path))
    assert (info.channels, info.samplerate, info.subtype) == (2, 48000, "PCM_24")
    reference, _ = sf.read(str(path), dtype="float64")
    audio = load_audio(path)
    assert np.abs(audio.samples - reference.mean(axis=1)).max() < 1e-6


def test_audio_track_of_a_talking_video(data_dir):
    audio = load_audio(data_dir / "talking" / "man_suit_6s.mp4")
    assert audio.sample_rate == 44100
    assert audio.duration == pytest.approx(6.1, abs=0.1)
    assert np.sqrt(np.mean(audio.samples**2)) > 0.01


def test_bytes_upload_decodes_like_the_file(data_dir):
    path = data_dir / "speech" / "zh_short_01_3s.wav"
    from_file = load_audio(path)
    from_bytes = load_audio(path.read_bytes(), name="upload.wav")
    assert from_bytes.sample_rate == from_file.sample_rate
    np.testing.assert_array_equal(from_bytes.samples, from_file.samples)


@pytest.mark.parametrize(
    "subtype, rate, channels, tolerance",
    [
        ("PCM_U8", 11025, 1, 1 / 64),
        ("PCM_16", 8000, 1, 1e-4),
        ("PCM_16", 44100, 2, 1e-4),
        ("PCM_24", 96000, 2, 1e-6),
        ("PCM_32", 22050, 1, 1e-6),
        ("FLOAT", 32000, 2, 1e-6),
        ("DOUBLE", 48000, 6, 1e-6),
    ],
)
def test_wav_of_any_depth_rate_and_channels(tmp_path, subtype, rate, channels, tolerance):
    signal = _sine(0.5, rate, channels)
    path = tmp_path / f"{subtype}_{rate}_{channels}.wav"
    sf.write(str(path), signal, rate, subtype=subtype)
    audio = load_audio(path)
    expected = signal if channels == 1 else signal.mean(axis=1)
    assert audio.sample_rate == rate
    assert audio.samples.shape == expected.shape
    assert np.abs(audio.samples - expected).max() < tolerance


@pytest.mark.parametrize(
    "fmt, subtype, rate",
    [("FLAC", "PCM_24", 44100), ("OGG", "OPUS", 48000), ("OGG", "VORBIS", 22050)],
)
def test_compressed_formats(tmp_path, fmt, subtype, rate):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(str(path), _sine(1.0, rate, channels=2), rate, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.sample_rate == rate
    assert audio.duration == pytest.approx(1.0, abs=0.03)
    assert np.sqrt(np.mean(audio.samples**2)) == pytest.approx(0.75 * 0.5 / np.sqrt(2), rel=0.1)


def test_m4a_aac(tmp_path):
    rate, path = 44100, tmp_path / "tone.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(_sine(1.0, rate)[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    audio = load_audio(path)
    assert audio.sample_rate == rate
    assert audio.duration == pytest.approx(1.0, abs=0.05)
    assert np.sqrt(np.mean(audio.samples**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("rate, expected", [(192000, 48000), (4000, 48000)])
def test_rates_aac_cannot_encode_are_resampled(tmp_path, rate, expected):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(str(path), _sine(0.5, rate, freq=300.0), rate, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.sample_rate == expected
    assert audio.duration == pytest.approx(0.5, abs=0.01)


def test_resample_keeps_duration_and_pitch():
    x = _sine(1.0, 44100, freq=1000.0)
    y = resample(x, 44100, 16000)
    assert y.dtype == np.float32 and len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over 1 s
    with pytest.raises(InvalidArgument, match="to_rate"):
        resample(x, 44100, 0)


def _corrupt_wav(tmp_path, data_dir):
    header = (data_dir / "speech" / "de_01_9s.wav").read_bytes()[:12]  # RIFF....WAVE
    path = tmp_path / "broken.wav"
    path.write_bytes(header + np.random.default_rng(0).bytes(4096))
    return path


def test_corrupt_file_names_the_file(tmp_path, data_dir):
    path = _corrupt_wav(tmp_path, data_dir)
    with pytest.raises(CorruptMedia, match="broken.wav"):
        load_audio(path)


def test_corrupt_bytes_name_the_upload(tmp_path, data_dir):
    data = _corrupt_wav(tmp_path, data_dir).read_bytes()
    with pytest.raises(CorruptMedia, match="voice-note.wav"):
        load_audio(data, name="voice-note.wav")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudio, match="empty.mp3"):
        load_audio(path)
    with pytest.raises(EmptyAudio, match="up.wav"):
        load_audio(b"", name="up.wav")


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros(0, np.float32), 16000)
    with pytest.raises(EmptyAudio, match="zero.wav"):
        load_audio(path)


def test_shorter_than_one_video_frame(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(str(path), _sine(0.02, 16000), 16000)
    with pytest.raises(EmptyAudio, match="blip.wav"):
        load_audio(path)


def test_text_file_is_unsupported(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio at all\n" * 20)
    with pytest.raises(UnsupportedMedia, match="notes.wav"):
        load_audio(path)


def test_image_is_unsupported(data_dir):
    path = data_dir / "portraits" / "man_glasses_01.jpg"
    with pytest.raises(UnsupportedMedia, match="man_glasses_01.jpg"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidArgument, match="nothing.wav"):
        load_audio(tmp_path / "nothing.wav")
