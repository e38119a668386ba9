"""What the `facecast video ...` commands run: argparse namespaces in, a printed summary out."""

from __future__ import annotations

from pathlib import Path

from facecast.errors import InvalidArgument
from facecast.progress_bar import ProgressBar
from facecast.video.contacts import ContactSettings
from facecast.video.footlock import FootlockSettings
from facecast.video.pipeline import JobReport, VideoJob, run_job


def _segment_args(args) -> dict:
    return {"segments": args.segments, "max_segment_seconds": args.max_segment_seconds, "overlap": args.overlap}


def _check_io(args, *inputs: tuple[str, Path | None], suffixes: tuple[str, ...] = (".mp4",)) -> None:
    """The output must be none of the command's inputs (source first, then `inputs`): facecast.outputs."""
    from facecast.outputs import check_inputs
    from facecast.video.output import check_output

    check_inputs([("source", args.source), *inputs])
    check_output(args.output, suffixes, "--output", [("source", args.source), *inputs])


def _run(args, job: VideoJob, label: str) -> JobReport:
    with ProgressBar("analysing", args.quiet) as analysing, ProgressBar(label, args.quiet) as progress:
        return run_job(args.source, args.output, job, progress=progress, analysis_progress=analysing)


def _summary(report: JobReport, extra: str = "") -> None:
    seconds = report.frames / report.fps if report.fps else 0.0
    print(f"wrote {report.output}: {report.frames} frames ({seconds:.1f} s) in {len(report.plan)} segment(s), "
          f"{report.seconds:.1f} s ({report.frames / max(report.seconds, 1e-9):.0f} frames/s){extra}")


def stabilize(args) -> int:
    from facecast.video.output import check_output

    transforms = args.transforms or args.output.with_suffix(".transforms.json")
    _check_io(args)
    check_output(transforms, (".json",), "--transforms", [("source", args.source), ("--output", args.output)])
    job = VideoJob(stabilize=True, window=args.window, ignore_person=not args.track_person,
                   transforms=transforms, **_segment_args(args))
    report = _run(args, job, "stabilising")
    from facecast.video.transforms import corner_shift

    camera = report.camera
    shift = max(corner_shift(w, camera.size) for w in camera.warps) if camera is not None else 0.0
    _summary(report, f"; camera path -> {transforms} (largest correction {shift:.1f} px)")
    return 0


def reshake(args) -> int:
    from facecast.video.reshake import reshake_video

    _check_io(args, ("--transforms", args.transforms))
    with ProgressBar("re-shaking", args.quiet) as progress:
        frames, seconds = reshake_video(args.source, args.transforms, args.output,
                                        frame_map=args.frame_map, progress=progress)
    print(f"wrote {args.output}: {frames} frames in {seconds:.1f} s")
    return 0


def segments(args) -> int:
    job = VideoJob(stabilize=args.stabilize, window=args.window, temporal=args.temporal,
                   temporal_box=parse_box(args.region), background=args.background, footlock=args.footlock,
                   **_segment_args(args))
    if args.output is None:
        return _print_plan(args.source, job)
    _check_io(args, ("--background", args.background))
    _summary(_run(args, job, "processing"))
    return 0


def _print_plan(source: Path, job: VideoJob) -> int:
    from facecast.video.analysis import analyse
    from facecast.video.pipeline import plan_for
    from facecast.video.stream import probe

    info = probe(source)
    analysis = analyse(info, track_camera=False)
    plan = plan_for(analysis, job)
    print(f"{source}: {analysis.frame_count} frames, {info.fps:g} fps, {len(plan)} segment(s), "
          f"overlap {job.overlap} frames")
    print(f"{'#':>3} {'start':>7} {'stop':>7} {'frames':>7} {'seconds':>8}  cut")
    for s in plan:
        print(f"{s.index:>3} {s.start:>7} {s.stop:>7} {s.length:>7} {s.length / info.fps:>8.2f}  {s.cut}")
    return 0


def plate(args) -> int:
    from facecast.video.output import IMAGE_SUFFIXES, write_image
    from facecast.video.plate import extract_plate
    from facecast.video.stream import probe

    _check_io(args, suffixes=IMAGE_SUFFIXES)
    if args.samples < 1:
        raise InvalidArgument(f"--samples {args.samples!r} must be at least 1")
    info = probe(args.source)
    with ProgressBar("sampling", args.quiet) as progress:
        result = extract_plate(info, samples=args.samples, require_person=not args.allow_no_person,
                               progress=progress)
    write_image(args.output, result.image)
    print(f"wrote {args.output}: median of {result.samples} frames, person covered {result.person_fraction:.0%} "
          f"of a frame on average, {result.holes.mean():.1%} of the plate inpainted")
    return 0


def composite(args) -> int:
    _check_io(args, ("--background", args.background))
    _summary(_run(args, VideoJob(background=args.background, **_segment_args(args)), "compositing"))
    return 0


def footlock(args) -> int:
    _check_io(args)
    settings = FootlockSettings(blend=args.blend, contacts=ContactSettings(
        speed_on=args.speed_on, speed_off=args.speed_off, height=args.height))
    report = _run(args, VideoJob(footlock=True, footlock_settings=settings, **_segment_args(args)), "locking feet")
    _summary(report, f"; feet locked in {report.contact_frames} frame(s)")
    return 0


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    """"X0,Y0,X1,Y1" -> a box of ints (x1 > x0, y1 > y0), None for None."""
    if text is None:
        return None
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidArgument(f"--region {text!r}: expected four integers X0,Y0,X1,Y1") from None
    if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
        raise InvalidArgument(f"--region {text!r}: need 0 <= X0 < X1 and 0 <= Y0 < Y1")
    return x0, y0, x1, y1
