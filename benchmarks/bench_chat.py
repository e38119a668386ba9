"""Voice to voice with `facecast chat`: the default offline components, in headless Chromium.

A real `facecast chat` and Chromium run in the private network namespace of tests/support/netns;
Chromium's fake microphone loops a WAV of one spoken question (espeak-ng) followed by silence, so the
question is asked once every PERIOD_S. For each turn:

  voice to voice   end of the user's speech -> the first frame of the reply presented in the browser
                   (requestVideoFrameCallback's presentation time of the first frame whose mouth
                   region changed by more than MOTION grey levels from the frame before; idling stays
                   under ~2.2)
  where it goes    vad (end of speech -> the VAD's stop: its stop_secs of silence plus the audio's trip
                   to the server), stt, reply, tts, avatar, output (the server's timeline,
                   chat.timeline), transport (output -> presented in the browser)
  without avatar   the same pipeline with --no-avatar: end of speech -> the first reply audio written
                   to the WebRTC track. The avatar's cost is the difference at p95 of "after_reply"
                   (the reply's text -> its first audio out: TTS, avatar, output), which the STT's
                   variance on a loaded machine does not swamp (bar: <= 100 ms); "total" is printed too
  barge-in         the test's mixer plays a second utterance into the microphone 1 s into the answer:
                   its onset -> the avatar interrupted (server), -> its voice stopped ("done"), -> the
                   mouth still in the browser (3 frames under STILL)

End of speech and onsets are the browser's (chat.voice: the captured microphone level, polled every
10 ms); browser and server share this machine's clock.

usage: python benchmarks/bench_chat.py [--turns 8] [--barge-ins 8] [--json /tmp/bench_chat.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

QUESTION = "How are you doing today?"
BARGE_IN = "Hello there, how are you doing today?"
PERIOD_S = 16.0  # s between questions (the WAV's length: the question, the ~7 s answer, a pause)
MOTION = 3.0  # grey levels of mouth-region change between frames: speech (idling stays under ~2.2)
STILL = 1.5  # ... and under this for 3 frames: a still (closed) mouth
AVATAR_BAR_S = 0.100  # s the avatar may add at p95


def run(turns: int, *args: str, barge_in: bool = False) -> dict:
    """One chat process + one browser until `turns` turns have reached the output; returns the
    server's turns and the page's messages, frames and microphone sound."""
    import httpx
    from support.chat import LEAD_S, MIXER_JS, chat_process, open_chat, write_wav
    from support.netns import webrtc_namespace
    from support.waiting import within

    from facecast.audio.tts import synthesize

    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    spoken = synthesize(QUESTION, voice="en-us", rate_wpm=150).audio.duration
    wav = write_wav(tmp / "question.wav", (QUESTION, PERIOD_S - LEAD_S - spoken))
    second = write_wav(tmp / "barge-in.wav", (BARGE_IN, 0.5), lead_s=0.0)
    with webrtc_namespace(), chat_process(tmp / "chat.log", *args) as url, \
            open_chat(url, wav, 120, before_call=MIXER_JS if barge_in else None) as page:
        assert within(120, lambda: page.evaluate("chat.state()") == "connected")

        def server_turns() -> list[dict]:
            calls = httpx.get(url + "/chat/calls", timeout=10).json()["active"]
            return [t for call in calls for t in call["turns"]]

        def talking() -> list[dict]:
            return page.evaluate("chat.messages.filter((m) => m.event === 'talking')")

        deadline = time.monotonic() + turns * PERIOD_S * 2 + 120
        while sum("output" in t["marks"] for t in server_turns()) < turns and time.monotonic() < deadline:
            if barge_in:
                seen = len(talking())
                if within(PERIOD_S * 2, lambda: len(talking()) > seen):
                    time.sleep(1.0)
                    page.evaluate(f"mixer.play({base64.b64encode(second.read_bytes()).decode()!r})")
                    time.sleep(4.0)
            else:
                time.sleep(1.0)
        time.sleep(8.0)  # the last answer is shown
        return {"turns": server_turns(), "messages": page.evaluate("chat.messages"),
                "frames": page.evaluate("chat.frames"), "voice": page.evaluate("chat.voice"),
                "log": (tmp / "chat.log").read_text()[-3000:]}


def speech_end(result: dict, turn: dict) -> float | None:
    """The end (s) of the microphone's stretch of sound that this turn's VAD stop closed."""
    ends = [v["end"] / 1000 for v in result["voice"] if v["end"] is not None]
    near = [end for end in ends if 0 < turn["marks"]["vad"] - end < 3.0]
    return near[-1] if near else None


def voice_to_voice(result: dict) -> list[dict]:
    """Per answered turn: the server's stage durations plus transport and voice_to_voice (s)."""
    at = np.array([f["at"] / 1000 for f in result["frames"]])
    moving = np.array([f["motion"] > MOTION for f in result["frames"]])
    rows = []
    for turn in result["turns"]:
        end = speech_end(result, turn)
        if "output" not in turn["marks"] or end is None:
            continue
        stages = dict(turn["stages"])
        stages["vad"] = turn["marks"]["vad"] - end
        stages["total"] = turn["marks"]["output"] - end
        if "reply" in turn["marks"]:
            stages["after_reply"] = turn["marks"]["output"] - turn["marks"]["reply"]
        if "avatar" in turn["marks"]:
            later = np.flatnonzero((at > turn["marks"]["output"] - 0.2) & moving)
            if len(later):
                stages["transport"] = at[later[0]] - turn["marks"]["output"]
                stages["voice_to_voice"] = at[later[0]] - end
        rows.append(stages)
    return rows


