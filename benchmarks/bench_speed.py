"""Speed of the CPU default: render + encode throughput at 512x512, cold start, cached preparation.

Run: .venv/bin/python benchmarks/bench_speed.py [--seconds 20]
Prints a markdown table. The bar (issue 2): >= 100 frames/s render + encode, one process.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
AVATAR = DATA / "portraits" / "man_webcam_offcenter_01.jpg"  # 512x512
SPEECH = DATA / "speech" / "en_male_02_19s.mp3"

COLD_SCRIPT = """
import time, sys
t0 = float(sys.argv[1])
from facecast.avatar.prepare import prepare
from facecast.engine import render_to_file, speech_from_file
from facecast.config import RenderSettings
import facecast.media.writer as w
first = []
orig = w.Mp4Writer.write
def write(self, frames):
    orig(self, frames)
    if not first:
        first.append(time.time() - t0)
w.Mp4Writer.write = write
avatar = prepare(sys.argv[2])
render_to_file(avatar, speech_from_file(sys.argv[3]), sys.argv[4], RenderSettings(preset=sys.argv[5]))
print(first[0])
"""


def throughput(preset: str, seconds: float) -> tuple[float, int]:
    """frames/s of render_to_file (features included) for `seconds` of speech."""
    from facecast.audio.decode import load_audio
    from facecast.audio.pcm import Audio
    from facecast.avatar.prepare import prepare
    from facecast.config import RenderSettings
    from facecast.engine import Speech, render_to_file

    audio = load_audio(SPEECH)
    n = int(seconds * audio.sample_rate)
    samples = np.resize(audio.samples, n)
    avatar = prepare(AVATAR)
    with tempfile.TemporaryDirectory() as tmp:
        render_to_file(avatar, Speech(Audio(samples[: audio.sample_rate], audio.sample_rate)), Path(tmp) / "w.mp4")
        start = time.perf_counter()
        render_to_file(avatar, Speech(Audio(samples, audio.sample_rate)), Path(tmp) / "o.mp4",
                       RenderSettings(preset=preset))
        took = time.perf_counter() - start
    frames = int(round(seconds * 25))
    return frames / took, frames


def cold_start(preset: str, runs: int = 3) -> float:
    """Seconds from process start to the first encoded frame (avatar already cached)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(t0), str(AVATAR), str(SPEECH),
                                  str(Path(tmp) / f"c{i}.mp4"), preset],
                                 capture_output=True, text=True, check=True, env=os.environ.copy())
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def cached_prepare(runs: int = 30) -> float:
    from facecast.avatar.prepare import prepare

    prepare(AVATAR)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        prepare(AVATAR)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of speech rendered (default 20)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("\n| measure | value | bar |\n|---|---|---|")
    for preset in ("ultrafast", "veryfast"):
        fps, frames = throughput(preset, args.seconds)
        bar = ">= 100" if preset == "ultrafast" else "-"
        print(f"| render + encode 512x512, x264 {preset} ({frames} frames) | {fps:.0f} frames/s ({fps / 25:.1f}x real time) | {bar} |")
    print(f"| cold start to first encoded frame (cached avatar) | {cold_start('ultrafast') * 1000:.0f} ms | - |")
    print(f"| cached preparation (image avatar) | {cached_prepare() * 1000:.1f} ms | <= 20 ms |")


if __name__ == "__main__":
    main()
