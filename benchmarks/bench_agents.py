"""The avatar as the face of a voice agent: one function per measure, each section a framework.

LiveKit Agents (livekit-agents 1.8, no server: livekit-agents' mock room, tests/support/livekit_rooms):
  livekit_pacing(path, seconds)  one utterance of `seconds` s through an AvatarRunner, in the agent's
      process (QueueAudioOutput) or as a separate avatar worker (data streams + RPCs): the pacing
      error of the published audio (wall time from its first to its last frame against the audio's
      own duration, after the first 0.5 s that fill the source's queue; bar <= 1% over 60 s), the
      drift of each audio frame from its due time, the published video rate during the speech, and
      the playback position the agent is told.

pipecat (pipecat-ai 1.14; FacecastVideoService in front of tests/support/pipecat_media.PacedOutput,
pipecat's BaseOutputTransport with a device that plays audio in real time):
  pipecat_output(seconds)  idle, one utterance of `seconds` s of espeak-ng speech, idle again: images
      the service pushes per second (idle and speaking), images the transport draws per second, the
      audio/image offset (when each speech image is drawn minus when the first audio sample of its
      frame plays; 0 is perfect, the transport draws at its framerate so up to one frame late is
      expected), and how long after the speech's last sample played the bot stopped speaking.

usage: python benchmarks/bench_agents.py [--livekit-seconds 60] [--pipecat-seconds 20] [--pipecat-size 256 512]
                                         [--sections livekit,pipecat] [--json /tmp/bench_agents.json]
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


# -- pipecat -----------------------------------------------------------------------------------------------
PIPECAT_IDLE_S = 2.0  # s of idle before and after the utterance
PIPECAT_TEXT = ("facecast is the face of this voice agent. It runs on this computer, with no network, "
                "and it can talk for as long as the agent has something to say. ")


async def _pipecat_output(seconds: float, size_px: int | None) -> dict:
    from pipecat.frames.frames import (BotStoppedSpeakingFrame, OutputImageRawFrame, TTSAudioRawFrame,
                                       TTSStartedFrame, TTSStoppedFrame)
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.tests.utils import run_test
    from support.pipecat_media import PacedOutput, Pushed, mark, script, tts_frames, wait

    from facecast.agents.avatar import AvatarOptions, load
    from facecast.agents.pipecat import AUDIO_KEY, FacecastVideoService
    from facecast.audio.tts import synthesize

    options = AvatarOptions(size=size_px, fps=25, sample_rate=24_000)
    speech = synthesize(PIPECAT_TEXT).audio
    repeats = int(np.ceil(seconds / speech.duration))
    samples = np.tile(speech.samples, repeats)[: int(seconds * speech.sample_rate)]
    service = FacecastVideoService(options)
    size = load(options)[0].size
    transport = PacedOutput(size, options.fps)
    out, up = Pushed(service), Pushed(transport, FrameDirection.UPSTREAM)
    t: dict[str, float] = {}
    limit = seconds + 60.0
    frames = script(wait(limit, lambda: len(transport.video) > 0), mark(t, "idle"),
                    wait(limit, lambda: time.monotonic() - t["idle"] >= PIPECAT_IDLE_S), mark(t, "speak"),
                    TTSStartedFrame(), tts_frames(samples, speech.sample_rate), TTSStoppedFrame(),
                    wait(limit, lambda: up.count(BotStoppedSpeakingFrame) >= 1), mark(t, "stopped"),
                    wait(limit, lambda: time.monotonic() - t["stopped"] >= PIPECAT_IDLE_S), mark(t, "end"))
    await run_test(Pipeline([service, transport]), frames_to_send=frames, observers=[out, up], start_timeout=120)

    def rate(times: list[float]) -> float:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    images = out.times(OutputImageRawFrame)
    speech_times = out.times(TTSAudioRawFrame)
    idle = [x for x in images if x < speech_times[0] or x > speech_times[-1]]
    speaking = [x for x in images if speech_times[0] <= x <= speech_times[-1]]
    drawn = [when for when, _ in transport.video if t["idle"] <= when < t["end"]]
    offsets, seen = [], set()
    for when, image in transport.video:
        if AUDIO_KEY in image.metadata and id(image) not in seen:
            seen.add(id(image))
            played = transport.played_at(image.metadata[AUDIO_KEY])
            if played is not None:
                offsets.append((when - played) * 1000)
    speech_end = max(start + n / transport.sample_rate for start, n in transport.audio if start < t["end"])
    stop = out.times(TTSStoppedFrame)[0]
    return {"seconds": seconds, "size": list(size),
            "pushed_fps_idle": rate(idle), "pushed_fps_speaking": rate(speaking), "drawn_fps": rate(drawn),
            "speech_audio_s": len(speech_times) * 960 / 24_000, "offset_ms_p50": float(np.percentile(offsets, 50)),
            "offset_ms_p95": float(np.percentile(offsets, 95)), "offset_ms_min": float(np.min(offsets)),
            "offset_ms_max": float(np.max(offsets)), "speech_images": len(offsets),
            "stop_after_speech_ms": (stop - speech_end) * 1000,
            "bot_stopped_after_speech_ms": (up.times(BotStoppedSpeakingFrame)[0] - speech_end) * 1000,
            "dropped_batches": service.dropped_batches}


def pipecat_output(seconds: float, size_px: int | None = None) -> dict:
    """Frames out per second and the audio/image offset at pipecat's output transport; size_px: the
    avatar's longest side (None: its default)."""
    return asyncio.run(_pipecat_output(seconds, size_px))


