"""facecast stylize on a CPU with a tiny seeded random-weight Stable Diffusion (tests/support/tiny_sd.py).

The random pipeline paints noise, so what is tested is what stylize promises whatever the weights:
the picture keeps the photo's size, the face region is kept (pixel for pixel at --face-strength 0,
closer to the photo the lower the face strength) while the rest changes, the face is found where
it was (and prepares as an avatar), a seed reproduces the picture, and bad input writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from conftest import portrait, speech  # noqa: E402
from support.tiny_sd import write_tiny_sd  # noqa: E402

from facecast.cli import main  # noqa: E402
from facecast.errors import InvalidArgument, ModelFilesMissing, NoFaceFound  # noqa: E402
from facecast.stylize.face_mask import face_mask  # noqa: E402
from facecast.stylize.model_files import locate  # noqa: E402
from facecast.stylize.pipeline import (StylizeSettings, find_face, load_pipeline, read_photo,  # noqa: E402
                                       stylize_file, stylize_image)

PHOTO = portrait("man_bw_archival_01.jpg")  # 375 x 500: not square, so the aspect round trip is tested
FAST = dict(prompt="an oil painting", steps=4, strength=1.0, size=128, guidance=1.0)  # 4 steps at 96 x 128, no CFG


@pytest.fixture(scope="session")
def sd_dir(tmp_path_factory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("tiny-sd"), seed=0)


@pytest.fixture(scope="session")
def pipe(sd_dir):
    return load_pipeline(locate(sd_dir), device="cpu")


@pytest.fixture(scope="session")
def photo():
    image = read_photo(PHOTO)
    landmarks = find_face(image, None)
    assert landmarks is not None
    return image, landmarks


def test_the_face_is_kept_the_rest_is_painted_and_the_result_prepares(pipe, photo, tmp_path):
    from facecast.avatar.cache import AvatarCache
    from facecast.avatar.landmarks import box_of
    from facecast.avatar.prepare import prepare

    image, landmarks = photo
    out = tmp_path / "styled.png"
    steps = []
    settings = StylizeSettings(face_strength=0.0, **dict(FAST, guidance=7.5, negative_prompt="blurry"))
    result = stylize_file(PHOTO, out, None, settings, pipe=pipe,
                          progress=lambda done, total: steps.append((done, total)))
    styled = cv2.imread(str(out))
    assert styled.shape == image.shape == (500, 375, 3)
    assert np.array_equal(styled, result.image)
    mask = face_mask(landmarks, image.shape[:2])
    face, outside = mask == 1.0, mask == 0.0
    assert face.sum() > 0.05 * mask.size and outside.sum() > 0.3 * mask.size
    diff = np.abs(styled.astype(int) - image.astype(int)).mean(axis=2)
    assert diff[face].max() == 0, "the face oval is the photo's, pixel for pixel"
    assert diff[outside].mean() > 20, "the rest was repainted"
    assert result.face_kept and result.overlap > 0.9
    total = steps[-1][1]  # 4 steps; PNDM (as SD 1.5 ships it) runs its first one twice
    assert total in (4, 5) and steps == [(i, total) for i in range(1, total + 1)]
    avatar = prepare(out, cache=AvatarCache(tmp_path / "cache"))
    before, after = box_of(landmarks), avatar.boxes[0]
    assert np.abs(after - before).max() < 0.05 * (before[2] - before[0]), (before, after)


def test_a_seed_gives_the_same_picture(pipe, photo):
    image, landmarks = photo
    first = stylize_image(pipe, image, landmarks, StylizeSettings(seed=7, face_strength=0.5, **FAST))
    again = stylize_image(pipe, image, landmarks, StylizeSettings(seed=7, face_strength=0.5, **FAST))
    other = stylize_image(pipe, image, landmarks, StylizeSettings(seed=8, face_strength=0.5, **FAST))
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 5


def _face_and_rest_distances(pipe, photo, monkeypatch, face_strengths, strength=1.0):
    """For each face strength: the mean |latent - photo latent| the VAE decodes, in the face and outside
    it (on the latents: the random decoder scrambles pixels, so pixels would not show the masking)."""
    image, landmarks = photo
    decoded = []
    decode = pipe.vae.decode
    monkeypatch.setattr(pipe.vae, "decode", lambda z, *a, **k: decoded.append(z.clone()) or decode(z, *a, **k))
    ww, wh = 96, 128  # FAST's work size for a 375 x 500 photo
    work = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA)
    pixels = torch.from_numpy(np.ascontiguousarray(work[:, :, ::-1])).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        latent = pipe.vae.encode(pixels).latent_dist.mode()[0]  # (4, 16, 12), unscaled as decode takes it
    mask = cv2.resize(face_mask(landmarks, image.shape[:2]), (ww // 8, wh // 8), interpolation=cv2.INTER_AREA)
    face, outside = mask > 0.99, mask < 0.01
    assert face.sum() >= 8 and outside.sum() >= 60
    found = []
    for face_strength in face_strengths:
        decoded.clear()
        settings = StylizeSettings(face_strength=face_strength, **dict(FAST, steps=10, strength=strength))
        stylize_image(pipe, image, landmarks, settings)
        diff = (decoded[0][0] - latent).abs().mean(0).numpy()
        found.append((diff[face].mean(), diff[outside].mean()))
    return found


def test_a_lower_face_strength_keeps_the_face_closer_to_the_photo(pipe, photo, monkeypatch):
    """The face's latent follows the photo's for all but the last face_strength share of the steps,
    so it ends nearer the photo's latent the lower the face strength; the background is repainted alike."""
    (face0, rest0), (face3, rest3), (face10, rest10) = _face_and_rest_distances(
        pipe, photo, monkeypatch, (0.0, 0.3, 1.0))
    assert face0 < 0.01 * face10, (face0, face10)
    assert face0 < face3 < 0.5 * face10, (face0, face3, face10)
    assert min(rest0, rest3, rest10) > 0.5 * face10
    assert max(rest0, rest3, rest10) < 1.2 * min(rest0, rest3, rest10)


