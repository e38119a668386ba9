"""`facecast batch jobs.csv --out DIR [--ray-address ADDR]` (registered by facecast.cli)."""

from __future__ import annotations

from pathlib import Path

EPILOG = """jobs.csv: a header, then one render per row. Columns: avatar (image/video file or prepared avatar id),
audio (file) or text, and optionally name (output DIR/<name>.mp4; default row-<line>), voice, fps, seed, crf,
preset. Relative paths are relative to the CSV. Rows whose output exists are skipped, so a re-run resumes.

examples:
  facecast batch jobs.csv --out renders/                       # here, one job after another
  facecast batch jobs.csv --out /shared/renders --ray-address auto   # as Ray tasks on the cluster
"""


def add_commands(sub) -> None:
    import argparse

    p = sub.add_parser("batch", help="render every row of a CSV (locally or on a Ray cluster)",
                       description="Render many videos: one job per CSV row, with retries of failed jobs, "
                                   "a summary of failures, and resumption (finished rows are skipped).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", type=Path, help="the jobs CSV")
    p.add_argument("--out", type=Path, required=True, help="folder for the videos (made when missing)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="run the jobs as Ray tasks on this cluster ('auto': the one `ray start` made here); "
                        "the paths in the CSV and --out must be readable there too (a shared folder)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts of a job that crashed (default 2); "
                                                          "jobs with bad input are not retried")
    p.add_argument("--cpus-per-job", type=float, default=1.0, help="CPUs a Ray task reserves (default 1)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=run_batch)


def run_batch(args) -> int:
    from facecast.batch.jobs import read_jobs
    from facecast.batch.run import run_local
    from facecast.errors import InvalidArgument
    from facecast.progress_bar import ProgressBar

    if args.retries < 0:
        raise InvalidArgument(f"--retries {args.retries!r} must not be negative")
    jobs = read_jobs(args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    with ProgressBar("jobs", args.quiet) as progress:
        if args.ray_address:
            from facecast.deps import require

            require("ray")
            from facecast.batch.run import run_ray

            summary = run_ray(jobs, args.out, args.ray_address, args.retries, args.cpus_per_job, progress)
        else:
            summary = run_local(jobs, args.out, args.retries, progress)
    print("\n".join(summary.lines(jobs)))
    return 1 if summary.failed else 0
