"""`facecast animate`: a driver video animates an avatar (registered into the main CLI)."""

from __future__ import annotations

import time
from pathlib import Path

EPILOG = """examples:
  facecast animate --driver me.mp4 -o out.mp4                 # the demo astronaut follows me.mp4
  facecast animate --avatar portrait.jpg --driver me.mp4 -o out.mp4
  facecast animate --avatar 0123456789abcdef01234567 --driver me.mp4 -o out.mp4 --absolute

The avatar copies the driver's head rotation, position, eyes, brows and mouth, measured
against the driver's first frame (relative, the default) or as they are (--absolute).
The driver's audio track is kept."""


def add_commands(sub) -> None:
    """Register `animate` on the main parser's subcommands."""
    import argparse

    from facecast.cli import add_encoder_arguments, add_face_argument, max_size_arg

    p = sub.add_parser("animate", help="animate an avatar with the face in a driver video",
                       description="Live-portrait animation, offline: every frame of the driver video "
                                   "moves the avatar's head, eyes, brows and mouth. Writes an MP4 "
                                   "(H.264, plus AAC with the driver's audio).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--avatar", "-a", default=None,
                   help="portrait image/video file or prepared avatar id (default: the demo astronaut)")
    p.add_argument("--driver", "-d", required=True, type=Path, help="video whose face drives the avatar")
    p.add_argument("-o", "--output", required=True, type=Path, help="output .mp4 path")
    p.add_argument("--absolute", action="store_true",
                   help="copy the driver's head orientation and expression as they are, "
                        "not their change since the first frame")
    p.add_argument("--max-size", type=max_size_arg, default=None, metavar="PX",
                   help="shrink the avatar so its long side is at most PX (default: as prepared)")
    add_face_argument(p)
    add_encoder_arguments(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=run_animate)


def run_animate(args) -> int:
    from facecast.avatar.resolve import avatar_file
    from facecast.cli import _check_output
    from facecast.config import PrepareSettings
    from facecast.outputs import check_inputs
    from facecast.portrait.offline import animate_file
    from facecast.portrait.source import load_avatar, still_of
    from facecast.progress_bar import ProgressBar

    source = avatar_file(args.avatar) if args.avatar else None
    _check_output(args.output, [("--avatar", source), ("--driver", args.driver)])
    check_inputs([("--driver", args.driver)])
    start = time.perf_counter()
    avatar = still_of(load_avatar(args.avatar, PrepareSettings(face=args.face)), args.max_size)
    with ProgressBar("animating", args.quiet) as progress:
        report = animate_file(avatar, args.driver, args.output, mode="absolute" if args.absolute else "relative",
                              crf=args.crf, preset=args.preset, progress=progress)
    took = time.perf_counter() - start
    audio = "with the driver's audio" if report.has_audio else "no audio"
    print(f"wrote {report.path}: {report.frames} frames at {report.fps} fps, {audio}, face in "
          f"{report.face_frames}/{report.driver_frames} driver frames, in {took:.1f} s "
          f"({report.frames / max(took, 1e-9):.0f} frames/s)")
    return 0
