"""The `facecast` command line: prepare, render, demo (and serve, animate, video where installed)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facecast import __version__
from facecast.config import (DEFAULT_FPS, MAX_FPS, X264_PRESETS, PrepareSettings, RenderSettings, cache_dir,
                             check_crf, check_fps, check_max_size, check_seed)
from facecast.errors import FacecastError, InvalidArgument
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


class Parser(argparse.ArgumentParser):
    """argparse with facecast's rule for bad input: one line naming the problem, exit status 1."""

    def error(self, message: str):
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _arg_type(check, convert, name: str):
    """An argparse type: `convert` the text, then `check` it (config's checks); a bad value becomes an
    argparse error (one line, exit 1) with the check's message."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = text
        try:
            return check(value)
        except InvalidArgument as exc:  # "--fps '29.97': give ..." -> "argument --fps: '29.97': give ..."
            raise argparse.ArgumentTypeError(f"{text!r}: {str(exc).split(': ', 1)[-1]}") from None

    parse.__name__ = name
    return parse


def _whole(text: str) -> int:
    return int(text.strip())


fps_arg = _arg_type(check_fps, _whole, "fps")
seed_arg = _arg_type(check_seed, _whole, "seed")
crf_arg = _arg_type(check_crf, _whole, "crf")
max_size_arg = _arg_type(check_max_size, _whole, "max_size")


def face_arg(text: str) -> int:
    """--face N: a face index, 0 = the leftmost face."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--face {text!r}: give a face index 0, 1, 2, ... (0 = the leftmost face)")
    return value


def add_face_argument(p) -> None:
    """--face: which face of a photo with several (registered by prepare, render and animate)."""
    p.add_argument("--face", type=face_arg, default=None, metavar="N",
                   help="which face when the photo shows several: N-th from the left, 0-based "
                        "(default: the largest face)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="facecast", description="Real-time talking avatars: a portrait photo or video + speech -> lip-synced MP4.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facecast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_prepare(sub)
    _add_render(sub)
    _add_demo(sub)
    for extra in ("facecast.server.cli", "facecast.portrait.cli", "facecast.video.cli", "facecast.batch.cli",
                  "facecast.chat.cli", "facecast.distill.cli", "facecast.stylize.cli"):
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
    p.add_argument("source", help="portrait image (JPEG, PNG, ...) or short video (MP4, ...; at most 30 s are used)")
    p.add_argument("--force", action="store_true", help="prepare again even if cached")
    p.add_argument("--max-size", type=max_size_arg, default=1024, metavar="PX",
                   help="cap of the long side (default 1024)")
    add_face_argument(p)
    p.set_defaults(run=_run_prepare)


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render an avatar speaking an audio file or text to MP4",
                       description="Render a lip-synced MP4 (H.264 + AAC). Speech comes from --audio "
                                   "(WAV, MP3, M4A, OGG, FLAC, or a video's audio track) or from --text, "
                                   "spoken by the built-in offline text-to-speech.")
    p.add_argument("--avatar", "-a", required=True,
                   help="portrait image or video (prepared on first use), or a prepared avatar's id")
    speech = p.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", type=Path, help="speech audio file")
    speech.add_argument("--text", help="text to speak (offline text-to-speech)")
    p.add_argument("--voice", default="en", help="text-to-speech voice/language, e.g. en, de, fr (default en)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .mp4 path")
    add_face_argument(p)
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
    p.add_argument("--fps", type=fps_arg, default=DEFAULT_FPS,
                   help=f"frames per second, a whole number 1..{MAX_FPS} (default {DEFAULT_FPS})")
    p.add_argument("--no-idle", action="store_true", help="no blinks or head sway on still portraits")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the idle motion, 0..2^32-1 (default 0)")
    add_encoder_arguments(p)
    p.add_argument("--backend", default="classic", help="lip-sync backend: classic (CPU) or musetalk (GPU)")
    p.add_argument("--model-dir", type=Path, help="model weights directory of a neural backend")
    p.add_argument("--compile", choices=["none", "cudagraph", "reduce-overhead", "max-autotune"],
                   help="musetalk on a GPU: reduce-overhead (default; about a minute of compilation, then "
                        "the fastest), cudagraph (starts at once, half the speed) or none (eager)")
    p.add_argument("--decoder", choices=["full", "small"],
                   help="musetalk: full (the VAE's decoder; default, or FACECAST_MUSETALK_DECODER) or small "
                        "(MODEL_DIR/small-decoder: a TAESD-style decoder made by `facecast distill decoder`, or a "
                        "diffusers TAESD for SD latents; TAESD's size has 1/18 of the full decoder's FLOPs and "
                        "approximates its output)")
    p.add_argument("--unet", choices=["teacher", "student"],
                   help="musetalk: teacher (the release's UNet; default, or FACECAST_MUSETALK_UNET) or student "
                        "(MODEL_DIR/musetalk-student, a smaller UNet made by `facecast distill unet`, for small "
                        "GPUs)")
    p.add_argument("--speedups", metavar="NAMES",
                   help="musetalk: comma-joined speed-ups of the full decoder: lower-decode (decode only the rows "
                        "the mouth blend uses: 607 instead of 481 frames/s on an H200, approximate), fp8 "
                        "(torchao, with --compile none only); default none, or FACECAST_MUSETALK_SPEEDUPS")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def add_encoder_arguments(p) -> None:
    """--crf and --preset (render, demo, animate)."""
    p.add_argument("--crf", type=crf_arg, default=20, help="H.264 quality 0..51, lower is better (default 20)")
    p.add_argument("--preset", default="veryfast", choices=X264_PRESETS, metavar="PRESET",
                   help=f"x264 preset: {', '.join(X264_PRESETS)} (default veryfast)")