@pytest.mark.parametrize("scheduler", ["EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "DDIMScheduler"])
def test_the_face_is_kept_with_other_schedulers(pipe, photo, monkeypatch, scheduler):
    """A model folder may ship any diffusers scheduler: re-noising the photo's latent to the next
    step's level (scheduler.add_noise) keeps the face with each."""
    import diffusers

    monkeypatch.setattr(pipe, "scheduler", getattr(diffusers, scheduler).from_config(pipe.scheduler.config))
    (face0, rest0), (face10, _) = _face_and_rest_distances(pipe, photo, monkeypatch, (0.0, 1.0), strength=0.6)
    assert face0 < 0.1 * face10 and face0 < 0.1 * rest0, (face0, face10, rest0)


def test_a_lost_face_writes_nothing_unless_forced(pipe, tmp_path):
    out = tmp_path / "lost.png"
    settings = StylizeSettings(face_strength=1.0, **FAST)  # nothing protects the face from the noise painter
    with pytest.raises(NoFaceFound, match="lower --strength .* --force"):
        stylize_file(PHOTO, out, None, settings, pipe=pipe)
    assert not out.exists() and not list(tmp_path.iterdir())
    result = stylize_file(PHOTO, out, None, settings, pipe=pipe, force=True)
    assert out.is_file() and not result.face_kept


def test_jpeg_output(pipe, tmp_path):
    out = tmp_path / "styled.jpeg"
    stylize_file(PHOTO, out, None, StylizeSettings(face_strength=0.0, **FAST), pipe=pipe)
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    assert cv2.imread(str(out)).shape == (500, 375, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_in_float16(sd_dir, tmp_path):
    out = tmp_path / "styled.png"
    settings = StylizeSettings(face_strength=0.0, device="cuda", dtype="float16", **FAST)
    first = stylize_file(PHOTO, out, sd_dir, settings)
    again = stylize_file(PHOTO, tmp_path / "again.png", sd_dir, settings)
    assert first.face_kept and first.image.shape == (500, 375, 3)
    # the same seed: the same noise (drawn on the CPU); GPU kernels may round differently run to run
    assert np.abs(first.image.astype(int) - again.image.astype(int)).mean() < 1.0


# ------------------------------------------------------------------------------------------ the model folder

def _copy(sd_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sd_dir, tmp_path / "sd"))


def test_an_incomplete_model_folder_lists_what_is_missing(sd_dir, tmp_path):
    sd = _copy(sd_dir, tmp_path)
    (sd / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(sd / "tokenizer")
    (sd / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(ModelFilesMissing) as err:
        locate(sd)
    message = str(err.value)
    assert "\n" not in message
    for part in ("vae/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json", "scheduler/scheduler_config.json"):
        assert part in message
    assert "unet/" not in message and "text_encoder/" not in message


def test_model_folders_that_are_not_sd_img2img_are_refused(sd_dir, tmp_path):
    sd = _copy(sd_dir, tmp_path)
    index = json.loads((sd / "model_index.json").read_text())
    (sd / "model_index.json").write_text(json.dumps(dict(index, _class_name="StableDiffusionXLPipeline")))
    with pytest.raises(InvalidArgument, match="StableDiffusionXLPipeline"):
        locate(sd)
    (sd / "model_index.json").write_text(json.dumps(index))
    unet = json.loads((sd / "unet" / "config.json").read_text())
    (sd / "unet" / "config.json").write_text(json.dumps(dict(unet, in_channels=9)))
    with pytest.raises(InvalidArgument, match="inpainting"):
        locate(sd)
    with pytest.raises(ModelFilesMissing, match="does not exist"):
        locate(tmp_path / "nowhere")
    (sd / "unet" / "config.json").write_text("{not json")
    with pytest.raises(ModelFilesMissing, match="unet/config.json: not valid JSON"):
        locate(sd)


def test_fp16_variant_weights_are_found(sd_dir, tmp_path):
    sd = _copy(sd_dir, tmp_path)
    assert locate(sd).variant is None
    for folder, stem in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                         ("text_encoder", "model")):
        (sd / folder / f"{stem}.safetensors").rename(sd / folder / f"{stem}.fp16.safetensors")
    assert locate(sd).variant == "fp16"


# ------------------------------------------------------------------------------------------ the command line

def _main(argv: list[str]) -> int:
    """facecast's exit status for argv, in this process (argparse's errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _stylize(*args) -> list[str]:
    return ["stylize", *map(str, args)]


def _bad_inputs(sd_dir: Path, tmp_path: Path) -> list[tuple[list[str], str]]:
    incomplete = _copy(sd_dir, tmp_path)
    (incomplete / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"\0" * 64)
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all\n")
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((200, 160, 3), 180, np.uint8))
    mine = tmp_path / "mine.jpg"
    shutil.copy(PHOTO, mine)
    link = tmp_path / "link.png"
    link.symlink_to(mine)
    out = tmp_path / "out.png"
    good = ["--model-dir", sd_dir, "--prompt", "ink drawing"]
    return [
        (_stylize(PHOTO, "--model-dir", tmp_path / "nowhere", "--prompt", "x", "-o", out), "does not exist"),
        (_stylize(PHOTO, "--model-dir", incomplete, "--prompt", "x", "-o", out),
         "missing unet/diffusion_pytorch_model.safetensors"),
        (_stylize(PHOTO, "--model-dir", single, "--prompt", "x", "-o", out),
         "single-file checkpoints are not supported"),
        (_stylize(text, *good, "-o", out), "not an image"),
        (_stylize(speech("zh_short_01_3s.wav"), *good, "-o", out), "not an image"),
        (_stylize(tmp_path / "absent.jpg", *good, "-o", out), "no such file"),
        (_stylize(wall, *good, "-o", out), "no face found"),
        (_stylize(mine, *good, "-o", mine), "never overwrites"),
        (_stylize(mine, *good, "-o", link), "never overwrites"),
        (_stylize(PHOTO, *good, "-o", tmp_path / "out.gif"), ".png or .jpg or .jpeg"),
        (_stylize(PHOTO, *good, "-o", tmp_path / "new" / "out.png"), "does not exist"),
        (_stylize(PHOTO, *good, "-o", "/proc/out.png"), "cannot write in folder"),
        (_stylize(PHOTO, *good, "-o", tmp_path), "is a folder"),
        (_stylize(PHOTO, *good[:2], "--prompt", "  ", "-o", out), "--prompt"),
        (_stylize(PHOTO, *good, "-o", out, "--strength", "0"), "--strength"),
        (_stylize(PHOTO, *good, "-o", out, "--strength", "1.5"), "--strength"),
        (_stylize(PHOTO, *good, "-o", out, "--strength", "much"), "--strength"),
        (_stylize(PHOTO, *good, "-o", out, "--strength", "nan"), "--strength"),
        (_stylize(PHOTO, *good, "-o", out, "--face-strength", "-0.1"), "--face-strength"),
        (_stylize(PHOTO, *good, "-o", out, "--steps", "0"), "--steps"),
        (_stylize(PHOTO, *good, "-o", out, "--steps", "3", "--strength", "0.2"), "runs no denoising step"),
        (_stylize(PHOTO, *good, "-o", out, "--guidance", "-1"), "--guidance"),
        (_stylize(PHOTO, *good, "-o", out, "--size", "100"), "multiple of 8"),
        (_stylize(PHOTO, *good, "-o", out, "--seed", "-1"), "--seed"),
        (_stylize(PHOTO, *good, "-o", out, "--dtype", "int8"), "--dtype"),
        (_stylize(PHOTO, *good, "-o", out, "--device", "warp-drive"), "not a torch device"),
    ] + ([] if torch.cuda.is_available() else [
        (_stylize(PHOTO, *good, "-o", out, "--device", "cuda"), "no CUDA GPU"),
    ])


def test_bad_input_is_one_line_and_writes_nothing(sd_dir, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    cases = _bad_inputs(sd_dir, work)
    before = {p: p.stat().st_mtime_ns for p in work.rglob("*")}
    mine = work / "mine.jpg"
    original = mine.read_bytes()
    for argv, expected in cases:
        assert _main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert expected in err, (argv, err)
        assert err.count("\n") == 0, (argv, err)
        assert {p: p.stat().st_mtime_ns for p in work.rglob("*")} == before, argv
    assert mine.read_bytes() == original


def test_the_progress_bar_counts_denoising_steps_on_a_terminal(sd_dir, tmp_path, capsys):
    import re

    from test_cli import main_on_a_terminal

    out = tmp_path / "bar.png"
    status, screen = main_on_a_terminal(*_stylize(PHOTO, "--model-dir", sd_dir, "--prompt", "pencil sketch",
                                                  "--steps", "6", "--strength", "0.5", "--face-strength", "0",
                                                  "--guidance", "1", "--size", "128", "-o", out))
    assert status == 0, screen
    found = re.findall(r"denoising:.*?(\d+)/(\d+) \[", screen)
    counts, totals = [int(done) for done, _ in found], {int(total) for _, total in found}
    assert totals in ({3}, {4}), screen  # int(6 x 0.5) steps; PNDM runs one of them twice
    assert counts == sorted(counts) and max(counts) >= 1, screen
    assert "step" in screen and out.is_file()
    assert capsys.readouterr().out.strip() == str(out)


def test_a_missing_gpu_extra_names_the_install_command(sd_dir, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    out = tmp_path / "out.png"
    assert _main(_stylize(PHOTO, "--model-dir", sd_dir, "--prompt", "x", "-o", out)) == 1
    err = capsys.readouterr().err.strip()
    assert "diffusers" in err and 'pip install "facecast[gpu]"' in err and not out.exists()


def test_the_facecast_command(sd_dir, tmp_path):
    script = Path(sys.executable).with_name("facecast")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "facecast.cli"]
    out = tmp_path / "styled.png"
    args = _stylize(PHOTO, "--model-dir", sd_dir, "--prompt", "a watercolour", "--negative-prompt", "blurry",
                    "--steps", "4", "--strength", "0.75", "--face-strength", "0", "--guidance", "5", "--size", "128",
                    "--seed", "3", "--device", "cpu", "--dtype", "float32", "-o", out)
    result = subprocess.run(command + args, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert cv2.imread(str(out)).shape == (500, 375, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["styled.png"], "no temporary file is left"
    prepared = subprocess.run(command + ["prepare", str(out)], capture_output=True, text=True,
                              env=dict(os.environ, FACECAST_CACHE_DIR=str(tmp_path / "cache")), timeout=300)
    assert prepared.returncode == 0 and prepared.stdout.strip(), prepared.stderr
    helped = subprocess.run(command + ["stylize", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--face-strength" in helped.stdout
