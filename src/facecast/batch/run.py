"""Run batch jobs, locally (one after another) or as Ray tasks over a cluster.

Either way: a job whose output exists is skipped (a re-run resumes), a job that fails on its
input (a FacecastError: no face, bad audio, bad text) fails at once with its message, and any other
failure (a crash, a killed worker, a lost node) is retried `retries` more times.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facecast.batch.jobs import Job
from facecast.batch.render import render_job
from facecast.errors import FacecastError

Progress = Callable[[int, int], None]


@dataclass
class Summary:
    """What a batch did: names done now, names already done before, and failures {name: message}."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def lines(self, jobs: list[Job]) -> list[str]:
        rows = {job.name: job.row for job in jobs}
        out = [f"{len(self.done)} rendered, {len(self.skipped)} already done, {len(self.failed)} failed"]
        out += [f"  line {rows[name]} ({name}): {message}" for name, message in sorted(self.failed.items(),
                                                                                     key=lambda i: rows[i[0]])]
        return out


def pending(jobs: list[Job], out_dir: Path, summary: Summary) -> list[Job]:
    """Jobs whose output does not exist yet (the others go to summary.skipped)."""
    todo = []
    for job in jobs:
        if job.output(out_dir).is_file():
            summary.skipped.append(job.name)
        else:
            todo.append(job)
    return todo


def run_local(jobs: list[Job], out_dir: Path, retries: int = 2, progress: Progress | None = None) -> Summary:
    summary = Summary()
    todo = pending(jobs, out_dir, summary)
    for count, job in enumerate(todo, 1):
        for attempt in range(retries + 1):
            try:
                render_job(job, str(out_dir))
                summary.done.append(job.name)
                break
            except FacecastError as exc:
                summary.failed[job.name] = str(exc)
                break
            except Exception as exc:  # noqa: BLE001 - anything else is retried, then reported
                if attempt == retries:
                    summary.failed[job.name] = f"{type(exc).__name__}: {exc} (after {retries + 1} attempts)"
        if progress:
            progress(count, len(todo))
    return summary


def _attempt(job: Job, out_dir: str) -> dict:
    """A Ray task's body: input errors come back as a result (never retried); others raise (retried)."""
    try:
        return {"ok": render_job(job, out_dir)}
    except FacecastError as exc:
        return {"error": str(exc)}


def run_ray(jobs: list[Job], out_dir: Path, address: str | None, retries: int = 2, cpus_per_job: float = 1.0,
            progress: Progress | None = None) -> Summary:
    """Every pending job as a Ray task (retried on worker or node failure, and on crashes)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, namespace="facecast")
    env = {k: v for k, v in os.environ.items() if k.startswith("FACECAST_")}
    task = ray.remote(_attempt).options(num_cpus=cpus_per_job, max_retries=retries, retry_exceptions=True,
                                        runtime_env={"env_vars": env})
    summary = Summary()
    todo = pending(jobs, out_dir, summary)
    refs = {task.remote(job, str(out_dir)): job for job in todo}
    waiting, finished = list(refs), 0
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            job = refs[ref]
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - retries are spent: report it
                summary.failed[job.name] = _short(exc)
            else:
                if "error" in result:
                    summary.failed[job.name] = result["error"]
                else:
                    summary.done.append(job.name)
            finished += 1
            if progress:
                progress(finished, len(todo))
    return summary


def _short(exc: Exception) -> str:
    """A task failure in one line: the cause's type and message, not Ray's whole traceback."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
