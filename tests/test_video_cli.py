"""`facecast video ...` commands and `facecast render --stabilize --temporal --plate ...`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import metrics as M
from support import synthetic as syn

from facecast.cli import main
from facecast.video.stream import frames, probe

DATA = syn.data_dir()


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_help_answers_questions(capsys):
    top = _help(capsys, "video")
    for tool in ("stabilize", "reshake", "segments", "plate", "composite", "footlock"):
        assert tool in top
    assert "default 30" in _help(capsys, "video", "stabilize")  # the window
    assert "transforms" in _help(capsys, "video", "stabilize")
    segments = _help(capsys, "video", "segments")
    assert "memory" in segments and "cross-faded" in segments and "default 5" in segments
    assert "70/30" in _help(capsys, "video", "footlock")
    assert "inpainted" in _help(capsys, "video", "plate")
    render = _help(capsys, "render")
    assert "--stabilize" in render and "--plate" in render and "--temporal" in render


@pytest.fixture(scope="module")
def shaky(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    syn.shaky_clip(folder / "shaky.mp4", DATA / "portraits", n=50, size=(256, 192))
    return folder


def test_stabilize_then_reshake_round_trip(shaky, capsys):
    steady, back = shaky / "steady.mp4", shaky / "back.mp4"
    assert main(["video", "stabilize", str(shaky / "shaky.mp4"), "-o", str(steady), "--track-person", "-q"]) == 0
    assert "camera path" in capsys.readouterr().out
    camera = json.loads((shaky / "steady.transforms.json").read_text())
    assert camera["frames"] == 50 and camera["window"] == 30
    assert main(["video", "reshake", str(steady), "-t", str(shaky / "steady.transforms.json"), "-o", str(back),
                 "-q"]) == 0
    original, restored = list(frames(probe(shaky / "shaky.mp4"))), list(frames(probe(back)))
    assert len(restored) == 50
    inner = (slice(24, -24), slice(24, -24))
    assert np.mean([M.psnr(a[inner], b[inner]) for a, b in zip(original, restored)]) > 28


def test_segments_prints_the_plan(shaky, capsys):
    assert main(["video", "segments", str(shaky / "shaky.mp4"), "--max-segment-seconds", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "segment(s)" in out and "motion" in out and out.count("\n") >= 5


def test_plate_and_composite_commands(tmp_path, capsys):
    clip = tmp_path / "sway.mp4"
    syn.plate_clip(clip, DATA / "portraits", n=30, size=(192, 144))
    assert main(["video", "plate", str(clip), "-o", str(tmp_path / "plate.png"), "-q"]) == 0
    assert cv2.imread(str(tmp_path / "plate.png")).shape == (144, 192, 3)
    assert "inpainted" in capsys.readouterr().out
    assert main(["video", "composite", str(clip), "-b", str(tmp_path / "plate.png"), "-o",
                 str(tmp_path / "comp.mp4"), "-q"]) == 0
    assert len(list(frames(probe(tmp_path / "comp.mp4")))) == 30


@pytest.mark.slow
def test_footlock_command_end_to_end(tmp_path, capsys):
    doll, _, _ = syn.paper_doll(DATA / "talking" / "man_suit_6s.mp4", n=50)
    clip = syn.write_mp4(tmp_path / "doll.mp4", doll, (doll.shape[2], doll.shape[1]))
    assert main(["video", "footlock", str(clip), "-o", str(tmp_path / "locked.mp4"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "feet locked in" in out and " 0 frame" not in out


@pytest.fixture(scope="module")
def avatar_clip(tmp_path_factory) -> Path:
    """1.2 s of a real talking clip at 256 px, with a little injected camera shake."""
    folder = tmp_path_factory.mktemp("render")
    info = probe(DATA / "talking" / "man_suit_6s.mp4", max_long_side=256)
    rng = np.random.default_rng(0)
    shaken = []
    for _, frame in zip(range(30), frames(info)):
        dx, dy = rng.normal(0, 2.0, 2)
        shaken.append(cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), info.size,
                                     borderMode=cv2.BORDER_REFLECT101))
    return syn.write_mp4(folder / "avatar.mp4", shaken, info.size, fps=25)


@pytest.mark.slow
def test_render_with_stabilize_temporal_and_plate(avatar_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("FACECAST_CACHE_DIR", str(tmp_path / "cache"))
    speech = DATA / "speech" / "zh_short_01_3s.wav"
    plain, steady = tmp_path / "plain.mp4", tmp_path / "steady.mp4"
    base = ["render", "-a", str(avatar_clip), "--audio", str(speech), "-q", "--no-idle"]
    assert main([*base, "-o", str(plain)]) == 0
    assert main([*base, "-o", str(steady), "--stabilize", "--temporal", "--max-segment-seconds", "1"]) == 0
    a, b = list(frames(probe(plain))), list(frames(probe(steady)))
    assert len(a) == len(b) == 84  # 3.38 s of speech at 25 fps
    assert np.mean([M.psnr(x, y) for x, y in zip(a, b)]) > 30  # the camera motion is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "plain.mp4", "steady.mp4"]  # no staging left
    assert list((tmp_path / "cache" / "avatars").glob("*/camera_path.json"))  # saved beside the avatar
    bg = tmp_path / "bg.jpg"
    shutil.copy(DATA / "portraits" / "child_photo_in_hand_01.jpg", bg)
    assert main([*base, "-o", str(tmp_path / "new_bg.mp4"), "--plate", str(bg)]) == 0
    corner = np.stack(list(frames(probe(tmp_path / "new_bg.mp4"))))[:, :12, :12].astype(int)
    assert np.abs(corner - np.stack(a)[:, :12, :12]).mean() > 20  # the office is gone from the corner


@pytest.mark.slow
def test_render_with_footlock(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACECAST_CACHE_DIR", str(tmp_path / "cache"))
    doll, _, _ = syn.paper_doll(DATA / "talking" / "man_suit_6s.mp4", n=40)
    avatar = syn.write_mp4(tmp_path / "doll.mp4", doll, (doll.shape[2], doll.shape[1]))
    speech = ["--audio", str(DATA / "speech" / "zh_short_01_3s.wav"), "-q"]
    assert main(["render", "-a", str(avatar), *speech, "-o", str(tmp_path / "out.mp4"), "--footlock"]) == 0
    assert len(list(frames(probe(tmp_path / "out.mp4")))) == 84
    head = DATA / "talking" / "woman_glasses_5s.mp4"
    assert main(["render", "-a", str(head), *speech, "-o", str(tmp_path / "head.mp4"), "--footlock"]) == 1
    assert "feet" in capsys.readouterr().err and not (tmp_path / "head.mp4").exists()
