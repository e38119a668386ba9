"""The musetalk backend's distilled variants on a CPU: the small decoder (decoder="small") and the student
UNet (unet="student"), their presets, their directories, and rendering with them (tiny random weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from conftest import portrait  # noqa: E402
from support.musetalk import avatar, clip, model_dir, variants_dir  # noqa: E402,F401 (fixtures)

from facecast.errors import InvalidArgument, ModelFilesMissing  # noqa: E402
from facecast.lipsync import get_backend  # noqa: E402
from facecast.lipsync.musetalk import small_decoder, student_unet  # noqa: E402
from facecast.lipsync.musetalk.backend import MuseTalkBackend  # noqa: E402
from facecast.lipsync.musetalk.loading import assemble  # noqa: E402
from facecast.lipsync.musetalk.random_weights import build, unet_config, vae_config, write_model_dir  # noqa: E402

ROWS, WIDTH = 50, 32  # tiny whisper: 10 frames x 5 states, 32 wide
VARIANTS = [{"decoder": "small"}, {"unet": "student"}, {"decoder": "small", "unet": "student"}]


def _latents(n: int = 2, seed: int = 0) -> torch.Tensor:
    """(n, 4, 32, 32) float32 scaled latents (the UNet's output)."""
    return torch.randn(n, 4, 32, 32, generator=torch.Generator().manual_seed(seed))


def _unet_inputs(width: int, n: int = 2, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latents (n, 8, 32, 32), timestep (1,), audio (n, 50, width)) for a UNet call."""
    g = torch.Generator().manual_seed(0)
    latents, audio = torch.randn(n, 8, 32, 32, generator=g), torch.randn(n, ROWS, width, generator=g)
    return latents.to(device), torch.zeros(1, dtype=torch.int64, device=device), audio.to(device)


# -- small decoder presets -------------------------------------------------------------------

@pytest.mark.parametrize("preset", sorted(small_decoder.PRESETS))
def test_small_decoder_presets_map_latents_to_crops(preset):
    decoder = small_decoder.build_decoder(small_decoder.decoder_config(preset)).eval()
    with torch.no_grad():
        out = decoder(_latents(1))
    assert out.shape == (1, 3, 256, 256) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_small_decoder_sizes_against_the_full_decoder():
    """taesd: ~1.2 M parameters and a small fraction of sd-vae-ft-mse's decoding FLOPs (full VAE on the meta
    device: nothing allocated); narrow is a quarter of taesd, tiny (for tests) far less."""
    from diffusers import AutoencoderKL
    from torch.utils.flop_counter import FlopCounterMode

    sizes = {p: small_decoder.build_decoder(small_decoder.decoder_config(p)) for p in small_decoder.PRESETS}
    params = {p: sum(t.numel() for t in d.parameters()) for p, d in sizes.items()}
    assert 1.0e6 < params["taesd"] < 1.5e6 and params["narrow"] < params["taesd"] / 3 and params["tiny"] < 20_000
    with torch.device("meta"):
        vae = AutoencoderKL(**vae_config("full"))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        vae.decode(torch.zeros(1, 4, 32, 32, device="meta"))
    full = counter.get_total_flops()
    assert 0.02 * full < small_decoder.decoder_flops(sizes["taesd"]) < 0.1 * full


def test_small_decoder_unknown_preset():
    with pytest.raises(InvalidArgument, match="'huge'"):
        small_decoder.decoder_config("huge")


# -- student UNet presets --------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher():
    return build("tiny", seed=0)[0].eval()


@pytest.mark.parametrize("preset", student_unet.PRESETS)
def test_student_presets_of_the_tiny_teacher(teacher, preset):
    student, config, counts = student_unet.make_student(teacher, preset)
    assert config == json.loads(json.dumps(config))  # musetalk.json material
    assert counts["fresh"] == 0  # every tensor started from the teacher's
    narrowed = preset in ("tiny", "narrow")
    assert (counts["sliced"] > 0) == narrowed and counts["copied"] > 0
    assert student_unet.parameter_count(student) < student_unet.parameter_count(teacher)
    conv_in = student.conv_in.weight
    assert torch.equal(conv_in, teacher.conv_in.weight[: conv_in.shape[0]])  # the teacher's leading channels
    latents, timestep, audio = _unet_inputs(WIDTH, n=1)
    with torch.no_grad():
        out = student.eval()(latents, timestep, encoder_hidden_states=audio).sample
        reference = teacher(latents, timestep, encoder_hidden_states=audio).sample
    assert out.shape == reference.shape == (1, 4, 32, 32)
    assert not torch.allclose(out, reference)  # blocks removed or narrowed: another network


@pytest.mark.parametrize("preset,low,high", [("base", 0.45, 0.65), ("small", 0.3, 0.45), ("tiny", 0.05, 0.15),
                                             ("narrow", 0.2, 0.3)])
def test_student_presets_of_the_full_teacher_on_the_meta_device(preset, low, high):
    """MuseTalk's 320-640-1280-1280 teacher, built without allocating weights: the documented sizes."""
    with torch.device("meta"):
        full = student_unet.build_unet(unet_config("full"))
        student, config, counts = student_unet.make_student(full, preset)
    assert counts["fresh"] == 0
    ratio = student_unet.parameter_count(student) / student_unet.parameter_count(full)
    assert low < ratio < high, ratio
    if preset in ("base", "small", "tiny"):
        assert config["mid_block_type"] is None and config["layers_per_block"] == 1
    latents, timestep, audio = _unet_inputs(384, device="meta")
    assert student(latents, timestep, encoder_hidden_states=audio).sample.shape == (2, 4, 32, 32)


