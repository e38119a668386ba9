"""Shared fixtures of the musetalk tests (CPU): tiny random-weight model directories, with and without the
distilled variants, the usual test portrait prepared, and a short speech clip.

Import the fixtures into a test module (`from support.musetalk import avatar, clip, model_dir`); pytest
finds them there. Needs torch, diffusers and transformers: import it after the importorskip lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import portrait, speech
from facecast.audio.pcm import Audio
from facecast.lipsync.musetalk import small_decoder, student_unet
from facecast.lipsync.musetalk.random_weights import write_model_dir

PORTRAIT = "man_webcam_offcenter_01.jpg"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny v1.5 model directory (musetalkV15/, sd-vae/, whisper/), no variants."""
    return write_model_dir(tmp_path_factory.mktemp("musetalk-v15"), "tiny", "v1.5")


@pytest.fixture(scope="session")
def variants_dir(tmp_path_factory) -> Path:
    """A tiny v1.5 model directory with small-decoder/ and musetalk-student/ written beside the release's."""
    return write_variants(write_model_dir(tmp_path_factory.mktemp("musetalk-variants"), "tiny", "v1.5"))


@pytest.fixture(scope="session")
def avatar():
    """The webcam test portrait, prepared (512x512, one frame); where mediapipe or the test media
    are missing (a GPU machine), the first avatar already prepared in FACECAST_CACHE_DIR."""
    import importlib.util

    path = portrait(PORTRAIT)
    if importlib.util.find_spec("mediapipe") is not None and path.is_file():
        from facecast.avatar.prepare import prepare

        return prepare(path)
    from facecast.avatar.cache import AvatarCache

    entries = AvatarCache().list()
    if not entries:
        pytest.skip("no test portrait (or no mediapipe) and no prepared avatar in FACECAST_CACHE_DIR")
    return AvatarCache().load(entries[0]["id"])


@pytest.fixture(scope="session")
def clip() -> Audio:
    """1.2 s of real English speech at its native 16 kHz."""
    from facecast.audio.decode import load_audio

    audio = load_audio(speech("en_radio_address_01_8s.wav"))
    return Audio(audio.samples[: int(1.2 * audio.sample_rate)], audio.sample_rate)


def load_teacher(root: Path) -> torch.nn.Module:
    """The UNet of the model directory `root` (v1.5 layout), float32 on the CPU."""
    folder = root / "musetalkV15"
    teacher = student_unet.build_unet(json.loads((folder / "musetalk.json").read_text()))
    teacher.load_state_dict(torch.load(folder / "unet.pth", map_location="cpu", weights_only=True))
    return teacher


def write_variants(root: Path, decoder_preset: str = "tiny", student_preset: str = "base", seed: int = 1) -> Path:
    """Write <root>/small-decoder (seeded random DecoderTiny of `decoder_preset`) and <root>/musetalk-student
    (`student_preset` made from root's teacher, as `facecast distill` would before training); returns root."""
    config = small_decoder.decoder_config(decoder_preset)
    torch.manual_seed(seed)
    small_decoder.save_decoder(small_decoder.build_decoder(config), config, root / small_decoder.SMALL_DECODER_DIR,
                               {"preset": decoder_preset, "seed": seed, "trained": False})
    student, student_config, counts = student_unet.make_student(load_teacher(root), student_preset, seed)
    student_unet.save_student(student, student_config, root / student_unet.STUDENT_DIR,
                              {"preset": student_preset, "seed": seed, "counts": counts, "trained": False})
    return root
