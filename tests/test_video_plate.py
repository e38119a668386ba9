"""Background plate (PSNR >= 30 dB against the known background) and new backgrounds."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from support import metrics as M
from support import synthetic as syn

from facecast.errors import NoFaceFound
from facecast.video.composite import Background, cover
from facecast.video.pipeline import VideoJob, run_job
from facecast.video.plate import extract_plate, masked_median, sample_indices
from facecast.video.stream import frames, probe

PORTRAITS = syn.data_dir() / "portraits"
SIZE = (320, 240)


@pytest.fixture(scope="module")
def swaying(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("plate")
    background = syn.plate_clip(folder / "sway.mp4", PORTRAITS, n=60, size=SIZE)
    return {"folder": folder, "clip": folder / "sway.mp4", "background": background}


def test_plate_matches_the_known_background(swaying):
    plate = extract_plate(probe(swaying["clip"]), samples=30)
    assert M.psnr(plate.image, swaying["background"]) >= 30.0
    assert plate.person_fraction > 0.1


def test_a_plain_median_would_not_do(swaying):
    """The person covers the centre in most frames: without the person mask the median keeps them."""
    stack = np.stack(list(frames(probe(swaying["clip"]))))
    assert M.psnr(np.median(stack, axis=0).astype(np.uint8), swaying["background"]) < 30.0


def test_masked_median_and_holes():
    stack = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 200, 30)])
    valid = np.ones((4, 2, 2), bool)
    valid[2] = False  # the 200 is "person"
    valid[:, 0, 0] = False  # never seen
    plate, count = masked_median(stack, valid)
    assert plate[1, 1, 0] == 20 and count[1, 1] == 3 and count[0, 0] == 0
    valid[3] = False  # two valid samples: the mean of the middle two
    assert masked_median(stack, valid)[0][1, 1, 0] == 15


def test_sample_indices_are_even_and_bounded():
    assert sample_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert sample_indices(3, 48).tolist() == [0, 1, 2]


def test_no_person_is_a_clear_error(tmp_path):
    clip = syn.write_mp4(tmp_path / "empty.mp4", [syn.fabric(PORTRAITS, SIZE)] * 6, SIZE)
    with pytest.raises(NoFaceFound, match="empty.mp4.*no person"):
        extract_plate(probe(clip))
    assert extract_plate(probe(clip), require_person=False).holes.sum() == 0


def test_cover_fills_the_frame():
    out = cover(np.zeros((100, 400, 3), np.uint8), (320, 240))
    assert out.shape == (240, 320, 3)


def test_composite_over_a_new_background(swaying, tmp_path):
    beach = cv2.GaussianBlur(syn.load_image(PORTRAITS / "child_photo_in_hand_01.jpg"), (0, 0), 3)
    bg_file = tmp_path / "bg.png"
    cv2.imwrite(str(bg_file), beach)
    out = tmp_path / "comp.mp4"
    run_job(swaying["clip"], out, VideoJob(background=bg_file))
    new_bg = cover(beach, SIZE)
    result = np.stack(list(frames(probe(out))))
    original = np.stack(list(frames(probe(swaying["clip"]))))
    corner = (slice(None), slice(0, 30), slice(0, 30))  # background only in every frame
    assert np.abs(result[corner].astype(int) - new_bg[0:30, 0:30]).mean() < 6
    assert np.abs(result[30, 150:200, 140:180].astype(int) - original[30, 150:200, 140:180]).mean() < 12


def test_background_video_loops(tmp_path):
    clip = syn.write_mp4(tmp_path / "bg.mp4", [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(3)], (64, 48))
    bg = Background(clip, (32, 24))
    values = [int(bg.frame(n)[0, 0, 0]) for n in (0, 1, 2, 3, 4, 1)]
    assert [round(v / 40) for v in values] == [0, 1, 2, 0, 1, 1]


class _HalfMatte:
    """A stand-in segmenter: the left half of every frame is person."""

    def matte(self, frame):
        m = np.zeros(frame.shape[:2], np.float32)
        m[:, : frame.shape[1] // 2] = 1.0
        return m

    def close(self):
        pass


def test_composite_stage_memory_does_not_grow_with_the_segment(tmp_path):
    """The stage works frame by frame in place: its extra memory is a few frames' worth,
    whether the segment holds 8 or 64 frames (it held several float32 copies of the segment)."""
    import tracemalloc

    from facecast.video.stages import Composite

    cv2.imwrite(str(tmp_path / "bg.png"), np.full((120, 160, 3), 200, np.uint8))
    stage = Composite(Background(tmp_path / "bg.png", (160, 120)))
    stage._segmenter.close()
    stage._segmenter = _HalfMatte()
    peaks = []
    for n in (8, 64):
        batch = np.full((n, 120, 160, 3), 40, np.uint8)
        tracemalloc.start()
        out = stage(batch, np.arange(n))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert out is batch and stage.person_seen
        assert (out[:, 60, 10] == 40).all() and (out[:, 60, 150] == 200).all()  # person left, background right
    frame = 120 * 160 * 3
    assert peaks[1] < 24 * frame, peaks  # float32 temporaries of a few frames, not of 64
    assert peaks[1] < 1.5 * peaks[0], peaks