def test_student_unknown_preset():
    with pytest.raises(InvalidArgument, match="'huge'"):
        student_unet.student_config(unet_config("tiny"), "huge")


# -- directories ----------------------------------------------------------------------------

def test_small_decoder_round_trip_is_bit_identical(tmp_path):
    config = small_decoder.decoder_config("tiny")
    torch.manual_seed(3)
    decoder = small_decoder.build_decoder(config).eval()
    folder = small_decoder.save_decoder(decoder, config, tmp_path / "small-decoder", {"steps": 0})
    assert small_decoder.locate_small_decoder(tmp_path) == folder
    loaded = small_decoder.load_decoder(folder).eval()
    with torch.no_grad():
        assert torch.equal(loaded(_latents()), decoder(_latents()))
    assert json.loads((folder / "distill.json").read_text()) == {"steps": 0}


def test_student_round_trip_through_the_backend_is_bit_identical(teacher, model_dir, tmp_path):
    """A student saved into a model directory is what MuseTalkBackend(unet="student") runs."""
    student, config, _ = student_unet.make_student(teacher, "small")
    root = write_model_dir(tmp_path, "tiny")
    student_unet.save_student(student, config, root / student_unet.STUDENT_DIR)
    loaded = MuseTalkBackend(root, device="cpu", unet="student").models.net.unet
    mine, theirs = student.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    torch.nn.Module.to(student, memory_format=torch.channels_last)  # as the backend holds its networks
    latents, timestep, audio = _unet_inputs(WIDTH)
    latents = latents.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        a = loaded(latents, timestep, encoder_hidden_states=audio).sample
        b = student.eval()(latents, timestep, encoder_hidden_states=audio).sample
    assert torch.equal(a, b)


