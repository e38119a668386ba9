"""Foot-lock bars: a sliding foot during known contacts; slide reduced by >= 80%, no new motion
outside contacts. On known keypoint tracks, and end to end with mediapipe pose on a full-body
figure (real upper body, drawn legs) whose keypoints pose has to find itself.

Slide = for each contact, the farthest the foot gets from where it touched down (summed);
the shoe is found in the image by normalised cross-correlation with its touch-down look.
Run: python benchmarks/bench_video_footlock.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: synthetic clips, metrics

from bench_video_all import machine, print_table  # noqa: E402

from support import metrics as M  # noqa: E402  (tests/support)
from support import synthetic as syn  # noqa: E402  (tests/support)
from facecast.video.footlock import FootlockSettings, lock_feet  # noqa: E402
from facecast.video.pipeline import VideoJob, run_job  # noqa: E402
from facecast.video.pose import PoseTracker  # noqa: E402
from facecast.video.stream import frames as stream_frames, probe  # noqa: E402

TITLE = "Foot lock: 320x240 known tracks (90 frames, 1 px/frame slide); 320x480 pose end to end (75 frames)"
FPS = 25.0


def known_tracks() -> list[tuple[str, str, str, bool | None]]:
    frames, points, truth = syn.foot_scene(syn.data_dir() / "portraits", n=90)
    result = lock_feet(frames, points, fps=FPS, scale=120.0)
    template, box = frames[0, 180:216, 50:100], (0, 150, 255, 240)
    before_img, after_img = (M.track_patch(f, template, box) for f in (frames, result.frames))
    kp_b, kp_a = M.slide(points[:, 0].mean(axis=1), truth), M.slide(result.targets[:, 0].mean(axis=1), truth)
    im_b, im_a = M.slide(before_img, truth), M.slide(after_img, truth)
    path_b, path_a = M.slide_path(before_img, truth), M.slide_path(after_img, truth)
    free = ~result.contacts[:, 0]
    changed = int(sum(not np.array_equal(a, b) for a, b in zip(result.frames[free], frames[free])))
    hits = (result.contacts[:, 0] & truth).sum() / truth.sum()
    false = int((result.contacts[:, 0] & ~truth).sum())
    return [
        ("known tracks: contacts found / false contacts", f"{hits:.0%} / {false} frames", "-", None),
        ("known tracks: slide of the corrected keypoints", f"{kp_b:.1f} -> {kp_a:.1f} px ({1 - kp_a / kp_b:.0%} less)",
         ">= 80% less", kp_a <= 0.2 * kp_b),
        ("known tracks: slide of the shoe in the image", f"{im_b:.1f} -> {im_a:.1f} px ({1 - im_a / im_b:.0%} less)",
         ">= 80% less", im_a <= 0.2 * im_b),
        ("known tracks: shoe path length in contacts (incl. jitter)",
         f"{path_b:.1f} -> {path_a:.1f} px ({1 - path_a / path_b:.0%} less)", "-", None),
        ("frames changed while the foot is not in contact", f"{changed} of {int(free.sum())}", "0", changed == 0),
    ]


def with_pose() -> list[tuple[str, str, str, bool | None]]:
    frames, truth, _ = syn.paper_doll(syn.data_dir() / "talking" / "man_suit_6s.mp4")
    start = time.perf_counter()
    with PoseTracker() as tracker:
        tracks = tracker.track(frames)
    scale = tracks.scale(frames.shape[1])
    result = lock_feet(frames, tracks.points, fps=FPS, scale=scale)
    ms = (time.perf_counter() - start) / len(frames) * 1000
    keypoints_only = lock_feet(frames, tracks.points, fps=FPS, scale=scale, settings=FootlockSettings(image=False))
    template, box = frames[0, 415:445, 105:165], (0, 380, 185, frames.shape[1])
    before, after, kp_after = (M.slide(M.track_patch(f, template, box), truth)
                               for f in (frames, result.frames, keypoints_only.frames))
    found = result.contacts[:, 1]  # the sliding foot (the person's right, image left)
    x0, y0, x1, y1 = box
    changed = int(sum(not np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1])
                      for a, b in zip(result.frames[~found], frames[~found])))
    return [
        ("pose end to end: slide of the shoe in the image",
         f"{before:.1f} -> {after:.1f} px ({1 - after / before:.0%} less)", ">= 80% less", after <= 0.2 * before),
        ("pose end to end, keypoints only (no shoe tracking): slide of the shoe",
         f"{before:.1f} -> {kp_after:.1f} px ({1 - kp_after / before:.0%} less)", "-", None),
        ("pose end to end: sliding foot's contact frames found / known / false",
         f"{int((found & truth).sum())} / {int(truth.sum())} / {int((found & ~truth).sum())}", "-", None),
        ("pose end to end: frames changed around the sliding foot while not in contact",
         f"{changed} of {int((~found).sum())}", "0", changed == 0),
        ("pose + lock cost per frame (320x480)", f"{ms:.0f} ms", "-", None),
    ]


def in_segments() -> list[tuple[str, str, str, bool | None]]:
    """The pose figure through run_job (MP4 in and out) in one segment and in three, cut
    inside the contacts: the slide, and the largest shoe step across each join."""
    frames, truth, _ = syn.paper_doll(syn.data_dir() / "talking" / "man_suit_6s.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        clip = syn.write_mp4(Path(tmp) / "doll.mp4", frames, (frames.shape[2], frames.shape[1]))
        source = np.stack(list(stream_frames(probe(clip))))
        template, box = source[0, 415:445, 105:165], (0, 380, 185, source.shape[1])
        before, rows = M.slide(M.track_patch(source, template, box), truth), []
        for count in (1, 3):
            report = run_job(clip, Path(tmp) / f"out{count}.mp4", VideoJob(footlock=True, segments=count))
            positions = M.track_patch(np.stack(list(stream_frames(probe(Path(tmp) / f"out{count}.mp4")))),
                                      template, box)
            after = M.slide(positions, truth)
            steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
            both = truth[1:] & truth[:-1]
            joins = [float(steps[s.start - 6: s.start + 1][both[s.start - 6: s.start + 1]].max())
                     for s in report.plan[1:]]
            cuts = ", ".join(str(s.start) for s in report.plan[1:]) or "none"
            rows.append((f"pose end to end via run_job, {count} segment(s) (cuts at {cuts}): slide of the shoe",
                         f"{before:.1f} -> {after:.1f} px ({1 - after / before:.0%} less)", ">= 80% less",
                         after <= 0.2 * before))
            if joins:
                rows.append(("  largest shoe step across the joins (contact spans each cross-fade)",
                             " / ".join(f"{j:.2f}" for j in joins) + " px", "<= 1 px", max(joins) <= 1.0))
    return rows


def measure() -> list[tuple[str, str, str, bool | None]]:
    return known_tracks() + with_pose() + in_segments()


if __name__ == "__main__":
    print(machine())
    print_table(TITLE, measure())
