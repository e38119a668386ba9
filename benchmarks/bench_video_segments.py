"""Segment bars: frame differences at the joins within the normal range of those inside the
segments; peak memory flat (+-10%) from a 10 s to a 60 s video.

Run: python benchmarks/bench_video_segments.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: synthetic clips, metrics

from bench_video_all import machine, print_table  # noqa: E402

from support import synthetic as syn  # noqa: E402  (tests/support)
from facecast.video.pipeline import VideoJob, run_job  # noqa: E402
from facecast.video.stream import frames, probe  # noqa: E402

TITLE = "Segments: joins on a real clip (192 px, noise added, stabilise + temporal, 0.8 s segments); memory"

MEMORY_SCRIPT = """
import json, sys, tracemalloc
from pathlib import Path
from facecast.video.pipeline import VideoJob, run_job
def hwm_kb():  # this process's resident peak; ru_maxrss would start at the parent's (kept over exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
job = VideoJob(stabilize=True, ignore_person=False, temporal=True, max_segment_seconds=3.0)
before = hwm_kb()
if sys.argv[3] == "traced":
    tracemalloc.start()
report = run_job(Path(sys.argv[1]), Path(sys.argv[2]), job)
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1] if sys.argv[3] == "traced" else None,
                  "segments": len(report.plan), "rss_kb": hwm_kb(), "rss_before_kb": before}))
"""


def joins(folder: Path) -> tuple[float, float, float, int]:
    """(largest change at a join, mean + 3 std of the changes inside, their mean, segments)."""
    clip = syn.noisy_clip(folder / "clip.mp4", syn.data_dir() / "talking" / "woman_blue_background_7s.mp4")
    job = VideoJob(stabilize=True, ignore_person=False, temporal=True, max_segment_seconds=0.8)
    report = run_job(clip, folder / "out.mp4", job)
    f = np.stack(list(frames(probe(folder / "out.mp4")))).astype(np.float32)
    d = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
    near = sorted({t for s in report.plan[1:] for t in range(s.start - job.overlap - 1, s.start + 1)})
    inside = np.delete(d, near)
    return float(d[near].max()), float(inside.mean() + 3 * inside.std()), float(inside.mean()), len(report.plan)


def memory(folder: Path) -> list[dict]:
    """[10 s traced, 60 s traced, 10 s resident, 60 s resident]: each job in a fresh interpreter,
    one at a time; "resident" runs without tracemalloc, which changes how the C heap fragments."""
    clips = {s: syn.panning_clip(folder / f"{s}s.mp4", s) for s in (10, 60)}
    out = []
    for mode in ("traced", "resident"):
        for s, src in clips.items():
            run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(src), str(folder / f"o{s}.mp4"), mode],
                                 capture_output=True, text=True, check=True)
            out.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def measure() -> list[tuple[str, str, str, bool | None]]:
    with tempfile.TemporaryDirectory() as tmp:
        worst, normal, mean, count = joins(Path(tmp))
        short, long, short_rss, long_rss = memory(Path(tmp))
    ratio = long["peak"] / short["peak"]
    grown = [r["rss_kb"] - r["rss_before_kb"] for r in (short_rss, long_rss)]
    rss = grown[1] / grown[0]
    return [
        (f"largest frame change at the {count - 1} joins", f"{worst:.2f} grey levels (inside: mean {mean:.2f})",
         f"<= normal range (mean + 3 std inside = {normal:.2f})", worst <= normal),
        ("peak traced memory (tracemalloc), 60 s / 10 s video (160x120, 3 s segments)",
         f"{long['peak'] / 1e6:.2f} / {short['peak'] / 1e6:.2f} MB = {ratio:.3f}", "1 +- 0.10",
         abs(ratio - 1) <= 0.10),
        ("peak resident memory the job adds (VmHWM after - after the imports), 60 s / 10 s",
         f"{grown[1] / 1e3:.1f} / {grown[0] / 1e3:.1f} MB = {rss:.3f}", "1 +- 0.10", abs(rss - 1) <= 0.10),
        ("peak resident memory with the libraries, 60 s / 10 s",
         f"{long_rss['rss_kb'] / 1e3:.0f} / {short_rss['rss_kb'] / 1e3:.0f} MB", "-", None),
        ("segments, 10 s / 60 s video", f"{short['segments']} / {long['segments']}", "-", None),
    ]


if __name__ == "__main__":
    print(machine())
    print_table(TITLE, measure())
