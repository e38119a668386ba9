"""The avatar as the face of a voice agent: one function per measure, each section a framework.

LiveKit Agents (livekit-agents 1.8, no server: livekit-agents' mock room, tests/support/livekit_rooms):
  livekit_pacing(path, seconds)  one utterance of `seconds` s through an AvatarRunner, in the agent's
      process (QueueAudioOutput) or as a separate avatar worker (data streams + RPCs): the pacing
      error of the published audio (wall time from its first to its last frame against the audio's
      own duration, after the first 0.5 s that fill the source's queue; bar <= 1% over 60 s), the
      drift of each audio frame from its due time, the published video rate during the speech, and
      the playback position the agent is told.

usage: python benchmarks/bench_agents.py [--livekit-seconds 60] [--json /tmp/bench_agents.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # test support: the mock rooms

LIVEKIT_PACING_BAR = 0.01  # relative pacing error over the utterance at most (1%)
SETTLE_S = 0.5  # s of audio first, while the audio source's 100 ms queue fills (pushes return at once)


# -- LiveKit Agents ----------------------------------------------------------------------------------------
async def _livekit_pacing(path: str, seconds: float) -> dict:
    from livekit import rtc
    from support.livekit_rooms import link, mock_room, speech_frames

    from facecast.agents.avatar import AvatarOptions
    from facecast.agents.livekit import start_in_process, start_worker, use_avatar_worker

    options = AvatarOptions(size=512, fps=25, sample_rate=24_000)  # the default astronaut, 512 px
    if path == "in-process":
        avatar = await start_in_process(mock_room(), options=options)
        output = avatar.audio
    else:
        agent_room, avatar_room = mock_room("agent"), mock_room("facecast-avatar")
        link(agent_room, avatar_room)
        avatar = await start_worker(avatar_room, sender_identity="agent", options=options)
        output = use_avatar_worker(agent_room, avatar_identity="facecast-avatar")
    audio: list[tuple[float, float]] = []  # (published at, s), speech audio
    video: list[float] = []  # published at
    push = avatar.runner.av_sync.push

    async def spy(frame, timestamp=None):
        await push(frame, timestamp)
        if isinstance(frame, rtc.AudioFrame):
            audio.append((time.perf_counter(), frame.duration))
        else:
            video.append(time.perf_counter())

    avatar.runner.av_sync.push = spy
    try:
        await asyncio.sleep(1.0)  # idle first, as an agent joins before it speaks
        for frame in speech_frames(seconds):
            await output.capture_frame(frame)
        output.flush()
        try:
            finished = await asyncio.wait_for(output.wait_for_playout(), seconds * 3 + 30)
        except asyncio.TimeoutError:  # reported as such; what was published is still measured
            finished = None
    finally:
        await avatar.aclose()
    times = np.array([t for t, _ in audio])
    due = np.concatenate([[0.0], np.cumsum([d for _, d in audio])[:-1]])  # each frame's start on the audio clock
    steady = due >= SETTLE_S  # the source's queue has filled: a push returns as the audio plays out
    times, due = times[steady], due[steady] - due[steady][0]
    media, wall = due[-1], times[-1] - times[0]
    drift_ms = ((times - times[0]) - due) * 1000
    in_speech = [t for t in video if times[0] <= t <= times[-1]]
    return {"path": path, "seconds": seconds, "audio_s": round(float(sum(d for _, d in audio)), 3),
            "pacing_error": abs(wall - media) / media, "wall_s": round(float(wall), 3),
            "media_s": round(float(media), 3), "drift_ms_p95": float(np.percentile(np.abs(drift_ms), 95)),
            "drift_ms_max": float(np.abs(drift_ms).max()),
            "video_fps": (len(in_speech) - 1) / (in_speech[-1] - in_speech[0]),
            "reported_position_s": finished.playback_position if finished else None,
            "interrupted": finished.interrupted if finished else None,
            "dropped_batches": avatar.generator.avatar._subscription.dropped}


def livekit_pacing(path: str, seconds: float) -> dict:
    """Pacing of one `seconds` s utterance through an AvatarRunner: path 'in-process' or 'worker'."""
    return asyncio.run(_livekit_pacing(path, seconds))


def livekit_table(rows: list[dict]) -> str:
    lines = ["| path | utterance | pacing error | audio drift p95 / max | video during speech | "
             "position reported | bar |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = "PASS" if r["pacing_error"] <= LIVEKIT_PACING_BAR else "FAIL"
        lines.append(f"| {r['path']} | {r['seconds']:.0f} s | {r['pacing_error'] * 100:.3f}% "
                     f"({r['wall_s']:.3f} s for {r['media_s']:.3f} s) | {r['drift_ms_p95']:.1f} / "
                     f"{r['drift_ms_max']:.1f} ms | {r['video_fps']:.2f} frames/s | "
                     f"{_seconds(r['reported_position_s'])} | <= 1%: {ok} |")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "none (no playback_finished)" if value is None else f"{value:.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--livekit-seconds", type=float, default=60.0, help="length of the utterance (s)")
    parser.add_argument("--json", default="/tmp/bench_agents.json", help="where to write the results")
    args = parser.parse_args()
    rows = [livekit_pacing(path, args.livekit_seconds) for path in ("in-process", "worker")]
    table = livekit_table(rows)
    results = {"livekit": rows, "load_average_end": [round(x, 2) for x in os.getloadavg()],
               "cpus": os.cpu_count(), "table": table}
    Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    print("\n## LiveKit\n\n" + table + f"\n\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