def pipecat_table(rows: list[dict]) -> str:
    lines = ["| utterance | images pushed/s idle / speaking | images drawn/s | audio/image offset p50 / p95 "
             "(min..max) | TTSStopped / bot stopped after the speech |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seconds']:.0f} s ({r['size'][0]}x{r['size'][1]}) | {r['pushed_fps_idle']:.2f} / "
                     f"{r['pushed_fps_speaking']:.2f} | {r['drawn_fps']:.2f} | {r['offset_ms_p50']:+.0f} / "
                     f"{r['offset_ms_p95']:+.0f} ms ({r['offset_ms_min']:+.0f}..{r['offset_ms_max']:+.0f}, "
                     f"{r['speech_images']} images) | {r['stop_after_speech_ms']:+.0f} / "
                     f"{r['bot_stopped_after_speech_ms']:+.0f} ms |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--livekit-seconds", type=float, default=60.0, help="length of the utterance (s)")
    parser.add_argument("--pipecat-seconds", type=float, default=20.0, help="length of the utterance (s)")
    parser.add_argument("--pipecat-size", type=int, nargs="*", default=[256, 512],
                        help="avatar sizes (longest side, px) to measure")
    parser.add_argument("--sections", default="livekit,pipecat", help="which frameworks, comma-separated")
    parser.add_argument("--json", default="/tmp/bench_agents.json", help="where to write the results")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    results: dict = {}
    printed = []
    if "livekit" in sections:
        rows = [livekit_pacing(path, args.livekit_seconds) for path in ("in-process", "worker")]
        results["livekit"], results["livekit_table"] = rows, livekit_table(rows)
        printed.append("## LiveKit\n\n" + results["livekit_table"])
    if "pipecat" in sections:
        rows = [pipecat_output(args.pipecat_seconds, size) for size in args.pipecat_size]
        results["pipecat"], results["pipecat_table"] = rows, pipecat_table(rows)
        printed.append("## pipecat\n\n" + results["pipecat_table"])
    results.update({"load_average_end": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()})
    results["table"] = "\n\n".join(printed)
    results["table"] += f"\n\n(load average at the end: {results['load_average_end']} on {os.cpu_count()} CPUs)"
    Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    print("\n" + results["table"] + f"\n\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