def test_an_autoencoder_tiny_with_its_encoder_loads_as_the_small_decoder(tmp_path):
    """A TAESD-style diffusers AutoencoderTiny directory (encoder weights too) drops in as small-decoder/."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(4)
    taesd = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
                            decoder_block_out_channels=(8, 8, 8, 8), num_decoder_blocks=(1, 1, 1, 1)).eval()
    taesd.save_pretrained(tmp_path / "small-decoder")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "small-decoder" / small_decoder.WEIGHTS))
    assert any(k.startswith("encoder.") for k in saved) and any(k.startswith("decoder.") for k in saved)
    decoder = small_decoder.load_decoder(small_decoder.locate_small_decoder(tmp_path)).eval()
    with torch.no_grad():
        assert torch.equal(decoder(_latents()), taesd.decode(_latents()).sample)


def test_small_decoder_weights_not_fitting_their_config(tmp_path):
    config = small_decoder.decoder_config("tiny")
    folder = small_decoder.save_decoder(small_decoder.build_decoder(config), config, tmp_path / "small-decoder")
    (folder / "config.json").write_text(json.dumps(small_decoder.decoder_config("narrow")))
    with pytest.raises(InvalidArgument, match="do not fit"):
        small_decoder.load_decoder(folder)


def test_student_weights_not_fitting_their_config(teacher, tmp_path):
    root = write_model_dir(tmp_path, "tiny")
    student, config, _ = student_unet.make_student(teacher, "base")
    folder = student_unet.save_student(student, config, root / student_unet.STUDENT_DIR)
    (folder / "musetalk.json").write_text(json.dumps(student_unet.student_config(unet_config("tiny"), "narrow")))
    with pytest.raises(InvalidArgument, match="do not fit"):
        MuseTalkBackend(root, device="cpu", unet="student").models


@pytest.mark.parametrize("option,folder,command", [("decoder", "small-decoder", "facecast distill decoder"),
                                                   ("unet", "musetalk-student", "facecast distill unet")])
def test_missing_variant_says_what_and_how(model_dir, option, folder, command):
    value = {"decoder": "small", "unet": "student"}[option]
    with pytest.raises(ModelFilesMissing) as err:
        get_backend("musetalk", model_dir=model_dir, device="cpu", **{option: value})
    message = str(err.value)
    assert str(model_dir / folder) in message and command in message and f"{option}={value!r}" in message


def test_every_missing_part_listed_at_once(tmp_path):
    (tmp_path / "whisper").mkdir()
    with pytest.raises(ModelFilesMissing) as err:
        MuseTalkBackend(tmp_path, device="cpu", decoder="small", unet="student")
    message = str(err.value)
    for part in ("small-decoder", "musetalk-student", "sd-vae/config.json", "whisper/config.json"):
        assert part in message
    assert "musetalkV15" not in message  # the student replaces the teacher: its files are not needed


def test_a_student_needs_no_teacher_files(variants_dir, tmp_path):
    import shutil

    root = tmp_path / "deployed"
    for part in ("sd-vae", "whisper", "musetalk-student", "small-decoder"):
        shutil.copytree(variants_dir / part, root / part)
    backend = MuseTalkBackend(root, device="cpu", decoder="small", unet="student")
    assert backend.files.version == "student" and backend.models.variant == "unet=student decoder=small"
    with pytest.raises(ModelFilesMissing, match="musetalkV15"):
        MuseTalkBackend(root, device="cpu")


# -- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("option", [{"decoder": "tiny"}, {"unet": "pupil"}, {"decoder": "Small"}])
def test_bad_variant_names(model_dir, option):
    (name, value), = option.items()
    with pytest.raises(InvalidArgument, match=f"{name}={value!r}"):
        get_backend("musetalk", model_dir=model_dir, device="cpu", **option)


def test_variants_from_the_environment(variants_dir, monkeypatch):
    monkeypatch.setenv("FACECAST_MUSETALK_DECODER", "small")
    monkeypatch.setenv("FACECAST_MUSETALK_UNET", "student")
    backend = get_backend("musetalk", model_dir=variants_dir, device="cpu")
    assert (backend.decoder, backend.unet) == ("small", "student")
    assert (backend.models.decoder, backend.models.unet) == ("small", "student")
    assert get_backend("musetalk", model_dir=variants_dir, device="cpu", unet="teacher").unet == "teacher"
    monkeypatch.setenv("FACECAST_MUSETALK_UNET", "big")
    with pytest.raises(InvalidArgument, match="FACECAST_MUSETALK_UNET='big'"):
        get_backend("musetalk", model_dir=variants_dir, device="cpu")


def test_defaults_are_the_teacher_and_the_full_decoder(variants_dir, monkeypatch):
    monkeypatch.delenv("FACECAST_MUSETALK_DECODER", raising=False)
    monkeypatch.delenv("FACECAST_MUSETALK_UNET", raising=False)
    backend = MuseTalkBackend(variants_dir, device="cpu")
    assert backend.models.variant == "unet=teacher decoder=full" and backend.models.net.small_decoder is None


def test_assemble_variants_from_modules_in_memory():
    """Benchmarks and tests build variants without files: assemble(..., decoder=, unet_kind=)."""
    unet, vae, whisper, extractor = build("tiny")
    student, _, _ = student_unet.make_student(unet, "base")
    decoder = small_decoder.build_decoder(small_decoder.decoder_config("tiny"))
    models = assemble(student, vae, whisper.get_encoder(), extractor.mel_filters, "memory", torch.device("cpu"),
                      torch.float32, decoder=decoder, unet_kind="student")
    assert (models.unet, models.decoder) == ("student", "small") and models.net.small_decoder is decoder
    backend = MuseTalkBackend(models=models, batch_size=2)
    assert (backend.decoder, backend.unet) == ("small", "student")
    with pytest.raises(InvalidArgument, match="decoder='full'"):
        MuseTalkBackend(models=models, decoder="full")
    with pytest.raises(InvalidArgument, match="unet_kind='pupil'"):
        assemble(unet, vae, whisper.get_encoder(), extractor.mel_filters, "memory", torch.device("cpu"),
                 torch.float32, unet_kind="pupil")


# -- rendering --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher_frames(variants_dir, avatar, clip):
    """(features, frames) of the teacher with the full decoder: 3 frames of speech on frame 0."""
    backend = MuseTalkBackend(variants_dir, device="cpu", batch_size=2)
    features = backend.audio_features(clip, 25)[[5, 10, 15]]
    return features, backend.render(avatar, features, np.zeros(3, np.int64))


class Decodes:
    """Counts the batch rows reaching the VAE's decoder and the small decoder (forward pre-hooks)."""

    def __init__(self, net):
        self.net, self.rows = net, {"vae": 0, "small": 0}

    def __enter__(self):
        count = lambda key: lambda _, args: self.rows.__setitem__(key, self.rows[key] + len(args[0]))  # noqa: E731
        self.hooks = [self.net.vae.decoder.register_forward_pre_hook(count("vae"))]
        if self.net.small_decoder is not None:
            self.hooks.append(self.net.small_decoder.register_forward_pre_hook(count("small")))
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v}" for k, v in v.items()))
def test_variants_render_other_frames_of_the_same_shape(variants_dir, avatar, teacher_frames, variant, monkeypatch):
    features, reference = teacher_frames
    backend = MuseTalkBackend(variants_dir, device="cpu", batch_size=2, **variant)
    # the avatar's latents are keyed by the VAE alone: the teacher's run already encoded them
    monkeypatch.setattr(type(backend.models.net), "encode_crops", lambda *a, **k: pytest.fail("latents not reused"))
    with Decodes(backend.models.net) as decodes:
        frames = backend.render(avatar, features, np.zeros(3, np.int64))
    small = variant.get("decoder") == "small"
    assert decodes.rows == {"vae": 0 if small else 4, "small": 4 if small else 0}  # two batches of 2
    assert frames.shape == reference.shape and frames.dtype == np.uint8
    changed = np.any(frames != reference, axis=-1)
    assert changed.any()
    box = backend._planes_of(avatar).window  # only the pasted window can differ
    outside = np.ones(changed.shape[1:], bool)
    outside[box[1]:box[3], box[0]:box[2]] = False
    assert not changed[:, outside].any()