def barge_ins(result: dict) -> list[dict]:
    """Per interruption of a speaking avatar: onset (s) -> interrupted, -> done, -> mouth still."""
    frames, messages = result["frames"], result["messages"]
    rows = []
    for stop in (m for m in messages if m["event"] == "interrupted"):
        talking = [m for m in messages if m["event"] in ("talking", "done") and m["t"] <= stop["t"]]
        if not talking or talking[-1]["event"] != "talking":
            continue  # the avatar was not speaking: the question's own start
        starts = [v["start"] / 1000 for v in result["voice"] if v["start"] / 1000 <= stop["t"]]
        if not starts:
            continue
        onset = starts[-1]
        done = next((m["t"] for m in messages if m["event"] == "done" and m["t"] >= stop["t"]), None)
        after = [f for f in frames if f["at"] / 1000 > stop["t"]]
        still = next((after[i]["at"] / 1000 for i in range(len(after) - 2)
                      if all(f["motion"] < STILL for f in after[i:i + 3])), None)
        rows.append({"interrupted": stop["t"] - onset, "voice_stopped": None if done is None else done - onset,
                     "mouth_still": None if still is None else still - onset})
    return rows


def percentiles(rows: list[dict], key: str) -> tuple[float, float, int]:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return float("nan"), float("nan"), 0
    return float(np.percentile(values, 50)), float(np.percentile(values, 95)), len(values)


def table(title: str, rows: list[dict], keys: tuple[str, ...]) -> None:
    print(f"\n{title}")
    print(f"  {'stage':16} {'p50 ms':>8} {'p95 ms':>8} {'n':>4}")
    for key in keys:
        p50, p95, n = percentiles(rows, key)
        print(f"  {key:16} {p50 * 1000:8.0f} {p95 * 1000:8.0f} {n:4d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=8, help="turns per configuration (default 8)")
    parser.add_argument("--barge-ins", type=int, default=8, help="barge-in trials, about (default 8)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = parser.parse_args()

    stages = ("vad", "stt", "reply", "tts", "avatar", "output", "after_reply", "total", "transport", "voice_to_voice")
    with_avatar = run(args.turns)
    rows = voice_to_voice(with_avatar)
    table("with the avatar (each stage: its own share; total: end of speech -> first reply audio out)", rows, stages)
    without = run(args.turns, "--no-avatar")
    rows_without = voice_to_voice(without)
    table("without the avatar (--no-avatar)", rows_without, ("vad", "stt", "reply", "tts", "output", "after_reply",
                                                             "total"))
    barge = run(max(2, args.barge_ins + 1), barge_in=True)  # the first question is no barge-in
    rows_barge = barge_ins(barge)
    table("barge-in (onset of the user's speech -> ...)", rows_barge, ("interrupted", "voice_stopped", "mouth_still"))

    for key in ("after_reply", "total"):
        p95_with, p95_without = percentiles(rows, key)[1], percentiles(rows_without, key)[1]
        added = p95_with - p95_without
        print(f"\nthe avatar adds {added * 1000:.0f} ms at p95 to {key} ({p95_with * 1000:.0f} vs "
              f"{p95_without * 1000:.0f} ms; bar {AVATAR_BAR_S * 1000:.0f} ms): "
              f"{'ok' if added <= AVATAR_BAR_S else 'over the bar'}")
    p95_avatar = percentiles(rows, "avatar")[1]
    print(f"the avatar stage itself (first TTS audio in -> first avatar audio+image out): p95 "
          f"{p95_avatar * 1000:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps({"with_avatar": with_avatar, "without_avatar": without, "barge_in": barge,
                                         "rows": rows, "rows_without": rows_without, "barge_rows": rows_barge},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
