"""One batch job: render it to DIR/<name>.mp4, which appears only when complete."""

from __future__ import annotations

import time
from pathlib import Path

from facecast.batch.jobs import Job


def render_job(job: Job, out_dir: str) -> dict:
    """Render `job` into `out_dir`; returns {"name", "frames", "seconds"}. FacecastError for bad input."""
    from facecast.audio.tts import check_text
    from facecast.avatar.resolve import resolve_avatar
    from facecast.config import RenderSettings
    from facecast.engine import render_to_file, speech_from_file, speech_from_text

    start = time.perf_counter()
    if job.text is not None:
        check_text(job.text)
        speech = speech_from_text(job.text, job.voice)
    else:
        speech = speech_from_file(job.audio)
    avatar = resolve_avatar(job.avatar)
    settings = RenderSettings(fps=job.fps, seed=job.seed, crf=job.crf, preset=job.preset)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    render_to_file(avatar, speech, job.output(Path(out_dir)), settings)
    return {"name": job.name, "frames": speech.audio.frame_count(job.fps),
            "seconds": round(time.perf_counter() - start, 3)}
