"""`facecast video ...`: stabilize, reshake, segments, plate, composite, footlock.

Registered by facecast.cli through `add_commands(subparsers)`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facecast.video.defaults import DEFAULT_MAX_SECONDS, DEFAULT_OVERLAP, DEFAULT_WINDOW

RAW = argparse.RawDescriptionHelpFormatter


def at_least(low: int):
    """argparse type: a whole number >= low (a bad value is a one-line error, exit 1)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, at least {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _number(text: str, ok, wanted: str) -> float:
    """A float parsed from `text` for which ok(value) holds, else a one-line argparse error."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give {wanted}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    return _number(text, lambda v: 0 < v < float("inf"), "a positive number of seconds")


def share(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _number(text, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")


VIDEO_HELP = """Tools for video avatars and long videos, each streaming the video (one segment in
memory at a time) and writing its output atomically: a failed run leaves no file.

The render pipeline is decompose -> stabilise -> generate -> composite -> re-shake; these
commands run its parts on their own. `facecast render --stabilize --plate bg.jpg ...` runs
them around a render.

examples:
  facecast video stabilize clip.mp4 -o steady.mp4             # also writes steady.transforms.json
  facecast video reshake generated.mp4 -t steady.transforms.json -o final.mp4
  facecast video segments long.mp4                            # print where the cuts go
  facecast video segments long.mp4 -o out.mp4 --stabilize --temporal
  facecast video plate clip.mp4 -o plate.png                  # the background without the person
  facecast video composite clip.mp4 --background beach.jpg -o out.mp4
  facecast video footlock walk.mp4 -o locked.mp4"""


def add_commands(sub) -> None:
    """Add the `video` command group to the top-level subparsers."""
    p = sub.add_parser("video", help="stabilise, segment, plate, composite or foot-lock a video",
                       description=VIDEO_HELP, formatter_class=RAW)
    vsub = p.add_subparsers(dest="video_command", metavar="TOOL")
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])
    _add_stabilize(vsub)
    _add_reshake(vsub)
    _add_segments(vsub)
    _add_plate(vsub)
    _add_composite(vsub)
    _add_footlock(vsub)


def add_render_arguments(parser) -> None:
    """Add the video-avatar options to `facecast render`."""
    g = parser.add_argument_group("video avatars", "steps around the render (see `facecast video -h`)")
    g.add_argument("--stabilize", action="store_true",
                   help="stabilise a video avatar before preparing it and put the camera motion back afterwards")
    g.add_argument("--stabilize-window", type=at_least(1), default=DEFAULT_WINDOW, metavar="FRAMES",
                   help=f"camera-path smoothing window (default {DEFAULT_WINDOW})")
    g.add_argument("--temporal", action="store_true",
                   help="flow-guided temporal blending of the mouth region against flicker")
    g.add_argument("--plate", type=Path, metavar="IMAGE|VIDEO",
                   help="new background: put the avatar over this image or (looping) video")
    g.add_argument("--footlock", action="store_true", help="pin planted feet (full-body video avatars)")
    g.add_argument("--segments", type=at_least(0), default=0, metavar="N",
                   help="post-process in at least N segments (default: one per --max-segment-seconds)")
    g.add_argument("--max-segment-seconds", type=positive_seconds, default=DEFAULT_MAX_SECONDS, metavar="S",
                   help=f"longest post-processing segment (default {DEFAULT_MAX_SECONDS:g} s)")
    g.add_argument("--overlap", type=at_least(0), default=DEFAULT_OVERLAP, metavar="FRAMES",
                   help=f"frames cross-faded at segment joins (default {DEFAULT_OVERLAP})")


def _add_stabilize(vsub) -> None:
    p = vsub.add_parser("stabilize", aliases=["stabilise"], formatter_class=RAW,
                        help="remove camera shake, keep deliberate pans; save the camera path",
                        description="""Remove camera shake. Corner features are tracked with Lucas-Kanade optical
flow (on the background: the person is masked out with selfie segmentation,
unless there is too little background texture), a similarity (shift, rotation,
zoom) per frame is fitted with RANSAC, the camera path is smoothed with a moving
average of --window frames, and each frame is warped onto the smooth path.
Pans and zooms slower than the window survive; shake faster than it goes.
The uncovered frame border is mirrored.

The camera path is saved as JSON (--transforms, default OUT.transforms.json): give
it to `facecast video reshake` to put the original motion back on frames you
generate from the steady video.""")
    _io(p)
    p.add_argument("--window", type=at_least(1), default=DEFAULT_WINDOW, metavar="FRAMES",
                   help=f"moving-average window of the camera path in frames (default {DEFAULT_WINDOW}; "
                        "larger = steadier, slower pans flattened more)")
    p.add_argument("--transforms", "-t", type=Path, metavar="JSON",
                   help="where to save the camera path (default: OUT with .transforms.json)")
    p.add_argument("--track-person", action="store_true",
                   help="track features on the person too (faster; head motion then counts as camera motion)")
    _segment_options(p)
    p.set_defaults(run=_run_stabilize)


def _add_reshake(vsub) -> None:
    p = vsub.add_parser("reshake", formatter_class=RAW,
                        help="put the original camera motion back on a video made from stabilised frames",
                        description="""Re-apply a camera path saved by `facecast video stabilize` to a video generated
from the stabilised frames, so the result moves like the original footage.
Output frame n uses the path of source frame n, looping forward then backward
when the video is longer than the path (--frame-map), as facecast loops video avatars.""")
    _io(p)
    p.add_argument("--transforms", "-t", type=Path, required=True, metavar="JSON",
                   help="camera path JSON written by `facecast video stabilize`")
    p.add_argument("--frame-map", default="pingpong", choices=("pingpong", "loop", "clamp"),
                   help="how output frames map to path frames beyond its end (default pingpong)")
    p.set_defaults(run=_run_reshake)


def _add_segments(vsub) -> None:
    p = vsub.add_parser("segments", formatter_class=RAW,
                        help="plan (or run) segment-wise processing of a long video",
                        description="""Cut a long video into segments so that one segment at a time is in memory
(peak memory does not grow with the video's length). Cuts go to the quietest
moment (least picture change over the cross-fade) near evenly spaced positions,
evenly spaced when nothing moves. Each segment is processed with --overlap
frames of run-in before it; those frames are cross-faded with the end of the
previous segment, so joins do not show. Stateful steps (temporal blending, foot
contacts) restart at every segment.

Without --output: print the plan. With it: run the chosen steps and write the video.""")
    p.add_argument("source", type=Path, help="input video (MP4, MOV, WebM, ...)")
    p.add_argument("-o", "--output", type=Path, help="output .mp4 (omit to print the plan only)")
    _segment_options(p)
    p.add_argument("--stabilize", action="store_true", help="stabilise (see `facecast video stabilize -h`)")
    p.add_argument("--window", type=at_least(1), default=DEFAULT_WINDOW, metavar="FRAMES",
                   help=f"stabilisation window (default {DEFAULT_WINDOW})")
    p.add_argument("--temporal", action="store_true",
                   help="flow-guided temporal blending against flicker (whole frame or --region)")
    p.add_argument("--region", metavar="X0,Y0,X1,Y1", help="pixel box for --temporal (default: whole frame)")
    p.add_argument("--background", type=Path, metavar="IMAGE|VIDEO", help="put the person over this background")
    p.add_argument("--footlock", action="store_true", help="pin planted feet (see `facecast video footlock -h`)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_segments)


def _add_plate(vsub) -> None:
    p = vsub.add_parser("plate", formatter_class=RAW,
                        help="extract the background plate (the scene without the person)",
                        description="""Estimate what the background looks like without the person: the per-pixel
median over --samples evenly spaced frames, with the person masked out in each
(mediapipe selfie segmentation; the mask is the maximum over the frame and its
two neighbours, grown by a margin). Pixels the person covered in every sampled
frame are inpainted (OpenCV Telea); their share is printed. Works best on a
steady camera: run `facecast video stabilize` first on shaky footage.""")
    p.add_argument("source", type=Path, help="input video")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png, .jpg, ...)")
    p.add_argument("--samples", type=at_least(1), default=48, help="frames the median is taken over (default 48)")
    p.add_argument("--allow-no-person", action="store_true",
                   help="do not fail when no person is found (the plate is then the plain median)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_plate)


def _add_composite(vsub) -> None:
    p = vsub.add_parser("composite", formatter_class=RAW, help="put the person over a new background image or video",
                        description="""Cut the person out (mediapipe selfie segmentation, matte averaged over 3 frames
against edge flicker) and put them over a new background: an image (scaled to
cover the frame, centre-cropped) or a video (looped).""")
    _io(p)
    p.add_argument("--background", "-b", type=Path, required=True, metavar="IMAGE|VIDEO", help="the new background")
    _segment_options(p)
    p.set_defaults(run=_run_composite)


def _add_footlock(vsub) -> None:
    p = vsub.add_parser("footlock", formatter_class=RAW, help="stop planted feet from sliding (full-body videos)",
                        description="""Pin feet that should stand still. Ankle, heel and toe keypoints come from
mediapipe pose (the bundled full model). A foot is in contact when it is slow
(below --speed-on leg lengths per second, staying in contact until --speed-off)
and low (within --height leg lengths of the ground line); short gaps are bridged
so contacts do not flicker. During a contact the foot is moved back to where it
touched down with a local similarity warp in a feathered box, blended --blend
with the original frame (0.7: 70/30). Frames outside contacts are not changed.
Needs the feet in view: a video without a person or without visible feet is refused.""")
    _io(p)
    p.add_argument("--blend", type=share, default=0.7, help="share of the correction (default 0.7)")
    p.add_argument("--speed-on", type=float, default=0.25,
                   help="contact starts below this speed, leg lengths per second (default 0.25)")
    p.add_argument("--speed-off", type=float, default=0.5,
                   help="contact ends above this speed, leg lengths per second (default 0.5)")
    p.add_argument("--height", type=float, default=0.08,
                   help="highest a foot in contact may be above the ground line, leg lengths (default 0.08)")
    _segment_options(p)
    p.set_defaults(run=_run_footlock)


def _io(p) -> None:
    p.add_argument("source", type=Path, help="input video (MP4, MOV, WebM, ...)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .mp4 (keeps the input's audio)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _segment_options(p) -> None:
    g = p.add_argument_group("segments")
    g.add_argument("--segments", type=at_least(0), default=0, metavar="N",
                   help="at least N segments (default 0: as many as --max-segment-seconds needs)")
    g.add_argument("--max-segment-seconds", type=positive_seconds, default=DEFAULT_MAX_SECONDS, metavar="S",
                   help=f"longest segment in seconds; bounds memory (default {DEFAULT_MAX_SECONDS:g})")
    g.add_argument("--overlap", type=at_least(0), default=DEFAULT_OVERLAP, metavar="FRAMES",
                   help=f"frames cross-faded at each join (default {DEFAULT_OVERLAP})")


def _run_stabilize(args) -> int:
    from facecast.video.commands import stabilize

    return stabilize(args)


def _run_reshake(args) -> int:
    from facecast.video.commands import reshake

    return reshake(args)


def _run_segments(args) -> int:
    from facecast.video.commands import segments

    return segments(args)


def _run_plate(args) -> int:
    from facecast.video.commands import plate

    return plate(args)


def _run_composite(args) -> int:
    from facecast.video.commands import composite

    return composite(args)


def _run_footlock(args) -> int:
    from facecast.video.commands import footlock

    return footlock(args)
