"""`facecast animate` end to end in a subprocess: output, audio kept, --help, bad input leaves no file."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import portrait, talking
from probe import probe


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facecast.cli", *map(str, args)], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


def test_help():
    result = run("animate", "--help")
    assert result.returncode == 0
    assert "usage: facecast animate" in result.stdout and "--driver" in result.stdout
    assert "animate" in run("--help").stdout


def test_animate_keeps_the_drivers_audio_on_a_regular_frame_grid(tmp_path):
    out = tmp_path / "out.mp4"
    result = run("animate", "--avatar", portrait("man_glasses_01.jpg"), "--driver", talking("man_suit_6s.mp4"),
                 "-o", out, "--max-size", "480", "-q")
    assert result.returncode == 0, result.stderr
    assert "with the driver's audio" in result.stdout
    p = probe(out)
    assert (p.video_codec, p.audio_codec, p.size) == ("h264", "aac", (480, 480))
    # the driver has variable frame timing (135 frames in 6.1 s at a 30 fps base): output is a steady 30 fps
    assert p.fps == pytest.approx(30) and abs(p.frames / 30 - p.audio_duration) < 0.1


def test_animate_the_default_avatar_in_absolute_mode(tmp_path):
    out = tmp_path / "abs.mp4"
    result = run("animate", "--driver", talking("woman_glasses_5s.mp4"), "-o", out, "--absolute", "-q")
    assert result.returncode == 0, result.stderr
    assert probe(out).size == (512, 512)


def _write_video(path, frames: np.ndarray, fps: int = 25) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.time_base = Fraction(1, fps)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="bgr24")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))


@pytest.mark.parametrize("case", ["no_face", "text", "missing", "corrupt", "bad_output", "bad_avatar"])
def test_bad_input_is_reported_and_leaves_no_file(tmp_path, case):
    out = tmp_path / "out.mp4"
    driver = talking("man_suit_6s.mp4")
    avatar = portrait("man_glasses_01.jpg")
    expected = {"no_face": "no face found", "text": "not a video", "missing": "no such file",
                "corrupt": "cannot", "bad_output": "ending in .mp4", "bad_avatar": "not a prepared avatar id"}[case]
    if case == "no_face":
        driver = tmp_path / "wall.mp4"
        _write_video(driver, np.full((12, 128, 128, 3), 90, np.uint8))
    elif case == "text":
        driver = tmp_path / "notes.mp4"
        driver.write_text("not a video\n" * 50)
    elif case == "missing":
        driver = tmp_path / "nothing.mp4"
    elif case == "corrupt":
        driver = tmp_path / "broken.mp4"
        driver.write_bytes(talking("man_suit_6s.mp4").read_bytes()[:3000])
    elif case == "bad_output":
        out = tmp_path / "out.avi"
    elif case == "bad_avatar":
        avatar = "no-such-avatar"
    result = run("animate", "-a", avatar, "-d", driver, "-o", out, "-q")
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []
