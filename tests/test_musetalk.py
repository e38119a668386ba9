"""The musetalk backend on a CPU, with tiny seeded random-weight models saved in the release layout."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from conftest import portrait  # noqa: E402
from support.musetalk import avatar, clip, model_dir  # noqa: E402,F401 (fixtures)

from facecast.audio.pcm import Audio  # noqa: E402
from facecast.errors import InvalidArgument, ModelFilesMissing  # noqa: E402
from facecast.lipsync import available_backends, get_backend  # noqa: E402
from facecast.lipsync.musetalk import cache, crops  # noqa: E402
from facecast.lipsync.musetalk.backend import MuseTalkBackend  # noqa: E402
from facecast.lipsync.musetalk.files import locate  # noqa: E402
from facecast.lipsync.musetalk.random_weights import write_model_dir  # noqa: E402
from facecast.lipsync.musetalk.windows import (gather_windows, samples_needed, sinusoidal_encoding,  # noqa: E402
                                               state_count, window_starts)

ROWS, WIDTH = 50, 32  # tiny whisper: 10 frames x 5 states, 32 wide


@pytest.fixture(scope="session")
def backend(model_dir):
    return MuseTalkBackend(model_dir, device="cpu", batch_size=4)


# -- model directory ---------------------------------------------------------------------

def test_registered_by_name(model_dir):
    assert "musetalk" in available_backends()
    backend = get_backend("musetalk", model_dir=model_dir, device="cpu")
    assert isinstance(backend, MuseTalkBackend) and backend.batch_size == 16


def test_missing_files_are_all_listed(tmp_path):
    (tmp_path / "musetalkV15").mkdir()
    (tmp_path / "musetalkV15" / "musetalk.json").write_text("{}")
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "config.json").write_text("{}")
    with pytest.raises(ModelFilesMissing) as err:
        get_backend("musetalk", model_dir=tmp_path)
    message = str(err.value)
    for missing in ("musetalkV15/unet.pth", "sd-vae/config.json", "diffusion_pytorch_model",
                    "whisper/model.safetensors or pytorch_model.bin"):
        assert missing in message
    assert "whisper/config.json" not in message


def test_no_model_dir_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("FACECAST_MUSETALK_DIR", raising=False)
    monkeypatch.delenv("FACECAST_MODEL_DIR", raising=False)
    with pytest.raises(ModelFilesMissing, match="--model-dir"):
        get_backend("musetalk")


def test_both_release_layouts_load_the_same_weights(model_dir, tmp_path):
    v1 = write_model_dir(tmp_path, "tiny", "v1")
    assert locate(model_dir).version == "v1.5" and locate(v1).version == "v1"
    a = MuseTalkBackend(model_dir, device="cpu").models.net.unet.state_dict()
    b = MuseTalkBackend(v1, device="cpu").models.net.unet.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_not_matching_its_config(tmp_path):
    root = write_model_dir(tmp_path, "tiny", "v1.5")
    config = root / "musetalkV15" / "musetalk.json"
    config.write_text(config.read_text().replace('"layers_per_block": 1', '"layers_per_block": 2'))
    with pytest.raises(InvalidArgument, match="do not fit"):
        MuseTalkBackend(root, device="cpu").models


@pytest.mark.parametrize("option", [{"batch_size": 0}, {"dtype": "int8"}, {"compile": "fastest"},
                                    {"compile": "cudagraph"}])
def test_bad_options(model_dir, option):
    with pytest.raises(InvalidArgument):
        MuseTalkBackend(model_dir, device="cpu", **option)


def test_options_from_the_environment(model_dir, monkeypatch):
    monkeypatch.setenv("FACECAST_MUSETALK_DIR", str(model_dir))
    monkeypatch.setenv("FACECAST_MUSETALK_BATCH", "8")
    monkeypatch.setenv("FACECAST_MUSETALK_DEVICE", "cpu")
    backend = get_backend("musetalk")
    assert backend.batch_size == 8 and backend.device.type == "cpu" and backend.compile == "none"


# -- whisper windows ---------------------------------------------------------------------

def test_window_starts_at_25_fps():
    assert window_starts(5, 25).tolist() == [-4, -2, 0, 2, 4]
    assert samples_needed(0, 25) == 2560  # frame 0 ends at 640: 120 ms of lookahead


def test_windows_are_zero_padded_at_both_ends():
    states = np.arange(1, 13 * 5 * 2 + 1, dtype=np.float32).reshape(13, 5, 2)  # 13 whisper frames
    out = gather_windows(states, window_starts(7, 25))  # frames 0..6 -> whisper frames -4..17
    assert out.shape == (7, 50, 2)
    assert np.all(out[0, :20] == 0) and np.array_equal(out[0, 20:].reshape(6, 5, 2), states[:6])
    last = out[6].reshape(10, 5, 2)  # whisper frames 8..17: 8..12 exist
    assert np.array_equal(last[:5], states[8:13]) and np.all(last[5:] == 0)


def test_positional_encoding():
    code = sinusoidal_encoding(50, 384)
    assert code.shape == (50, 384)
    assert np.allclose(code[0, 0::2], 0) and np.allclose(code[0, 1::2], 1)
    assert np.isclose(code[7, 2], np.sin(7 / 10000 ** (2 / 384)))


def test_audio_features_shape_and_ends(backend, clip):
    features = backend.audio_features(clip, 25)
    assert features.shape == (clip.frame_count(25), ROWS, WIDTH) and features.dtype == np.float32
    assert np.all(features[0, :20] == 0) and np.any(features[0, 20:] != 0)
    whisper_frames = state_count(len(clip.samples))  # 60 at 1.2 s
    last_start = int(window_starts(np.array([len(features) - 1]), 25)[0])
    beyond = (whisper_frames - last_start) * 5
    assert np.all(features[-1, beyond:] == 0) and np.any(features[-1, :beyond] != 0)


def test_log_mel_matches_the_feature_extractor(backend, clip):
    from transformers import WhisperFeatureExtractor

    whisper = backend.models.whisper
    padded = np.zeros(480000, np.float32)
    padded[: len(clip.samples)] = clip.samples
    mine = whisper.log_mel(torch.from_numpy(padded)[None]).numpy()
    reference = WhisperFeatureExtractor(feature_size=80)(clip.samples, sampling_rate=16000,
                                                         return_tensors="np").input_features
    assert np.abs(mine - reference).max() < 1e-4


def test_features_resampled_from_48_khz(backend, clip):
    from scipy.signal import resample_poly

    loud = Audio(resample_poly(clip.samples, 3, 1).astype(np.float32), 48000)
    a, b = backend.audio_features(clip, 25), backend.audio_features(loud, 25)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.05 * np.abs(a).mean()


# -- streaming ---------------------------------------------------------------------------

def test_stream_of_one_push_equals_the_clip(backend, clip):
    stream = backend.stream_features(16000, 25)
    streamed = np.concatenate([stream.push(clip.samples), stream.flush()])
    assert np.allclose(streamed, backend.audio_features(clip, 25), atol=1e-5)


def test_stream_releases_frames_once_their_lookahead_arrived(backend, clip):
    stream = backend.stream_features(16000, 25)
    received, released = 0, 0
    for lo in range(0, len(clip.samples), 3200):  # 200 ms chunks
        chunk = clip.samples[lo: lo + 3200]
        received += len(chunk)
        out = stream.push(chunk)
        released += len(out)
        assert out.shape[1:] == (ROWS, WIDTH)
        assert released == sum(1 for f in range(100) if 640 * f + 2560 <= received)
    released += len(stream.flush())
    assert released == clip.frame_count(25)
    stream.reset()
    assert len(stream.flush()) == 0


def test_stream_at_48_khz(backend, clip):
    from scipy.signal import resample_poly

    samples = resample_poly(clip.samples, 3, 1).astype(np.float32)
    stream = backend.stream_features(48000, 25)
    parts = [stream.push(samples[lo: lo + 4800]) for lo in range(0, len(samples), 4800)] + [stream.flush()]
    streamed = np.concatenate(parts)
    assert streamed.shape == (clip.frame_count(25), ROWS, WIDTH)
    assert np.abs(streamed[-1] - backend.audio_features(clip, 25)[-1]).mean() < 0.1 * np.abs(streamed[-1]).mean()


# -- avatars and rendering ---------------------------------------------------------------

def test_latents_cached_by_model_identity(model_dir, avatar, monkeypatch):
    first = MuseTalkBackend(model_dir, device="cpu")
    first.prepare(avatar)
    files = list((avatar.cache_dir / cache.SUBDIR).glob("*.npy"))
    assert len(files) == 1 and np.load(files[0]).shape == (avatar.frame_count, 8, 32, 32)
    second = MuseTalkBackend(model_dir, device="cpu")
    monkeypatch.setattr(type(second.models.net), "encode_crops", lambda *a, **k: pytest.fail("not cached"))
    second.prepare(avatar)
    assert torch.equal(first._planes[avatar.id].latents, second._planes[avatar.id].latents)


class NetworkRows:
    """Records the batch rows that reach the network on every call: (latents, audio) rows of the
    whole LipsyncNet call, then the rows of its UNet and its VAE decoder, through forward pre-hooks."""

    def __init__(self, backend):
        self.net = backend.models.net
        self.calls: list[tuple[int, int]] = []
        self.parts: list[tuple[str, int]] = []

    def __enter__(self):
        net = self.net
        self.hooks = [
            net.register_forward_pre_hook(lambda _, args: self.calls.append((len(args[0]), len(args[1])))),
            net.unet.register_forward_pre_hook(lambda _, args: self.parts.append(("unet", len(args[0])))),
            net.vae.decoder.register_forward_pre_hook(lambda _, args: self.parts.append(("decoder", len(args[0])))),
        ]
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()

    def assert_fixed(self, batch: int, calls: int) -> None:
        assert self.calls == [(batch, batch)] * calls, self.calls
        assert self.parts == [("unet", batch), ("decoder", batch)] * calls, self.parts


def test_render_pads_the_last_batch(backend, avatar, clip):
    backend.prepare(avatar)  # latents first: preparation encodes crops in its own batches
    features = backend.audio_features(clip, 25)[[0, 1, 2, 3, 0, 1]]  # the padded batch repeats the first
    with NetworkRows(backend) as rows:
        frames = backend.render(avatar, features, np.zeros(6, np.int64))  # batches of 4 + 2 (padded)
    rows.assert_fixed(backend.batch_size, calls=2)  # the network always sees 4 rows
    assert frames.shape == (6,) + avatar.frames.shape[1:] and frames.dtype == np.uint8
    # The same frames next to real rows and next to padding: batch-mates change nothing.
    assert np.abs(frames[4:].astype(int) - frames[:2]).max() <= 1
    assert np.any(frames[1] != frames[2])  # different audio, different mouth


def test_render_leaves_pixels_outside_the_lower_face_alone(backend, avatar, clip):
    frames = backend.render(avatar, backend.audio_features(clip, 25)[:2], np.zeros(2, np.int64))
    changed = np.any(frames != avatar.frames[0], axis=-1).any(0)
    box = crops.layout(avatar.landmarks, avatar.size).boxes[0]
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() >= (box[1] + box[3]) / 2 - 1
    assert xs.min() >= box[0] and xs.max() < box[2] and ys.max() < box[3]


def test_render_rejects_mismatched_features(backend, avatar):
    with pytest.raises(InvalidArgument, match="features"):
        backend.render(avatar, np.zeros((2, 50, 384), np.float32), np.zeros(2, np.int64))
    with pytest.raises(InvalidArgument, match="frame_indices"):
        backend.render(avatar, np.zeros((1, ROWS, WIDTH), np.float32), np.array([3]))


def test_silence_features(backend):
    silence = backend.silence_features(3)
    assert silence.shape == (3, ROWS, WIDTH) and np.array_equal(silence[0], silence[2])


def test_renders_an_mp4_through_the_engine(backend, avatar, clip, tmp_path):
    import av

    from facecast.config import RenderSettings
    from facecast.engine import Speech, render_to_file

    backend.prepare(avatar)
    with NetworkRows(backend) as rows:
        out = render_to_file(avatar, Speech(clip), tmp_path / "musetalk.mp4", RenderSettings(backend="musetalk"),
                             backend=backend)
    frames = clip.frame_count(25)  # 30: seven batches of 4 and a last one of 2, padded
    rows.assert_fixed(backend.batch_size, calls=-(-frames // backend.batch_size))
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == avatar.size
        assert sum(1 for _ in container.decode(video)) == frames


def test_cli_renders_with_the_backend_and_refuses_a_gpu_mode_on_the_cpu(model_dir, tmp_path, capsys, monkeypatch):
    import av

    from facecast.cli import main

    monkeypatch.setenv("FACECAST_MUSETALK_DEVICE", "cpu")
    base = ["render", "--backend", "musetalk", "--model-dir", str(model_dir), "-q",
            "--avatar", str(portrait("man_webcam_offcenter_01.jpg")), "--text", "Hi."]
    refused = tmp_path / "refused.mp4"
    assert main(base + ["--compile", "cudagraph", "-o", str(refused)]) == 1
    assert "needs a CUDA device" in capsys.readouterr().err and not refused.exists()
    out = tmp_path / "cli.mp4"
    assert main(base + ["-o", str(out)]) == 0
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264" and container.streams.audio
