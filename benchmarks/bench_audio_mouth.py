"""Lip-sync benchmark of audio -> mouth opening against real talking-head videos.

For every clip in shared/data/talking: the real inner-lip opening per frame (dlib, lipmeasure.py)
is correlated (Pearson, best over +-3 frames of lag) with
  - the RMS level in dB of each frame's audio (the baseline to beat), and
  - the `open` column of facecast.audio.mouth.mouth_track, computed at the clip's own fps.
A secondary column correlates the track's `width` with the real mouth-corner width.
Run: PYTHONPATH=src python benchmarks/bench_audio_mouth.py [--data DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lipmeasure import best_lag_correlation, mouth_shapes, rms_db_per_frame, video_fps  # noqa: E402

from facecast.audio.decode import load_audio  # noqa: E402
from facecast.audio.mouth import mouth_track  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAX_LAG = 3  # frames


def evaluate(video: Path, cache: Path | None) -> dict:
    """Correlations of one clip: frames, fps, r/lag of RMS dB and of mouth_track's open."""
    shapes = mouth_shapes(video, cache_dir=cache)
    real = shapes[:, 0]
    fps = video_fps(video)
    audio = load_audio(video)
    rms = rms_db_per_frame(audio, len(real), fps)
    t0 = time.perf_counter()
    track = mouth_track(audio, int(round(fps)))
    elapsed = time.perf_counter() - t0
    r_rms, lag_rms = best_lag_correlation(rms, real, MAX_LAG)
    r_open, lag_open = best_lag_correlation(track[:, 0], real, MAX_LAG)
    r_width, _ = best_lag_correlation(track[:, 1], shapes[:, 1], MAX_LAG)
    return dict(clip=video.stem, frames=len(real), fps=fps, r_rms=r_rms, lag_rms=lag_rms,
                r_open=r_open, lag_open=lag_open, r_width=r_width, ms=elapsed * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/talking")
    parser.add_argument("--cache", type=Path, default=REPO / "out/bench_cache")
    args = parser.parse_args()
    rows = [evaluate(v, args.cache) for v in sorted(args.data.glob("*.mp4"))]
    print(f"{'clip':28s} {'frames':>6s} {'fps':>4s} {'r(RMS dB)':>10s} {'r(open)':>9s} "
          f"{'r(width)':>8s} {'ms':>6s}")
    for r in rows:
        print(f"{r['clip']:28s} {r['frames']:6d} {r['fps']:4.0f} "
              f"{r['r_rms']:6.3f}@{r['lag_rms']:+d} {r['r_open']:6.3f}@{r['lag_open']:+d} "
              f"{r['r_width']:8.3f} {r['ms']:6.1f}")
    mean_rms = np.mean([r["r_rms"] for r in rows])
    mean_open = np.mean([r["r_open"] for r in rows])
    beats = all(r["r_open"] > r["r_rms"] for r in rows)
    print(f"{'mean':28s} {'':6s} {'':4s} {mean_rms:9.3f}  {mean_open:8.3f}")
    print(f"open beats RMS dB on every clip: {beats}; mean r(open) >= 0.5: {mean_open >= 0.5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
