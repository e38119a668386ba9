"""Issue 12: what a new user's mistakes did to the command line (items 1, 7, 8, 12, 13 and the smaller
ones): each is refused with one line naming the problem, exit status 1, and nothing written or touched.
Every test makes its own media (a tone WAV, noise images, small MP4s); faces come from the package's
demo portrait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.media import write_wav

from facecast.cli import main
from facecast.config import PrepareSettings, RenderSettings
from facecast.errors import EmptyAudio, InvalidArgument


def cli(capsys, *args) -> tuple[int, str, str]:
    """facecast's main() in this process: (exit status, stdout, stderr); argparse errors exit too."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err
    return lines[0]


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    return write_wav(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate)


def noise_image(path: Path, size=(64, 48)) -> Path:
    cv2.imwrite(str(path), np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), np.uint8))
    return path


def small_mp4(path: Path, seconds: float = 1.0, fps: int = 5, size=(32, 32)) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(round(seconds * fps))):
            frame = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def media(tmp_path) -> dict[str, Path]:
    return {"wav": tone_wav(tmp_path / "speech.wav"), "jpg": noise_image(tmp_path / "photo.jpg"),
            "mp4": small_mp4(tmp_path / "clip.mp4"), "png": noise_image(tmp_path / "bg.png")}


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under `folder` (links not followed): (size, mtime_ns, first bytes)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns,
                                              b"" if path.is_symlink() or path.is_dir() else path.read_bytes()[:64])
    return out


# ---- item 1: an output equal to an input ----------------------------------------------------------------

def _same_file_cases(d: dict[str, Path], tmp: Path) -> list[tuple[str, list, str]]:
    """(name, arguments, the input option the message must name)."""
    link = tmp / "link.mp4"
    link.symlink_to(d["mp4"])
    hard = tmp / "hard.wav"
    os.link(d["wav"], hard)
    variant = tmp / "sub" / ".." / d["mp4"].name
    (tmp / "path.json").write_text("{}")
    png_link = tmp / "clip-link.png"
    png_link.symlink_to(d["mp4"])
    (tmp / "sub").mkdir()
    return [
        ("render avatar", ["render", "-a", d["mp4"], "--audio", d["wav"], "-o", d["mp4"]], "--avatar"),
        ("render avatar by symlink", ["render", "-a", link, "--audio", d["wav"], "-o", d["mp4"]], "--avatar"),
        ("render output is a symlink to the avatar", ["render", "-a", d["mp4"], "--audio", d["wav"], "-o", link],
         "--avatar"),
        ("render avatar by path variant", ["render", "-a", d["mp4"], "--audio", d["wav"], "-o", variant], "--avatar"),
        ("render audio", ["render", "-a", d["jpg"], "--audio", d["wav"], "-o", d["wav"]], "--audio"),
        ("render audio by hard link", ["render", "-a", d["jpg"], "--audio", d["wav"], "-o", hard], "--audio"),
        ("render plate", ["render", "-a", d["jpg"], "--audio", d["wav"], "--plate", d["mp4"], "-o", d["mp4"]],
         "--plate"),
        ("animate driver", ["animate", "-a", d["jpg"], "--driver", d["mp4"], "-o", d["mp4"]], "--driver"),
        ("video stabilize", ["video", "stabilize", d["mp4"], "-o", link], "source"),
        ("video stabilize transforms", ["video", "stabilize", d["mp4"], "-o", tmp / "new.mp4", "-t", d["mp4"]],
         "source"),
        ("video reshake", ["video", "reshake", d["mp4"], "-t", tmp / "path.json", "-o", d["mp4"]], "source"),
        ("video segments", ["video", "segments", d["mp4"], "-o", variant], "source"),
        ("video plate", ["video", "plate", d["mp4"], "-o", png_link], "source"),
        ("video composite", ["video", "composite", d["mp4"], "-b", d["png"], "-o", d["mp4"]], "source"),
        ("video footlock", ["video", "footlock", d["mp4"], "-o", d["mp4"]], "source"),
    ]


def test_an_output_that_is_an_input_is_refused_and_nothing_is_touched(tmp_path, media, capsys):
    """Issue 12 item 1: `render -a clip.mp4 --audio a.wav -o clip.mp4` used to overwrite the clip."""
    for name, args, option in _same_file_cases(media, tmp_path):
        before = snapshot(tmp_path)
        status, out, err = cli(capsys, *args)
        line = one_line_error(err)
        assert status == 1, (name, err)
        assert "is the input" in line and option in line and "never overwrites" in line, (name, line)
        assert snapshot(tmp_path) == before, f"{name}: files changed"