def test_cli_renders_an_mp4_with_both_variants(variants_dir, model_dir, tmp_path, capsys, monkeypatch):
    import av

    from facecast.cli import main

    monkeypatch.setenv("FACECAST_MUSETALK_DEVICE", "cpu")
    base = ["render", "--backend", "musetalk", "-q", "--avatar", str(portrait("man_webcam_offcenter_01.jpg")),
            "--text", "Hi."]
    out = tmp_path / "variants.mp4"
    assert main(base + ["--model-dir", str(variants_dir), "--decoder", "small", "--unet", "student",
                        "-o", str(out)]) == 0
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and container.streams.audio
        assert sum(1 for _ in container.decode(video)) > 5
    missing = tmp_path / "missing.mp4"
    assert main(base + ["--model-dir", str(model_dir), "--decoder", "small", "-o", str(missing)]) == 1
    assert "facecast distill decoder" in capsys.readouterr().err and not missing.exists()
    classic = tmp_path / "classic.mp4"
    assert main(["render", "-q", "--avatar", str(portrait("man_webcam_offcenter_01.jpg")), "--text", "Hi.",
                 "--unet", "student", "-o", str(classic)]) == 1
    assert "does not take option unet" in capsys.readouterr().err and not classic.exists()


def test_cli_rejects_an_unknown_variant(capsys):
    from facecast.cli import main

    with pytest.raises(SystemExit) as exit_:  # argparse's error, exit status 1 like every facecast error
        main(["render", "--avatar", "x.jpg", "--text", "Hi.", "-o", "x.mp4", "--decoder", "tiny"])
    assert exit_.value.code == 1 and "argument --decoder: invalid choice: 'tiny'" in capsys.readouterr().err


# -- GPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_variants_as_cuda_graphs_replay_what_eager_computes(variants_dir, avatar):
    features = np.random.default_rng(0).standard_normal((5, ROWS, WIDTH)).astype(np.float32)
    index = np.zeros(5, np.int64)
    options = {"decoder": "small", "unet": "student", "batch_size": 4}
    graphed = MuseTalkBackend(variants_dir, compile="cudagraph", **options)
    eager = MuseTalkBackend(variants_dir, compile="none", **options)
    a, b = graphed.render(avatar, features, index), eager.render(avatar, features, index)
    assert np.abs(a.astype(int) - b).max() <= 1
