"""Foot locking: contacts on known keypoint tracks, slide reduced >= 80% during known
contacts, nothing changed outside contacts, mediapipe pose end to end, and contacts that span
a segment cut keeping their anchor (no jump or ghost at the join)."""

from __future__ import annotations

import numpy as np
import pytest
from support import metrics as M
from support import synthetic as syn

from facecast.errors import InvalidArgument, NoFaceFound
from facecast.video.contacts import ContactSettings, detect_contacts, ground_line, runs
from facecast.video.foot_tracking import touchdown, track_contact
from facecast.video.footlock import FootlockSettings, fit_similarity, image_moves, lock_feet
from facecast.video.pipeline import VideoJob, run_job
from facecast.video.pose import PoseTracker
from facecast.video.runner import run_segments
from facecast.video.segments import plan_segments
from facecast.video.stages import Footlock
from facecast.video.stream import frames as stream_frames, probe

PORTRAITS = syn.data_dir() / "portraits"
TALKING = syn.data_dir() / "talking"
FPS = 25.0
OVERLAP = 5  # frames cross-faded at each segment join


@pytest.fixture(scope="module")
def sliding():
    frames, points, contacts = syn.foot_scene(PORTRAITS, n=90)
    return frames, points, contacts, lock_feet(frames, points, fps=FPS, scale=120.0)


def test_contacts_match_the_known_ones(sliding):
    _, _, truth, result = sliding
    found = result.contacts[:, 0]
    assert not (found & ~truth).any()  # never locks a swinging foot
    assert (found & truth).sum() >= 0.95 * truth.sum()
    assert result.contacts[:, 1].all()  # the planted foot is in contact throughout


def test_slide_reduced_by_80_percent_in_keypoints(sliding):
    _, points, truth, result = sliding
    before = M.slide(points[:, 0].mean(axis=1), truth)
    after = M.slide(result.targets[:, 0].mean(axis=1), truth)
    assert after <= 0.2 * before


def test_slide_reduced_by_80_percent_in_the_image(sliding):
    frames, _, truth, result = sliding
    template = frames[0, 180:216, 50:100]  # the shoe where it first touched down
    box = (0, 150, 255, 240)  # the sliding shoe's whole path, not the standing one
    before = M.slide(M.track_patch(frames, template, box), truth)
    after = M.slide(M.track_patch(result.frames, template, box), truth)
    assert before > 40 and after <= 0.2 * before


def test_nothing_changes_outside_contacts(sliding):
    frames, _, _, result = sliding
    free = ~result.contacts[:, 0]  # the sliding foot swings; the other foot stands still throughout
    assert free.sum() >= 10 and np.array_equal(result.frames[free], frames[free])


def test_shoe_tracking_measures_the_slide_in_the_image(sliding):
    frames, points, truth, _ = sliding
    assert truth[:30].all()  # the first contact: 1 px/frame to the right
    shift = track_contact(frames[:30], points[:30, 0], foot=34.0, pad=1.0)
    assert shift is not None and np.isfinite(shift).all()
    error = np.linalg.norm(shift - np.column_stack([np.arange(30.0), np.zeros(30)]), axis=1)
    assert error.max() < 1.0  # within AGREE_PX of the still floor, shoe and floor corners agree
    assert error[3:].max() < 0.5


def test_shoe_tracking_ignores_the_keypoints_error(sliding):
    frames, points, truth, _ = sliding
    wrong = points[:30, 0] * np.float32(1.0)
    wrong[:, :, 0] = points[0, 0, :, 0] + 0.6 * (points[:30, 0, :, 0] - points[0, 0, :, 0])  # sees 60% of the slide
    wrong[:, :, 1] += np.linspace(0, 4, 30, dtype=np.float32)[:, None]  # and drifts 4 px down
    shift = track_contact(frames[:30], wrong, foot=34.0, pad=1.0)
    assert np.abs(shift[-1] - (29.0, 0.0)).max() < 0.5


def test_touchdown_goes_back_over_standing_frames_only(sliding):
    frames, points, truth, _ = sliding
    assert truth[10:16].all() and not truth[44] and truth[45:51].all()
    step = 0.5 * 120.0 / FPS  # speed_off x scale / fps: 2.4 px per frame; the shoe slides 1 px per frame
    assert touchdown(frames[10:16], points[10:16, 0], 34.0, 1.0, step) == 5  # it stood (sliding) all along
    assert touchdown(frames[40:46], points[40:46, 0], 34.0, 1.0, step) == 0  # it was in the air


def test_textureless_frames_fall_back_to_keypoints(sliding):
    _, points, truth, _ = sliding
    flat = np.full((90, 240, 320, 3), 128, np.uint8)
    assert np.isnan(image_moves(flat, points[:, 0], points[:, 1], truth, pad=1.0)).all()
    with_image = lock_feet(flat, points, fps=FPS, scale=120.0)
    keypoints_only = lock_feet(flat, points, fps=FPS, scale=120.0, settings=FootlockSettings(image=False))
    assert np.array_equal(with_image.targets, keypoints_only.targets)
    assert np.array_equal(with_image.contacts, keypoints_only.contacts)