def test_a_different_output_next_to_the_input_is_not_refused(tmp_path, media):
    from facecast.outputs import check_output, same_file

    assert check_output(tmp_path / "out.mp4", inputs=[("--avatar", media["mp4"]), ("--audio", None)])
    assert not same_file(tmp_path / "out.mp4", media["mp4"])
    assert same_file(tmp_path / "sub" / ".." / "clip.mp4", media["mp4"])


# ---- item 12: messages instead of tracebacks ----------------------------------------------------------

@pytest.mark.parametrize("extra, words", [
    (["--preset", "warpspeed"], ["--preset", "warpspeed", "veryfast"]),
    (["--seed", "-1"], ["--seed", "'-1'", "0 to"]),
    (["--seed", "abc"], ["--seed", "'abc'"]),
    (["--crf", "99"], ["--crf", "'99'", "51"]),
    (["--fps", "0"], ["--fps", "1 to 120"]),
    (["--fps", "29.97"], ["--fps", "29.97", "whole number", "1 to 120"]),
    (["--fps", "30000/1001"], ["--fps", "30000/1001", "whole number"]),
])
def test_bad_render_options_are_one_line(tmp_path, media, capsys, extra, words):
    out = tmp_path / "out.mp4"
    status, _, err = cli(capsys, "render", "-a", media["jpg"], "--audio", media["wav"], "-o", out, *extra)
    line = one_line_error(err)
    assert status == 1
    assert all(w in line for w in words), line
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_an_output_folder_that_cannot_be_written_is_refused_before_work(tmp_path, media, capsys):
    status, _, err = cli(capsys, "render", "-a", media["jpg"], "--audio", media["wav"], "-o", "/proc/x.mp4")
    line = one_line_error(err)
    assert status == 1 and "/proc/x.mp4" in line and "cannot write in folder '/proc'" in line
    status, _, err = cli(capsys, "render", "-a", media["jpg"], "--audio", media["wav"], "-o", tmp_path)
    assert status == 1 and "is a folder" in one_line_error(err)


def test_render_settings_validate_themselves():
    with pytest.raises(InvalidArgument, match="warpspeed"):
        RenderSettings(preset="warpspeed")
    with pytest.raises(InvalidArgument, match="--seed -1"):
        RenderSettings(seed=-1)
    with pytest.raises(InvalidArgument, match="whole number"):
        RenderSettings(fps=29.97)
    with pytest.raises(InvalidArgument, match="--max-size 0"):
        PrepareSettings(max_long_side=0)
    assert RenderSettings(fps=30, seed=2**32 - 1, crf=0, preset="slow").fps == 30