def _run_prepare(args) -> int:
    from facecast.avatar.resolve import avatar_file, resolve_avatar

    start = time.perf_counter()
    settings = PrepareSettings(max_long_side=args.max_size, face=args.face)
    if avatar_file(args.source, "prepare") is None:
        raise InvalidArgument(f"prepare {args.source!r}: this is already a prepared avatar's id; give an image "
                              "or video file")
    with ProgressBar("preparing", args.quiet if hasattr(args, "quiet") else False) as progress:
        avatar = resolve_avatar(args.source, settings, force=args.force, progress=progress, option="prepare")
    kind = f"video, {avatar.frame_count} frames" if avatar.is_video else "image"
    print(f"{avatar.id}  {avatar.name}  {avatar.size[0]}x{avatar.size[1]}  {kind}  "
          f"({(time.perf_counter() - start) * 1000:.0f} ms, cache {cache_dir()})")
    return 0


def _run_render(args) -> int:
    from facecast.audio.tts import check_text
    from facecast.avatar.resolve import avatar_file
    from facecast.engine import speech_from_file, speech_from_text
    from facecast.outputs import check_inputs

    source = avatar_file(args.avatar)  # None: a prepared avatar's id
    _check_output(args.output, [("--avatar", source), ("--audio", args.audio), ("--plate", args.plate)])
    check_inputs([("--audio", args.audio), ("--plate", args.plate)])
    if args.text is not None:
        check_text(args.text)  # the server's rules and limit (MAX_TEXT_CHARS)
    speech = speech_from_text(args.text, args.voice) if args.text is not None else speech_from_file(args.audio)
    return _render(args, source if source is not None else args.avatar, speech)


def _run_demo(args) -> int:
    from facecast.audio.tts import check_text
    from facecast.demo import demo_portrait
    from facecast.engine import speech_from_text

    portrait = demo_portrait()
    _check_output(args.output, [("(the demo portrait)", portrait)])
    check_text(args.text)
    return _render(args, portrait, speech_from_text(args.text, args.voice))


def _render(args, avatar_ref: Path | str, speech) -> int:
    """Render `speech` on the avatar `avatar_ref` (a file, or a prepared avatar's id) to args.output,
    whose path the caller has checked."""
    from facecast.avatar.resolve import resolve_avatar, warn_long_video
    from facecast.engine import render_to_file
    from facecast.lipsync.base import get_backend

    settings = RenderSettings(fps=args.fps, idle=not args.no_idle, seed=args.seed, crf=args.crf,
                              preset=args.preset, backend=args.backend)
    prepare_settings = PrepareSettings(face=getattr(args, "face", None))
    options = {key: value for key, value in (("model_dir", args.model_dir), ("compile", args.compile),
                                             ("decoder", args.decoder), ("unet", args.unet),
                                             ("speedups", args.speedups)) if value}
    backend = get_backend(args.backend, **options)
    from facecast.video.render import VideoRender

    video = VideoRender.from_args(args)  # None unless a video-avatar option was given
    is_file = isinstance(avatar_ref, Path)
    if video and not is_file and (video.job.stabilize or video.job.footlock):
        raise InvalidArgument(f"--avatar {avatar_ref!r} is a prepared avatar's id; --stabilize and --footlock "
                              "need the video file")
    if video and not is_file and video.job.background is not None:
        from facecast.video.composite import Background

        Background(video.job.background, (16, 16))  # a bad background fails before rendering (as in video.source)
    if video and is_file and video.job.stabilize:  # the stabilised copy is already cut: warn about the source
        warn_long_video(avatar_ref, prepare_settings.max_video_seconds)
    start = time.perf_counter()
    with ProgressBar("preparing", args.quiet) as progress:
        source = video.source(avatar_ref, progress) if video and is_file else avatar_ref
        avatar = resolve_avatar(source, prepare_settings, progress=progress)
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


def _check_output(path: Path, inputs=()) -> None:
    """An MP4 output path that is none of `inputs` ((option, path or None) pairs): facecast.outputs."""
    from facecast.outputs import check_output

    check_output(path, (".mp4",), "--output", inputs)


if __name__ == "__main__":
    sys.exit(main())
