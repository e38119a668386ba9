"""`facecast distill decoder|unet` on the CPU: tiny seeded random-weight teachers, a real portrait and
real speech from ../shared/data, a synthetic image folder. Step counts are kept small."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from conftest import portrait, speech  # noqa: E402

from facecast.distill import metrics  # noqa: E402
from facecast.distill.augment import view  # noqa: E402
from facecast.distill.data import build_crops, split  # noqa: E402
from facecast.distill.decoder_task import train_decoder  # noqa: E402
from facecast.distill.settings import DecoderSettings, UnetSettings  # noqa: E402
from facecast.distill.speech import build_speech  # noqa: E402
from facecast.distill.teacher import load_teacher  # noqa: E402
from facecast.distill.unet_task import train_unet  # noqa: E402
from facecast.errors import InvalidArgument  # noqa: E402
from facecast.lipsync.musetalk.random_weights import write_model_dir  # noqa: E402

PORTRAIT = portrait("man_glasses_01.jpg")


class Killed(Exception):
    """Stands for a kill: raised from on_step, after which nothing more of the run is saved."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: on a shared, busy machine several OpenMP threads wait on each other for seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("teacher"), "tiny", "v1.5")


@pytest.fixture(scope="module")
def teacher(model_dir):
    return load_teacher(model_dir, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder of two synthetic images (smooth colour fields with a few shapes), not faces."""
    import cv2

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(5)
    for i in range(2):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        image = cv2.resize(small, (400, 300), interpolation=cv2.INTER_CUBIC)
        cv2.circle(image, (200, 150), 60, (20, 40, 200), -1)
        cv2.imwrite(str(folder / f"img{i}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def crops(images):
    return build_crops([PORTRAIT], [images], frames_per_avatar=4, max_crops=16)


@pytest.fixture(scope="module")
def speech_pool(teacher):
    """A real 3.4 s Mandarin clip and one English TTS sentence: two sources."""
    return build_speech(teacher.models.whisper, [speech("zh_short_01_3s.wav")], 1, ("en",), max_windows=400)


def decoder_settings(tmp_path, **kw) -> DecoderSettings:
    base = dict(output=tmp_path / "small-decoder", preset="tiny", steps=6, batch_size=2, eval_samples=2, eval_every=3,
                checkpoint_every=2, lr=3e-3, seed=7, warmup_steps=1)
    return DecoderSettings(**{**base, **kw})


def unet_settings(tmp_path, **kw) -> UnetSettings:
    base = dict(output=tmp_path / "musetalk-student", preset="tiny", steps=6, batch_size=2, eval_samples=2,
                eval_every=3, checkpoint_every=2, lr=1e-3, seed=3, warmup_steps=1)
    return UnetSettings(**{**base, **kw})


# -- pieces ------------------------------------------------------------------------------

def test_pools_and_held_out_split(crops, speech_pool):
    assert crops.contexts.shape == (3, 320, 320, 3) and crops.contexts.dtype == np.uint8
    assert crops.names == ["man_glasses_01.jpg", "img0.png", "img1.png"]
    assert speech_pool.windows.shape[1:] == (50, 32) and speech_pool.windows.dtype == np.float16
    assert len(speech_pool.names) == 2 and speech_pool.names[1].startswith("tts:en:")
    s = split(crops.sources, seed=1, fraction=0.1, tag=3)
    assert s.held_out and len(s.held) == 1 and len(s.train) == 2 and not set(s.held) & set(s.train)
    assert np.array_equal(split(crops.sources, 1, 0.1, 3).held, s.held)  # chosen by the seed
    one = split(np.zeros(10, np.int64), 0, 0.2, 3)  # one source: its last items
    assert one.held.tolist() == [8, 9] and one.train.tolist() == list(range(8))
    assert not split(np.zeros(1, np.int64), 0, 0.2, 3).held_out


def test_plain_view_is_the_face_crop_and_augmented_views_are_seeded(crops):
    from facecast.avatar.prepare import prepare
    from facecast.lipsync.musetalk import crops as layout_mod

    avatar = prepare(PORTRAIT)
    box = layout_mod.layout(avatar.landmarks, avatar.size).boxes[0]
    face = layout_mod.face_crop(avatar.frames[0], box).astype(np.int16)
    plain = view(crops.contexts[0], None).astype(np.int16)
    assert plain.shape == (256, 256, 3) and np.abs(plain - face).mean() < 6  # same pixels, resampled once more
    a = view(crops.contexts[0], np.random.default_rng(1))
    assert np.array_equal(a, view(crops.contexts[0], np.random.default_rng(1)))
    assert not np.array_equal(a, view(crops.contexts[0], np.random.default_rng(2)))


def test_teacher_input_is_the_backends(teacher, crops):
    views = np.stack([view(c, None) for c in crops.contexts])
    ours = teacher.unet_input(teacher.images(views))
    theirs = teacher.models.net.encode_crops(views).float()
    assert ours.shape == (3, 8, 32, 32) and torch.allclose(ours, theirs, atol=1e-5)


def test_psnr_and_mouth_box():
    a = torch.zeros(2, 3, 256, 256)
    b = a.clone()
    b[0] += 0.1  # mse 0.01 -> 20 dB
    y0, y1, x0, x1 = metrics.MOUTH_BOX
    b[1, :, y0:y1, x0:x1] = 0.01
    overall, mouth = metrics.psnr_pair(b, a)
    assert overall[0].item() == pytest.approx(20.0, abs=1e-3) and mouth[0].item() == pytest.approx(20.0, abs=1e-3)
    assert mouth[1].item() == pytest.approx(40.0, abs=1e-3) and overall[1] > mouth[1]
    assert metrics.psnr(a, a).tolist() == [metrics.MAX_PSNR] * 2
    assert metrics.edge_loss(a, a).item() == 0 and metrics.edge_loss(b, a).item() > 0


@pytest.mark.parametrize("change, message", [
    (dict(steps=0), "--steps 0"), (dict(steps=None, minutes=None), "give a budget"), (dict(lr=-1.0), "--lr"),
    (dict(unet_fraction=0.9), "must not exceed 1"), (dict(preset="huge"), "--preset 'huge'"),
    (dict(eval_fraction=1.0), "--eval-fraction"), (dict(precision="fp8"), "--precision"),
])
def test_bad_settings_are_named(tmp_path, change, message):
    with pytest.raises(InvalidArgument, match=message):
        decoder_settings(tmp_path, **change).check()


def test_learning_rate_schedule():
    from facecast.distill.trainer import lr_factor

    s = DecoderSettings(steps=100, warmup_steps=10)
    assert lr_factor(s, 0, 0.0) == pytest.approx(0.1) and lr_factor(s, 9, 0.0) == pytest.approx(0.55 + 0.45 * np.cos(np.pi * 0.09))
    assert lr_factor(s, 50, 0.0) == pytest.approx(0.55) and lr_factor(s, 100, 0.0) == pytest.approx(0.1)
    timed = DecoderSettings(steps=None, minutes=1.0, warmup_steps=0)
    assert lr_factor(timed, 5, 30.0) == pytest.approx(0.55) and lr_factor(timed, 5, 90.0) == pytest.approx(0.1)
    assert lr_factor(replace(s, schedule="constant"), 0, 0.0) == 1.0


# -- the decoder ---------------------------------------------------------------------------

def test_decoder_trains_evaluates_and_exports(tmp_path, teacher, crops, speech_pool):
    from facecast.lipsync.musetalk.small_decoder import load_decoder

    statuses = []
    result = train_decoder(decoder_settings(tmp_path, steps=8, eval_every=4, accumulate=2), teacher,
                           crops=crops, speech=speech_pool, on_step=statuses.append)
    assert result.steps == 8 and result.samples == 8 * 2 * 2 and len(result.losses) == 8
    assert np.mean(result.losses[-3:]) < 0.9 * np.mean(result.losses[:3])  # the loss falls
    assert [e["step"] for e in result.evaluations] == [4, 8]
    assert all(np.isfinite(e["psnr"]) and np.isfinite(e["psnr_mouth"]) for e in result.evaluations)
    assert statuses[3].evaluation == result.evaluations[0] and statuses[0].samples_per_s > 0
    out = result.output
    files = ["config.json", "diffusion_pytorch_model.safetensors", "distill.json"]
    assert sorted(p.name for p in out.iterdir()) == files
    assert not (tmp_path / "small-decoder.ckpt").exists()  # removed after the export
    info = json.loads((out / "distill.json").read_text())
    assert info["kind"] == "decoder" and info["preset"] == "tiny" and info["steps"] == 8 and info["seed"] == 7
    assert info["evaluation"] == result.final and info["teacher"]["vae"] == teacher.identity["vae"]
    assert info["data"]["held_out"] is True
    loaded = load_decoder(out)
    z = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(z), result.student(z))


def test_decoder_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, teacher, crops, speech_pool):
    whole = train_decoder(decoder_settings(tmp_path / "a"), teacher, crops=crops, speech=speech_pool)

    def kill_at_5(status):
        if status.step == 5:
            raise Killed  # the last checkpoint is step 4; step 5 is lost
    settings = decoder_settings(tmp_path / "b")
    with pytest.raises(Killed):
        train_decoder(settings, teacher, crops=crops, speech=speech_pool, on_step=kill_at_5)
    checkpoint = tmp_path / "b" / "small-decoder.ckpt"
    assert checkpoint.is_file() and not (tmp_path / "b" / "small-decoder").exists()
    with pytest.raises(InvalidArgument, match="other settings: lr"):
        train_decoder(replace(settings, resume=True, lr=1e-3), teacher, crops=crops, speech=speech_pool)
    resumed = train_decoder(replace(settings, resume=True), teacher, crops=crops, speech=speech_pool)
    assert resumed.losses == whole.losses and resumed.evaluations == whole.evaluations
    a, b = whole.student.state_dict(), resumed.student.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = "diffusion_pytorch_model.safetensors"
    assert (whole.output / weights).read_bytes() == (resumed.output / weights).read_bytes()


def test_minutes_budget_and_bfloat16_autocast_on_the_cpu(tmp_path, teacher, crops):
    result = train_decoder(decoder_settings(tmp_path, steps=None, minutes=1e-5, unet_fraction=0.0, precision="bfloat16",
                                            export=False, checkpoint_every=0), teacher, crops=crops)
    assert result.steps == 1 and result.output is None and np.isfinite(result.losses[0])
    assert result.evaluations[-1]["step"] == 1 and not (tmp_path / "small-decoder").exists()


# -- the UNet --------------------------------------------------------------------------------

def test_unet_trains_resumes_bitwise_and_exports(tmp_path, teacher, crops, speech_pool):
    from facecast.lipsync.musetalk.student_unet import CONFIG, WEIGHTS, build_unet, locate_student

    whole = train_unet(unet_settings(tmp_path / "a", pixel_weight=0.1), teacher, crops=crops, speech=speech_pool)
    assert np.mean(whole.losses[-2:]) < np.mean(whole.losses[:2])
    assert [e["step"] for e in whole.evaluations] == [3, 6]
    assert {"psnr", "psnr_mouth", "latent_mse"} <= set(whole.final)

    def kill_at_3(status):
        if status.step == 3:
            raise Killed
    settings = unet_settings(tmp_path / "b", pixel_weight=0.1)
    with pytest.raises(Killed):
        train_unet(settings, teacher, crops=crops, speech=speech_pool, on_step=kill_at_3)
    resumed = train_unet(replace(settings, resume=True), teacher, crops=crops, speech=speech_pool)
    assert resumed.losses == whole.losses and resumed.evaluations == whole.evaluations
    assert (whole.output / WEIGHTS).read_bytes() == (resumed.output / WEIGHTS).read_bytes()

    folder = locate_student(tmp_path / "a")
    config = json.loads((folder / CONFIG).read_text())
    unet = build_unet(config)
    unet.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
    assert json.loads((folder / "distill.json").read_text())["kind"] == "unet"
    assert config["block_out_channels"] == [32, 32, 32]  # the tiny preset: innermost stage gone, half width


# -- rendering with the exports, and the command line -------------------------------------------

def test_exports_render_an_mp4(tmp_path, model_dir, teacher, crops, speech_pool, capsys):
    """Both exports land in (a copy of) the model directory and `facecast render --decoder small
    --unet student` renders with them: the backend's own loading, end to end."""
    import shutil

    import av

    from facecast.cli import main

    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    kw = dict(steps=2, eval_every=0, checkpoint_every=0)
    train_decoder(decoder_settings(models, **kw), teacher, crops=crops, speech=speech_pool)
    train_unet(unet_settings(models, **kw), teacher, crops=crops, speech=speech_pool)
    out = tmp_path / "students.mp4"
    assert main(["render", "--backend", "musetalk", "--model-dir", str(models), "--decoder", "small",
                 "--unet", "student", "--avatar", str(PORTRAIT), "--text", "Hi.", "-o", str(out), "-q"]) == 0
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert sum(1 for _ in container.decode(video)) > 5


def test_cli_trains_and_exports(tmp_path, model_dir, capsys):
    from facecast.cli import main

    out = tmp_path / "dec"
    args = ["distill", "decoder", "--model-dir", str(model_dir), "--avatar", str(PORTRAIT), "-o", str(out),
            "--preset", "tiny", "--steps", "2", "--batch-size", "2", "--eval-samples", "2", "--tts-sentences", "1",
            "--voices", "de", "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: decoder preset tiny" in printed and "held-out PSNR vs the full decoder" in printed
    assert json.loads((out / "distill.json").read_text())["teacher"]["model_dir"] == str(model_dir.resolve())


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("extra, message", [
    (["--model-dir", "{missing}"], "does not exist"),
    ([], "no training images"),
    (["--avatar", "{blank}"], "face"),
    (["--avatar", "{portrait}", "--steps", "0"], "--steps 0"),
    (["--avatar", "{portrait}", "--unet-fraction", "2"], "--unet-fraction 2.0"),
    (["--avatar", "{portrait}", "--lr", "x"], "invalid float value"),
    (["--avatar", "{portrait}", "-o", "{model}/whisper"], "holds no earlier export"),
    (["--avatar", "{portrait}", "--resume"], "no checkpoint"),
    (["--avatar", "{missing}"], "no such file"),
    (["--avatar", "{portrait}", "--audio", "{missing}"], "--audio"),
    (["--avatar", "{portrait}", "--images", "{portrait}"], "is not a folder"),
    (["--avatar", "{portrait}", "--tts-sentences", "0", "--unet-fraction", "0.5"], "no speech"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, model_dir, capsys, extra, message):
    import cv2

    from facecast.cli import main

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    names = {"missing": str(tmp_path / "nowhere"), "blank": str(blank), "portrait": str(PORTRAIT),
             "model": str(model_dir)}
    argv = ["distill", "decoder", "--preset", "tiny", "--steps", "1", "-q"]
    if "--model-dir" not in extra:
        argv += ["--model-dir", str(model_dir)]
    before = _listing(model_dir)
    with pytest.raises(SystemExit) if "invalid" in message else _nothing():
        code = main(argv + [e.format(**names) for e in extra])
        assert code == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert _listing(model_dir) == before


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_on_cuda(tmp_path, model_dir, images, precision):
    gpu = load_teacher(model_dir, torch.device("cuda"), torch.float16)
    plain = build_crops([], [images], frames_per_avatar=4, max_crops=16)  # no faces: runs without mediapipe
    result = train_decoder(decoder_settings(tmp_path, precision=precision, unet_fraction=0.0, steps=3), gpu,
                           crops=plain)
    assert len(result.losses) == 3 and all(np.isfinite(result.losses)) and np.isfinite(result.final["psnr"])


def test_cli_resume_after_sigkill_gives_the_same_weights(tmp_path, model_dir):
    """A real kill: the CLI in a child process is SIGKILLed once its first checkpoint is on disk;
    `--resume` then ends with the weights of a run that never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from facecast.cli import main

    def argv(out: Path) -> list[str]:
        return ["distill", "decoder", "--model-dir", str(model_dir), "--avatar", str(PORTRAIT), "-o", str(out),
                "--preset", "tiny", "--steps", "5", "--batch-size", "2", "--eval-samples", "2", "--eval-every", "2",
                "--checkpoint-every", "1", "--unet-fraction", "0", "--tts-sentences", "0", "--seed", "11",
                "--warmup-steps", "1", "-q"]
    whole = tmp_path / "whole"
    assert main(argv(whole)) == 0
    killed = tmp_path / "killed"
    checkpoint = tmp_path / "killed.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-m", "facecast.cli", *argv(killed)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpoint.exists(), "the child wrote no checkpoint"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL and not killed.exists()
    assert main(argv(killed) + ["--resume"]) == 0
    weights = "diffusion_pytorch_model.safetensors"
    assert (whole / weights).read_bytes() == (killed / weights).read_bytes()
    assert json.loads((whole / "distill.json").read_text())["evaluation"] == \
        json.loads((killed / "distill.json").read_text())["evaluation"]


@pytest.mark.parametrize("task, words", [
    ("decoder", ["data:", "targets:", "budget:", "numbers:", "output:", "small-decoder/", "--unet-fraction"]),
    ("unet", ["speech:", "targets:", "budget:", "output:", "musetalk-student/", "--tts-sentences"]),
])
def test_help_explains_data_targets_budget_and_outputs(capsys, task, words):
    from facecast.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["distill", task, "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and all(word in text for word in words)
