"""The `facecast` command line: prepare, render, demo (and serve, animate, video where installed)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facecast import __version__
from facecast.config import DEFAULT_FPS, PrepareSettings, RenderSettings, cache_dir
from facecast.errors import FacecastError
from facecast.progress_bar import ProgressBar

DEMO_TEXT = ("Hello! I am an avatar rendered by facecast, entirely on this computer, "
             "with no download and no graphics card.")

EPILOG = """examples:
  facecast demo                                   # the built-in astronaut says a sentence
  facecast prepare portrait.jpg                   # detect the face once, cache it
  facecast render --avatar portrait.jpg --audio speech.wav -o out.mp4
  facecast render --avatar clip.mp4 --text "Good morning" --voice en -o out.mp4

avatars are cached under FACECAST_CACHE_DIR (default ~/.cache/facecast)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except FacecastError as exc:
        print(f"facecast: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facecast: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecast", description="Real-time talking avatars: a portrait photo or video + speech -> lip-synced MP4.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facecast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_prepare(sub)
    _add_render(sub)
    _add_demo(sub)
    for extra in ("facecast.server.cli", "facecast.portrait.cli", "facecast.video.cli"):
        _add_optional(sub, extra)
    return parser


def _add_optional(sub, module: str) -> None:
    """Commands of optional parts register themselves through `add_commands(sub)`."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    mod.add_commands(sub)


def _add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="detect the face of a portrait or video and cache it",
                       description="Prepare an avatar: face detection and the face mesh on every frame, "
                                   "face boxes smoothed over time, cached by content hash. "
                                   "A second run loads from the cache.")
    p.add_argument("source", type=Path, help="portrait image (JPEG, PNG, ...) or short video (MP4, ...)")
    p.add_argument("--force", action="store_true", help="prepare again even if cached")
    p.add_argument("--max-size", type=int, default=1024, metavar="PX", help="cap of the long side (default 1024)")
    p.set_defaults(run=_run_prepare)


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render an avatar speaking an audio file or text to MP4",
                       description="Render a lip-synced MP4 (H.264 + AAC). Speech comes from --audio "
                                   "(WAV, MP3, M4A, OGG, FLAC, or a video's audio track) or from --text, "
                                   "spoken by the built-in offline text-to-speech.")
    p.add_argument("--avatar", "-a", required=True, type=Path, help="portrait image or video (prepared on first use)")
    speech = p.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", type=Path, help="speech audio file")
    speech.add_argument("--text", help="text to speak (offline text-to-speech)")
    p.add_argument("--voice", default="en", help="text-to-speech voice/language, e.g. en, de, fr (default en)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .mp4 path")
    _add_render_options(p)
    from facecast.video.cli import add_render_arguments

    add_render_arguments(p)  # --stabilize, --temporal, --plate, --footlock, segments (video avatars)
    p.set_defaults(run=_run_render)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="offline demo: the astronaut portrait says a sentence",
                       description="Render scikit-image's public-domain astronaut portrait speaking a sentence "
                                   "synthesized offline. Needs no input, no GPU and no download.")
    p.add_argument("-o", "--output", type=Path, default=Path("facecast-demo.mp4"), help="output path (default facecast-demo.mp4)")
    p.add_argument("--text", default=DEMO_TEXT, help="what the astronaut says")
    p.add_argument("--voice", default="en", help="text-to-speech voice (default en)")
    _add_render_options(p)
    p.set_defaults(run=_run_demo)


def _add_render_options(p) -> None:
    p.add_argument("--fps", type=int, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS})")
    p.add_argument("--no-idle", action="store_true", help="no blinks or head sway on still portraits")
    p.add_argument("--seed", type=int, default=0, help="seed of the idle motion (default 0)")
    p.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    p.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    p.add_argument("--backend", default="classic", help="lip-sync backend: classic (CPU) or musetalk (GPU)")
    p.add_argument("--model-dir", type=Path, help="model weights directory of a neural backend")
    p.add_argument("--compile", choices=["none", "cudagraph", "reduce-overhead", "max-autotune"],
                   help="musetalk on a GPU: reduce-overhead (default; about a minute of compilation, then "
                        "the fastest), cudagraph (starts at once, half the speed) or none (eager)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _run_prepare(args) -> int:
    from facecast.avatar.prepare import prepare

    start = time.perf_counter()
    with ProgressBar("preparing", args.quiet if hasattr(args, "quiet") else False) as progress:
        avatar = prepare(args.source, PrepareSettings(max_long_side=args.max_size), force=args.force, progress=progress)
    kind = f"video, {avatar.frame_count} frames" if avatar.is_video else "image"
    print(f"{avatar.id}  {avatar.name}  {avatar.size[0]}x{avatar.size[1]}  {kind}  "
          f"({(time.perf_counter() - start) * 1000:.0f} ms, cache {cache_dir()})")
    return 0


def _run_render(args) -> int:
    from facecast.engine import speech_from_file, speech_from_text

    speech = speech_from_text(args.text, args.voice) if args.text is not None else speech_from_file(args.audio)
    return _render(args, args.avatar, speech)


def _run_demo(args) -> int:
    from facecast.demo import demo_portrait
    from facecast.engine import speech_from_text

    return _render(args, demo_portrait(), speech_from_text(args.text, args.voice))


def _render(args, avatar_source: Path, speech) -> int:
    from facecast.avatar.prepare import prepare
    from facecast.engine import render_to_file
    from facecast.lipsync.base import get_backend

    _check_output(args.output)
    settings = RenderSettings(fps=args.fps, idle=not args.no_idle, seed=args.seed, crf=args.crf,
                              preset=args.preset, backend=args.backend)
    options = {key: value for key, value in (("model_dir", args.model_dir), ("compile", args.compile)) if value}
    backend = get_backend(args.backend, **options)
    from facecast.video.render import VideoRender

    video = VideoRender.from_args(args)  # None unless a video-avatar option was given
    start = time.perf_counter()
    with ProgressBar("preparing", args.quiet) as progress:
        avatar = prepare(video.source(avatar_source, progress) if video else avatar_source, progress=progress)
    if video:
        video.attach(avatar)
    target = video.staging(args.output) if video else args.output
    with ProgressBar("rendering", args.quiet) as progress:
        out = render_to_file(avatar, speech, target, settings, backend=backend, progress=progress)
    if video:
        with ProgressBar("post-processing", args.quiet) as progress:
            out = video.finish(avatar, out, args.output, speech.audio, progress)
    frames = speech.audio.frame_count(args.fps)
    took = time.perf_counter() - start
    print(f"wrote {out}: {frames} frames, {speech.audio.duration:.2f} s, in {took:.1f} s "
          f"({frames / max(took, 1e-9):.0f} frames/s)")
    return 0


def _check_output(path: Path) -> None:
    from facecast.errors import InvalidArgument

    if path.suffix.lower() != ".mp4":
        raise InvalidArgument(f"--output {str(path)!r}: facecast writes MP4 files; use a .mp4 name")
    if not path.parent.exists():
        raise InvalidArgument(f"--output {str(path)!r}: folder {str(path.parent)!r} does not exist")


if __name__ == "__main__":
    sys.exit(main())
