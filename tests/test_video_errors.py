"""Bad input gives a clear error naming the file, and never a partial output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from support import synthetic as syn

from facecast.cli import main
from facecast.errors import CorruptMedia, FacecastError, InvalidArgument, NoFaceFound, UnsupportedMedia
from facecast.video.pipeline import VideoJob, run_job

PORTRAITS = syn.data_dir() / "portraits"
SIZE = (96, 64)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bad")
    good = syn.write_mp4(folder / "good.mp4", [syn.fabric(PORTRAITS, SIZE)] * 12, SIZE)
    data = good.read_bytes()
    (folder / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (folder / "scrambled.mp4").write_bytes(_scramble_frames(data))
    (folder / "empty.mp4").write_bytes(b"")
    syn.write_mp4(folder / "single.mp4", [syn.fabric(PORTRAITS, SIZE)], SIZE)
    shutil.copy(PORTRAITS / "man_glasses_01.jpg", folder / "photo.jpg")
    return {"folder": folder}


def _scramble_frames(mp4: bytes) -> bytes:
    """The same MP4 with its coded frames (the mdat payload) replaced by noise; the index stays valid."""
    at = mp4.find(b"mdat")
    size = int.from_bytes(mp4[at - 4: at], "big")
    payload = np.random.default_rng(1).integers(0, 256, size - 8, np.uint8).tobytes()
    return mp4[: at + 4] + payload + mp4[at - 4 + size:]


def _no_output(folder: Path) -> bool:
    return not list(folder.glob("out*")) and not list(folder.glob(".out*"))


@pytest.mark.parametrize("name, error", [
    ("noise.mp4", UnsupportedMedia), ("truncated.mp4", (UnsupportedMedia, CorruptMedia)),
    ("scrambled.mp4", (CorruptMedia, UnsupportedMedia)), ("empty.mp4", UnsupportedMedia),
    ("single.mp4", UnsupportedMedia), ("photo.jpg", UnsupportedMedia), ("missing.mp4", UnsupportedMedia),
])
def test_bad_video_is_named_and_leaves_nothing(media, name, error):
    folder = media["folder"]
    with pytest.raises(error, match=name):
        run_job(folder / name, folder / "out.mp4", VideoJob(stabilize=True, ignore_person=False))
    assert _no_output(folder)


def test_single_frame_message_says_why(media):
    with pytest.raises(UnsupportedMedia, match="1 frame"):
        run_job(media["folder"] / "single.mp4", media["folder"] / "out.mp4", VideoJob(stabilize=True))


def test_no_person_to_composite(media):
    folder = media["folder"]
    with pytest.raises(NoFaceFound, match="good.mp4.*no person"):
        run_job(folder / "good.mp4", folder / "out.mp4", VideoJob(background=folder / "photo.jpg"))
    assert _no_output(folder)


def test_no_person_to_foot_lock(media):
    with pytest.raises(NoFaceFound, match="good.mp4.*no person"):
        run_job(media["folder"] / "good.mp4", media["folder"] / "out.mp4", VideoJob(footlock=True))
    assert _no_output(media["folder"])


def test_output_must_be_mp4_in_an_existing_folder(media):
    folder = media["folder"]
    with pytest.raises(InvalidArgument, match="out.avi"):
        run_job(folder / "good.mp4", folder / "out.avi", VideoJob())
    with pytest.raises(InvalidArgument, match="does not exist"):
        run_job(folder / "good.mp4", folder / "nowhere" / "out.mp4", VideoJob())


def test_cli_reports_errors_without_output(media, capsys):
    folder = media["folder"]
    assert main(["video", "stabilize", str(folder / "scrambled.mp4"), "-o", str(folder / "out.mp4"), "-q"]) == 1
    assert "scrambled.mp4" in capsys.readouterr().err
    assert main(["video", "plate", str(folder / "good.mp4"), "-o", str(folder / "out.png"), "-q"]) == 1
    assert "no person" in capsys.readouterr().err
    assert main(["video", "segments", str(folder / "good.mp4"), "--region", "5,5,1,1"]) == 1
    assert "--region" in capsys.readouterr().err
    assert _no_output(folder)


def test_every_error_is_a_facecast_error():
    for cls in (UnsupportedMedia, CorruptMedia, NoFaceFound, InvalidArgument):
        assert issubclass(cls, FacecastError)