def test_keypoints_alone_still_reach_the_bar(sliding):
    frames, points, truth, _ = sliding
    result = lock_feet(frames, points, fps=FPS, scale=120.0, settings=FootlockSettings(image=False))
    template, box = frames[0, 180:216, 50:100], (0, 150, 255, 240)
    before = M.slide(M.track_patch(frames, template, box), truth)
    after = M.slide(M.track_patch(result.frames, template, box), truth)
    assert after <= 0.2 * before


def test_contact_extension_bridges_flicker():
    t = np.arange(40)
    points = np.zeros((40, 3, 2))
    points[:, :, 0] = 100.0
    points[:, :, 1] = 300.0
    points[[12, 13], :, 1] = 270.0  # a 2-frame blip off the ground inside a contact
    contacts = detect_contacts(points, fps=FPS, scale=100.0, ground=300.0)
    assert runs(contacts) == [(0, 40)]
    lifted = points.copy()
    lifted[15:30, :, 1] = 300.0 - 40 * np.sin(np.pi * (t[15:30] - 15) / 15)[:, None]
    assert len(runs(detect_contacts(lifted, fps=FPS, scale=100.0, ground=300.0))) == 2


def test_hysteresis_keeps_a_contact_through_moderate_speed():
    x = np.concatenate([np.full(10, 100.0), 100 + np.cumsum(np.full(10, 1.4)), np.full(10, 114.0)])
    points = np.zeros((30, 3, 2))
    points[:, :, 0] = x[:, None]
    points[:, :, 1] = 300.0
    s = ContactSettings(speed_on=2.0, speed_off=4.0)  # 1.4 px/frame x 25 fps / 10 px = 3.5 per s
    assert detect_contacts(points, fps=FPS, scale=10.0, ground=300.0, settings=s).all()


def test_ground_line_and_similarity_fit():
    pts = np.full((5, 2, 3, 2), np.nan)
    pts[:, 0, :, 1] = 200.0
    assert ground_line(pts) == 200.0
    src = np.array([[0.0, 0], [10, 0], [0, 10]])
    affine = fit_similarity(src, src + (3, -2))
    assert np.allclose(affine, [[1, 0, 3], [0, 1, -2]])
    assert fit_similarity(np.full((3, 2), np.nan), src) is None


def test_settings_are_checked():
    with pytest.raises(InvalidArgument, match="blend"):
        FootlockSettings(blend=1.5)
    with pytest.raises(InvalidArgument, match="speeds"):
        ContactSettings(speed_on=2.0, speed_off=1.0)


@pytest.mark.slow
def test_end_to_end_with_mediapipe_pose():
    """A full-body figure with a real upper body; pose finds its feet and contacts, the shoe is
    followed in the image, and the slide shrinks by the same 80% bar as on known tracks; the
    sliding foot's surroundings are untouched while it swings."""
    frames, truth, shoe = syn.paper_doll(TALKING / "man_suit_6s.mp4")
    with PoseTracker() as tracker:
        tracks = tracker.track(frames)
    assert tracks.person.all() and tracks.feet_seen
    result = lock_feet(frames, tracks.points, fps=FPS, scale=tracks.scale(frames.shape[1]))
    template = frames[0, 415:445, 105:165]
    box = (0, 380, 185, frames.shape[1])
    before = M.slide(M.track_patch(frames, template, box), truth)
    after = M.slide(M.track_patch(result.frames, template, box), truth)
    assert before > 40 and after <= 0.2 * before
    free = ~result.contacts[:, 1]  # the sliding foot swings
    x0, y0, x1, y1 = box
    assert free.sum() >= 8
    assert np.array_equal(result.frames[free, y0:y1, x0:x1], frames[free, y0:y1, x0:x1])


def test_talking_head_has_no_feet(tmp_path):
    with pytest.raises(NoFaceFound, match="woman_glasses_5s.mp4.*feet"):
        run_job(TALKING / "woman_glasses_5s.mp4", tmp_path / "out.mp4", VideoJob(footlock=True))
    assert not list(tmp_path.iterdir())


def picture_change(frames: np.ndarray) -> np.ndarray:
    """(F,) mean absolute grey-level change from the previous frame of (F, H, W, 3) uint8
    frames (0 for the first): the signal run_job's analysis cuts segments by."""
    grey = frames.astype(np.float32).mean(axis=3)
    return np.concatenate([[0.0], np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))]).astype(np.float32)


