"""The facecast command line, end to end in a subprocess (and in-process on a terminal): outputs, --help,
bad input and the progress bar."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import portrait, speech
from probe import decode_frames, mouth_openings, probe
from support.media import write_wav


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facecast.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=os.environ.copy(), timeout=300)


@pytest.mark.parametrize("command", [[], ["prepare"], ["render"], ["demo"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: facecast" in result.stdout


def test_demo(tmp_path):
    out = tmp_path / "demo.mp4"
    result = run("demo", "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    p = probe(out)
    assert (p.video_codec, p.audio_codec, p.size) == ("h264", "aac", (512, 512))
    assert abs(p.frames - p.audio_duration * 25) <= 1.5


def test_render_text_and_audio(tmp_path):
    out = tmp_path / "text.mp4"
    result = run("render", "--avatar", portrait("man_glasses_01.jpg"), "--text", "Guten Morgen", "--voice", "de",
                 "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert probe(out).audio_codec == "aac"
    # The synthesized speech moves the mouth (visemes from its phoneme timings), measured by the
    # face mesh on the decoded frames: it opens during the words and is closed in the last frame.
    openings = mouth_openings(decode_frames(out))
    assert np.nanmax(openings) > np.nanmin(openings) + 0.05, openings
    assert openings[-1] < np.nanmin(openings) + 0.03, "closed again after the last word"
    out2 = tmp_path / "audio.mp4"
    result = run("render", "-a", portrait("child_photo_in_hand_01.jpg"), "--audio", speech("fr_01_7s.wav"),
                 "-o", out2, "-q", "--no-idle", "--fps", "30")
    assert result.returncode == 0, result.stderr
    p = probe(out2)
    assert p.fps == pytest.approx(30) and abs(p.frames - p.audio_duration * 30) <= 1.5


def test_prepare_prints_the_id(tmp_path):
    first = run("prepare", portrait("man_bw_archival_01.jpg"))
    second = run("prepare", portrait("man_bw_archival_01.jpg"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert first.stdout.split()[0] == second.stdout.split()[0]


def _bad_inputs(tmp_path):
    good_face, good_audio = portrait("man_glasses_01.jpg"), speech("zh_short_01_3s.wav")
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((200, 200, 3), 200, np.uint8))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    zero = tmp_path / "zero.wav"
    write_wav(zero, np.zeros(0))
    notes = tmp_path / "notes.txt"
    notes.write_text("not media at all\n" * 20)
    return [
        ("wall.png", ["--avatar", wall, "--audio", good_audio]),
        ("corrupt.wav", ["--avatar", good_face, "--audio", corrupt]),
        ("empty.mp3", ["--avatar", good_face, "--audio", empty]),
        ("zero.wav", ["--avatar", good_face, "--audio", zero]),
        ("notes.txt", ["--avatar", good_face, "--audio", notes]),
        ("notes.txt", ["--avatar", notes, "--audio", good_audio]),
        ("missing.wav", ["--avatar", good_face, "--audio", tmp_path / "missing.wav"]),
        ("wall.png", ["--avatar", good_face, "--audio", wall]),
    ]


def test_bad_input_is_a_clear_error_without_output(tmp_path):
    for name, args in _bad_inputs(tmp_path):
        out = tmp_path / "out.mp4"
        result = run("render", *args, "-o", out, "-q")
        assert result.returncode == 1, (name, result.stderr)
        assert name in result.stderr and "error" in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert not out.exists(), name
        assert not list(tmp_path.glob(".out.mp4*")), "partial file left behind"


def test_wrong_output_name_is_refused(tmp_path):
    result = run("render", "--avatar", portrait("man_glasses_01.jpg"), "--text", "hi", "-o", tmp_path / "x.avi")
    assert result.returncode == 1 and ".mp4" in result.stderr



def main_on_a_terminal(*args: str) -> tuple[int, str]:
    """facecast.cli.main in this process with stderr on a pseudo-terminal, as in an interactive
    shell: (exit status, everything the terminal received)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    from facecast.cli import main

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    received = []

    def read() -> None:
        try:
            while chunk := os.read(master, 4096):
                received.append(chunk)
        except OSError:  # EIO: the terminal's last writer closed it
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    saved = sys.stderr
    with open(slave, "w", encoding="utf-8") as terminal:
        sys.stderr = terminal
        try:
            status = main([str(arg) for arg in args])
        finally:
            sys.stderr = saved
    reader.join(timeout=10)
    os.close(master)
    return status, b"".join(received).decode(errors="replace")


def test_progress_bar_on_a_terminal(tmp_path, capsys):
    import re

    from facecast.audio.decode import load_audio

    clip = speech("en_radio_address_02_8s.wav")
    frames = load_audio(clip).frame_count(25)
    face = portrait("woman_frontal_lowres_01.png")  # small: 200 frames render in about a second
    status, screen = main_on_a_terminal("render", "-a", face, "--audio", clip, "-o", tmp_path / "bar.mp4")
    assert status == 0, screen
    assert f"{frames} frames" in capsys.readouterr().out
    counts = [int(done) for done in re.findall(rf"rendering:.*?(\d+)/{frames}\b", screen)]
    assert counts, f"no progress bar on the terminal: {screen!r}"
    assert counts == sorted(counts) and max(counts) > 0, counts  # it moves forward while rendering
    assert probe(tmp_path / "bar.mp4").frames == frames

    status, screen = main_on_a_terminal("render", "-a", face, "--audio", speech("zh_short_01_3s.wav"),
                                        "-o", tmp_path / "quiet.mp4", "-q")
    assert status == 0 and "rendering" not in screen, screen