def test_bad_preset_in_a_subprocess_is_one_line_exit_1(tmp_path, media):
    """The real command line, as a user runs it: no traceback, exit status 1, nothing written."""
    out = tmp_path / "out.mp4"
    result = subprocess.run([sys.executable, "-m", "facecast.cli", "render", "-a", str(media["jpg"]), "--audio",
                             str(media["wav"]), "-o", str(out), "--preset", "warpspeed"],
                            capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 1
    assert "warpspeed" in one_line_error(result.stderr)
    assert not out.exists()


# ---- item 13: misleading messages ----------------------------------------------------------------------

def test_prepare_max_size_zero_says_so(media, capsys):
    status, _, err = cli(capsys, "prepare", media["jpg"], "--max-size", "0")
    line = one_line_error(err)
    assert status == 1 and "--max-size" in line and "at least 16" in line and "no face" not in line


def test_avatar_folder_is_called_a_folder(tmp_path, media, capsys):
    folder = tmp_path / "some_folder"
    folder.mkdir()
    for command in (["render", "--audio", media["wav"]], ["animate", "--driver", media["mp4"]]):
        status, _, err = cli(capsys, command[0], "-a", f"{folder}/", *command[1:], "-o", tmp_path / "o.mp4")
        line = one_line_error(err)
        assert status == 1 and "is a folder" in line and "no such file" not in line, line


def test_unknown_avatar_id_and_missing_file_are_told_apart(tmp_path, media, capsys):
    status, _, err = cli(capsys, "render", "-a", "0123456789abcdef01234567", "--audio", media["wav"],
                         "-o", tmp_path / "o.mp4")
    assert status == 1 and "no prepared avatar has this id" in one_line_error(err)
    status, _, err = cli(capsys, "render", "-a", tmp_path / "nope.jpg", "--audio", media["wav"],
                         "-o", tmp_path / "o.mp4")
    assert status == 1 and "no such file" in one_line_error(err)


def test_render_accepts_a_prepared_avatar_id(tmp_path, media, capsys):
    from facecast.demo import demo_portrait

    status, out, _ = cli(capsys, "prepare", demo_portrait(), "--max-size", "256")
    assert status == 0
    avatar_id = out.split()[0]
    output = tmp_path / "by-id.mp4"
    status, out, err = cli(capsys, "render", "-a", avatar_id, "--audio", media["wav"], "-o", output, "-q",
                           "--no-idle")
    assert status == 0, err
    assert output.stat().st_size > 1000 and "wrote" in out
    status, _, err = cli(capsys, "render", "-a", avatar_id, "--face", "1", "--audio", media["wav"],
                         "-o", tmp_path / "x.mp4")
    assert status == 1 and "files only" in one_line_error(err)


def test_a_video_avatar_over_the_limit_is_not_cut_silently(tmp_path, media, capsys):
    """31 s of video: the user is told that only the first 30 s are used (the limit is named)."""
    from facecast.avatar.resolve import warn_long_video

    long_clip = small_mp4(tmp_path / "long.mp4", seconds=31, fps=2, size=(16, 16))
    said: list[str] = []
    assert warn_long_video(long_clip, 30.0, said.append) == pytest.approx(31, abs=0.6)
    assert len(said) == 1 and "31.0 s long" in said[0] and "first 30 s" in said[0]
    assert warn_long_video(media["mp4"], 30.0, said.append) == pytest.approx(1, abs=0.3) and len(said) == 1
    status, _, err = cli(capsys, "render", "-a", long_clip, "--audio", media["wav"], "-o", tmp_path / "o.mp4", "-q")
    assert status == 1 and "first 30 s" in err  # the warning, then "no face found" for this faceless clip


def test_video_plate_of_a_clip_without_a_person_says_so(tmp_path, capsys):
    """A green scene with a person-like shape (no face, no body): selfie segmentation alone reported
    "person covered 14%"; now no person is found."""
    import av

    clip = tmp_path / "shape.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(12):
            img = np.zeros((240, 320, 3), np.uint8)
            img[:] = (40, 90, 40)
            x = 140 + 3 * i
            cv2.rectangle(img, (x - 50, 60), (x + 50, 240), (60, 60, 160), -1)
            cv2.circle(img, (x, 60), 40, (140, 170, 220), -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        container.mux(stream.encode())
    status, _, err = cli(capsys, "video", "plate", clip, "-o", tmp_path / "plate.png", "-q")
    assert status == 1 and "no person found" in one_line_error(err)
    assert not (tmp_path / "plate.png").exists()
    status, out, _ = cli(capsys, "video", "plate", clip, "-o", tmp_path / "plate.png", "-q", "--allow-no-person")
    assert status == 0 and "person covered 0%" in out


# ---- items 7 and 8: nothing speakable, markup; one rule in the CLI and the server ---------------------

def test_nothing_speakable_is_one_rule_in_cli_and_server(tmp_path, media, capsys):
    from facecast.server.settings import ServerSettings
    from facecast.server.speech_input import build_speech
    from facecast.streaming.telemetry import Telemetry

    text = "?!...,;:--"
    out = tmp_path / "out.mp4"
    status, _, err = cli(capsys, "render", "-a", media["jpg"], "--text", text, "-o", out)
    line = one_line_error(err)
    assert status == 1 and "nothing speakable" in line and not out.exists()
    with pytest.raises(EmptyAudio) as server_error:
        build_speech(text, None, "", "en", ServerSettings(data_dir=tmp_path), Telemetry())
    assert server_error.value.http_status == 400
    assert line == f"facecast: error: {server_error.value}"


def test_text_limit_is_one_rule_in_cli_and_server(tmp_path, media, capsys):
    from facecast.audio.tts import MAX_TEXT_CHARS
    from facecast.server.settings import ServerSettings
    from facecast.server.speech_input import build_speech
    from facecast.streaming.telemetry import Telemetry

    assert ServerSettings(data_dir=tmp_path).max_text_chars == MAX_TEXT_CHARS
    text = "word " * (MAX_TEXT_CHARS // 5 + 1)
    status, _, err = cli(capsys, "render", "-a", media["jpg"], "--text", text, "-o", tmp_path / "o.mp4")
    line = one_line_error(err)
    with pytest.raises(InvalidArgument) as server_error:
        build_speech(text, None, "", "en", ServerSettings(data_dir=tmp_path), Telemetry())
    assert status == 1 and f"at most {MAX_TEXT_CHARS}" in line
    assert line == f"facecast: error: {server_error.value}"


def test_markup_outside_ssml_is_refused_by_the_cli(tmp_path, media, capsys):
    status, _, err = cli(capsys, "render", "-a", media["jpg"], "--text", "Hello <b>there</b>", "-o",
                         tmp_path / "o.mp4")
    assert status == 1 and "markup '<b>'" in one_line_error(err)


# ---- several faces: the largest by default, --face N from the left -------------------------------------

@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """Two people on a grey canvas: a small man with glasses on the left (test media), the large
    demo astronaut on the right."""
    from conftest import portrait
    from facecast.demo import demo_portrait

    canvas = np.full((600, 1100, 3), 128, np.uint8)
    small = cv2.imread(str(portrait("man_glasses_01.jpg")))
    canvas[170:430, 40:300] = cv2.resize(small, (260, 260), interpolation=cv2.INTER_AREA)
    canvas[40:560, 520:1040] = cv2.resize(cv2.imread(str(demo_portrait())), (520, 520), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("faces") / "two.png"
    cv2.imwrite(str(path), canvas)
    return path


def test_the_largest_face_is_chosen_and_face_n_counts_from_the_left(two_faces, capsys):
    from facecast.avatar.cache import AvatarCache

    centres = {}
    for option in ([], ["--face", "0"], ["--face", "1"]):
        status, out, err = cli(capsys, "prepare", two_faces, "--max-size", "1100", *option)
        assert status == 0, err
        centres[tuple(option)] = float(AvatarCache().load(out.split()[0]).landmarks[0][:, 0].mean())
    assert centres[()] > 520 and centres[("--face", "1")] > 520  # the large face, on the right
    assert centres[("--face", "0")] < 300  # the small face, on the left
    status, _, err = cli(capsys, "prepare", two_faces, "--face", "2")
    assert status == 1 and "only 2 face(s)" in one_line_error(err)
    status, _, err = cli(capsys, "prepare", two_faces, "--face", "-1")
    assert status == 1 and "--face" in one_line_error(err)


def test_first_preparation_writes_nothing_to_stderr(tmp_path):
    """mediapipe's absl warnings ("All log messages before absl::InitializeLog()", "Feedback manager
    requires a model ...") are written by graph threads after the constructor returns; the face mesh
    waits for its graphs inside the silencer. A fresh process and cache, a small video avatar with a face."""
    from facecast.demo import demo_portrait

    import av

    face = cv2.resize(cv2.imread(str(demo_portrait())), (128, 128))
    clip = tmp_path / "face.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "yuv420p"
        for i in range(6):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.roll(face, i, axis=1), format="bgr24")))
        container.mux(stream.encode())
    env = {**os.environ, "FACECAST_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(3):  # the warnings came from a race: give it three chances to show
        result = subprocess.run([sys.executable, "-m", "facecast.cli", "prepare", str(clip), "--force"],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr


@pytest.mark.parametrize("args, option", [
    (["stabilize", "{clip}", "-o", "{out}", "--window", "0"], "--window"),
    (["composite", "{clip}", "-b", "{bg}", "-o", "{out}", "--max-segment-seconds", "0"], "--max-segment-seconds"),
    (["segments", "{clip}", "-o", "{out}", "--overlap", "-1"], "--overlap"),
    (["plate", "{clip}", "-o", "{png}", "--samples", "zero"], "--samples"),
    (["footlock", "{clip}", "-o", "{out}", "--blend", "2"], "--blend"),
])
def test_bad_video_tool_numbers_are_one_line_before_any_work(tmp_path, media, capsys, args, option):
    paths = {"clip": media["mp4"], "bg": media["png"], "out": tmp_path / "out.mp4", "png": tmp_path / "out.png"}
    status, _, err = cli(capsys, "video", *[a.format(**paths) for a in args])
    line = one_line_error(err)
    assert status == 1 and option in line, line
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.png").exists()


def test_input_folders_are_called_folders(tmp_path, media, capsys):
    folder = tmp_path / "some_folder"
    folder.mkdir()
    out = tmp_path / "out.mp4"
    cases = [
        (["render", "-a", media["jpg"], "--audio", folder, "-o", out], "--audio"),
        (["render", "-a", media["jpg"], "--audio", media["wav"], "--plate", folder, "-o", out], "--plate"),
        (["animate", "-a", media["jpg"], "--driver", folder, "-o", out], "--driver"),
        (["video", "stabilize", folder, "-o", out], "source"),
        (["video", "composite", media["mp4"], "-b", folder, "-o", out], "--background"),
    ]
    for args, option in cases:
        status, _, err = cli(capsys, *args)
        line = one_line_error(err)
        assert status == 1 and f"{option} '{folder}' is a folder" in line, line
        assert not out.exists()