def contact_steps(positions: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """(F-1,) px the shoe moved from each frame to the next, 0 unless both are in contact.
    positions: (F, 2) px; contacts: (F,) bool."""
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    return np.where(contacts[1:] & contacts[:-1], steps, 0.0)


def cuts_inside_contacts(plan, contacts: np.ndarray) -> bool:
    """Whether every cut's cross-fade window [cut - OVERLAP, cut) lies inside a known contact."""
    return len(plan) >= 3 and all(contacts[s.start - OVERLAP: s.start].all() for s in plan[1:])


@pytest.fixture(scope="module")
def segmented():
    """The sliding shoe (120 frames, contacts 0-39 and 55-119) locked in 3 segments cut where
    the picture is quietest, by the real runner and stage, next to the same lock in one pass."""
    frames, points, truth = syn.foot_scene(PORTRAITS, n=120)
    plan = plan_segments(len(frames), picture_change(frames), count=3, max_frames=1000, overlap=OVERLAP)
    stage, out = Footlock(FPS, keypoints=lambda numbers: points[numbers], scale=120.0), []
    run_segments(iter(frames), plan, [stage], lambda batch: out.append(batch.copy()), overlap=OVERLAP)
    whole = lock_feet(frames, points, fps=FPS, scale=120.0)
    return frames, points, truth, plan, np.concatenate(out), whole


def test_segment_cuts_fall_inside_contacts(segmented):
    """The premise: a planted foot keeps the picture quiet, so cuts land inside contacts."""
    _, _, truth, plan, _, _ = segmented
    assert cuts_inside_contacts(plan, truth)


def test_segmented_lock_keeps_the_slide_reduced(segmented):
    frames, _, truth, _, out, _ = segmented
    template, box = frames[0, 180:216, 50:100], (0, 150, 255, 240)
    before = M.slide(M.track_patch(frames, template, box), truth)
    after = M.slide(M.track_patch(out, template, box), truth)
    assert before > 80 and after <= 0.2 * before  # re-anchoring at each run-in left about 55%


def test_segmented_lock_has_no_jump_at_the_joins(segmented):
    frames, _, truth, plan, out, _ = segmented
    template, box = frames[0, 180:216, 50:100], (0, 150, 255, 240)
    steps = contact_steps(M.track_patch(out, template, box), truth)
    for segment in plan[1:]:  # re-anchoring made a 20-35 px jump inside the cross-fade
        assert steps[segment.start - OVERLAP - 1: segment.start + 1].max() <= 1.0
    assert steps.max() <= 1.5


def test_segmented_lock_matches_the_one_pass_lock_at_the_joins(segmented):
    """No ghost: the cross-faded frames show the foot where the one-pass lock puts it."""
    _, _, _, plan, out, whole = segmented
    for segment in plan[1:]:
        near = slice(segment.start - OVERLAP, segment.start + OVERLAP)
        diff = np.abs(out[near, 150:240, :255].astype(np.float32) - whole.frames[near, 150:240, :255])
        assert diff.mean(axis=(1, 2, 3)).max() <= 2.0  # a re-anchored foot cross-faded in: up to 10


def test_carried_offsets_keep_the_anchor():
    """Locking the frames after a cut, with the offsets an earlier pass applied to its first
    frames, puts the foot where the earlier pass does; without them it is anchored anew."""
    frames, points, truth = syn.foot_scene(PORTRAITS, n=90)
    whole = lock_feet(frames, points, fps=FPS, scale=120.0)
    carried = np.full((70, 2, 2), np.nan)
    carried[:OVERLAP] = whole.offsets[20:20 + OVERLAP]
    later = lock_feet(frames[20:], points[20:], fps=FPS, scale=120.0, carried=carried)
    fresh = lock_feet(frames[20:], points[20:], fps=FPS, scale=120.0)
    first = slice(0, 30 - 20)  # the rest of the first contact
    assert np.abs(later.offsets[first] - whole.offsets[20:30]).max() <= 1.0  # shoe tracking: < 1 px
    assert np.abs(fresh.offsets[first] - whole.offsets[20:30]).max() >= 15.0


@pytest.mark.slow
def test_end_to_end_in_segments_with_mediapipe_pose(tmp_path):
    """The full-body figure through `run_job` in 3 segments (pose restarts on every run-in):
    cuts fall inside contacts, the slide stays reduced by the 80% bar, no jump at the joins."""
    frames, truth, _ = syn.paper_doll(TALKING / "man_suit_6s.mp4")
    clip = syn.write_mp4(tmp_path / "doll.mp4", frames, (frames.shape[2], frames.shape[1]))
    report = run_job(clip, tmp_path / "out.mp4", VideoJob(footlock=True, segments=3, overlap=OVERLAP))
    source, out = (np.stack(list(stream_frames(probe(p)))) for p in (clip, tmp_path / "out.mp4"))
    assert cuts_inside_contacts(report.plan, truth)
    template, box = source[0, 415:445, 105:165], (0, 380, 185, source.shape[1])
    before = M.slide(M.track_patch(source, template, box), truth)
    positions = M.track_patch(out, template, box)
    assert before > 40 and M.slide(positions, truth) <= 0.2 * before
    steps = contact_steps(positions, truth)
    for segment in report.plan[1:]:
        assert steps[segment.start - OVERLAP - 1: segment.start + 1].max() <= 1.0
