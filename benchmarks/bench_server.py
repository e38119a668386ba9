"""Server latency, live-audio latency, concurrency and a soak, against a real `facecast serve`.

Run: .venv/bin/python benchmarks/bench_server.py [--requests 30] [--minutes 10] [--skip soak,...]
Starts its own server on a free loopback port (cached default avatar, CPU default backend) and
prints markdown tables. Bars (issue): time to first frame p95 <= 300 ms; live chunk -> frame p95
<= 200 ms; interrupt -> closed mouth <= 150 ms; >= 4 sessions each >= 1.0x real time; the soak
ends with memory back at its baseline, no stuck sessions and no server errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from facecast.media import fmp4

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # test support: ServerProcess
from support.server_process import ServerProcess  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SPEECH_FILE = DATA / "speech" / "en_radio_address_01_8s.wav"
LIVE_FILE = DATA / "speech" / "en_radio_address_02_8s.wav"
TEXTS = ["Hello there!", "Welcome back. How can I help you today?",
         "The quick brown fox jumps over the lazy dog, and then it takes a short rest in the sun."]
FPS = 25


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- time to first frame -----------------------------------------------------------------------

def first_frame(client: httpx.Client, files=None, data=None) -> tuple[float, str]:
    """ms from sending POST /sessions to the first moof+mdat holding a video sample; session id."""
    start = time.perf_counter()
    response = client.post("/sessions", files=files, data=data)
    response.raise_for_status()
    sid = response.json()["id"]
    reader, moof_has_video = fmp4.BoxReader(), False
    with client.stream("GET", f"/stream/{sid}") as stream:
        for chunk in stream.iter_bytes():
            for kind, box in reader.feed(chunk):
                if kind == b"moof":
                    moof_has_video = fmp4.VIDEO_TRACK_ID in fmp4.read_moof(box)
                elif kind == b"mdat" and moof_has_video:
                    return (time.perf_counter() - start) * 1000, sid
    raise RuntimeError(f"session {sid}: the stream ended without a video frame")


def bench_ttff(client: httpx.Client, requests: int) -> list[dict]:
    audio = SPEECH_FILE.read_bytes()
    rows = []
    for label, kwargs in (("text", lambda i: {"data": {"text": TEXTS[i % len(TEXTS)]}}),
                          ("audio (8 s WAV upload)", lambda i: {"files": {"audio": ("speech.wav", audio)}})):
        first_frame(client, **kwargs(0))  # one untimed request: connection set up
        times = []
        for i in range(requests):
            ms, sid = first_frame(client, **kwargs(i))
            times.append(ms)
            client.delete(f"/sessions/{sid}")
        rows.append({"input": label, "n": requests, "p50": pct(times, 50), "p95": pct(times, 95),
                     "max": max(times)})
    return rows


# -- live audio --------------------------------------------------------------------------------

def pcm16(path: Path, rate: int = 16000) -> bytes:
    from facecast.audio.decode import load_audio
    from facecast.audio.resampling import resample

    audio = load_audio(path)
    return (np.clip(resample(audio.samples, audio.sample_rate, rate), -1, 1) * 32767).astype("<i2").tobytes()


def bench_live(server: ServerProcess, client: httpx.Client, utterances: int) -> dict:
    """Push speech in real time (20 ms chunks), end or interrupt each utterance; read the server's
    own timestamps from /stats."""
    from websockets.sync.client import connect

    pcm = pcm16(LIVE_FILE)
    chunk = 640  # 20 ms at 16 kHz, 16-bit
    info = client.post("/sessions", data={"live": "true"}).json()
    stop = threading.Event()
    reader = threading.Thread(target=_read_until, args=(server, info["id"], stop), daemon=True)
    reader.start()
    time.sleep(1.0)
    url = server.url.replace("http", "ws") + info["audio_ws_url"] + "?sample_rate=16000"
    with connect(url) as ws:
        json.loads(ws.recv(timeout=10))
        for u in range(utterances):
            start = random.Random(u).randrange(0, len(pcm) // 2) // 2 * 2
            seconds = 1.0 + (u % 3) * 0.5
            t0 = time.perf_counter()
            for i, at in enumerate(range(start, start + int(seconds * 32000), chunk)):
                ws.send(pcm[at:at + chunk])
                time.sleep(max(0.0, t0 + (i + 1) * 0.020 - time.perf_counter()))
            ws.send(json.dumps({"type": "interrupt" if u % 2 else "end"}))
            json.loads(ws.recv(timeout=10))
            time.sleep(0.6)
    stats = client.get("/stats").json()
    stop.set()
    client.delete(f"/sessions/{info['id']}")
    lat = stats["latency_ms"]
    return {"chunk": lat.get("live_chunk_to_frame_ms"), "interrupt": lat.get("interrupt_to_closed_ms"),
            "resyncs": stats["counters"].get("live_resyncs", 0)}


def _read_until(server: ServerProcess, sid: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c, c.stream("GET", f"/stream/{sid}") as s:
        for _ in s.iter_bytes():
            if stop.is_set():
                return


# -- concurrency -------------------------------------------------------------------------------

def one_clip(server: ServerProcess, audio: bytes) -> tuple[float, float]:
    """(speed as media seconds per wall second, media seconds) of one clip session read fully."""
    with httpx.Client(base_url=server.url, timeout=120) as c:
        start = time.perf_counter()
        sid = c.post("/sessions", files={"audio": ("s.wav", audio)}).json()["id"]
        reader, frames = fmp4.BoxReader(), 0
        with c.stream("GET", f"/stream/{sid}") as stream:
            for chunk in stream.iter_bytes():
                for kind, box in reader.feed(chunk):
                    if kind == b"moof":
                        run = fmp4.read_moof(box).get(fmp4.VIDEO_TRACK_ID)
                        frames += len(run.durations) if run else 0
        took = time.perf_counter() - start
    return frames / FPS / took, frames / FPS


def bench_concurrency(server: ServerProcess, levels: list[int]) -> list[dict]:
    audio = SPEECH_FILE.read_bytes()
    rows = []
    for k in levels:
        with ThreadPoolExecutor(k) as pool:
            results = list(pool.map(lambda _: one_clip(server, audio), range(k)))
        speeds = [s for s, _ in results]
        rows.append({"sessions": k, "min_speed": min(speeds), "mean_speed": statistics.mean(speeds),
                     "total_fps": sum(s * FPS for s in speeds)})
    return rows


def bench_live_concurrency(server: ServerProcess, client: httpx.Client, k: int, seconds: float) -> dict:
    """k live sessions, each read and each fed text continuously: frames made vs the wall clock."""
    ids = [client.post("/sessions", data={"live": "true"}).json()["id"] for _ in range(k)]
    stop = threading.Event()
    readers = [threading.Thread(target=_read_until, args=(server, sid, stop), daemon=True) for sid in ids]
    for r in readers:
        r.start()
    time.sleep(0.5)
    before = {sid: client.get(f"/sessions/{sid}").json()["frames"] for sid in ids}
    start = time.perf_counter()
    for sid in ids:
        client.post(f"/sessions/{sid}/say", data={"text": " ".join(TEXTS * 4)})
    time.sleep(seconds)
    wall = time.perf_counter() - start
    after = {sid: client.get(f"/sessions/{sid}").json()["frames"] for sid in ids}
    resyncs = client.get("/stats").json()["counters"].get("live_resyncs", 0)
    stop.set()
    for sid in ids:
        client.delete(f"/sessions/{sid}")
    speeds = [(after[s] - before[s]) / FPS / wall for s in ids]
    return {"sessions": k, "min_speed": min(speeds), "resyncs": resyncs}


# -- soak --------------------------------------------------------------------------------------

def soak(server: ServerProcess, client: httpx.Client, minutes: float, grace: float) -> dict:
    """Open, read a little of and abandon sessions for `minutes`; then check memory and leftovers."""
    audio = SPEECH_FILE.read_bytes()
    for _ in range(3):  # warm every path before the baseline
        _soak_round(server, audio, random.Random(0))
    _wait_idle(client, grace)
    baseline = client.get("/stats").json()["memory"]["rss"]
    rng, rounds, errors = random.Random(1), 0, 0
    deadline = time.monotonic() + minutes * 60
    peak, samples, next_sample = baseline, [], time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _soak_round(server, audio, rng)
        except (httpx.HTTPError, RuntimeError) as exc:
            errors += 1
            print(f"soak round failed: {exc}", file=sys.stderr)
        rounds += 1
        if rounds % 10 == 0:
            peak = max(peak, client.get("/stats").json()["memory"]["rss"])
        if time.monotonic() > next_sample:
            next_sample += 60
            samples.append(client.get("/stats").json()["memory"]["rss"])
            print(f"soak: {len(samples)} min, {rounds} rounds, RSS {samples[-1]:.0f} MiB", file=sys.stderr)
    _wait_idle(client, grace)
    stats = client.get("/stats").json()
    return {"minutes": minutes, "rounds": rounds, "client_errors": errors, "baseline_mb": baseline,
            "rss_per_minute": samples,
            "peak_mb": peak, "end_mb": stats["memory"]["rss"], "sessions_left": len(stats["sessions"]),
            "session_errors": stats["counters"].get("session_errors", 0),
            "http_5xx": stats["counters"].get("http_5xx", 0),
            "server_tracebacks": server.output().count("Traceback")}


def _soak_round(server: ServerProcess, audio: bytes, rng: random.Random) -> None:
    kind = rng.choice(["text", "audio", "live"])
    fields = {"text": {"data": {"text": rng.choice(TEXTS)}}, "audio": {"files": {"audio": ("s.wav", audio)}},
              "live": {"data": {"live": "true"}}}[kind]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        response = c.post("/sessions", **fields)
        if response.status_code != 201:
            raise RuntimeError(f"POST /sessions: {response.status_code} {response.text}")
        sid = response.json()["id"]
        readers = rng.choice([1, 1, 2])
        for _ in range(readers):
            with c.stream("GET", f"/stream/{sid}") as stream:
                until = time.monotonic() + rng.uniform(0.1, 1.2)
                for _chunk in stream.iter_bytes():
                    if time.monotonic() > until:
                        break  # abort mid-stream
        if rng.random() < 0.5:
            c.delete(f"/sessions/{sid}")  # else it is left for the reaper


def _wait_idle(client: httpx.Client, grace: float) -> None:
    deadline = time.monotonic() + grace + 10
    while client.get("/stats").json()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)


# -- report ------------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; load average at start {load[0]:.2f}"


def print_tables(results: dict) -> None:
    print(f"\nMachine: {results['machine']}\n")
    if "ttff" in results:
        print("| time to first frame (POST /sessions -> first moof+mdat with video) | n | p50 ms | p95 ms | max ms |")
        print("|---|---|---|---|---|")
        for r in results["ttff"]:
            print(f"| {r['input']} | {r['n']} | {r['p50']:.0f} | {r['p95']:.0f} | {r['max']:.0f} |")
    if "live" in results:
        live = results["live"]
        print("\n| live audio (server timestamps) | n | p50 ms | p95 ms | max ms |")
        print("|---|---|---|---|---|")
        for label, key in (("PCM chunk arrives -> first frame showing it sent", "chunk"),
                           ("interrupt -> first closed-mouth frame sent", "interrupt")):
            s = live[key] or {"count": 0, "p50": 0, "p95": 0, "max": 0}
            print(f"| {label} | {s['count']} | {s['p50']:.0f} | {s['p95']:.0f} | {s['max']:.0f} |")
        print(f"\nlive clock resyncs: {live['resyncs']}")
    if "concurrency" in results:
        print("\n| clip sessions at once (512x512, 8 s speech each) | slowest x real time | mean x real time | frames/s all |")
        print("|---|---|---|---|")
        for r in results["concurrency"]:
            print(f"| {r['sessions']} | {r['min_speed']:.2f} | {r['mean_speed']:.2f} | {r['total_fps']:.0f} |")
    if "live_concurrency" in results:
        print("\n| live sessions at once (speaking, read in real time) | slowest x real time | clock resyncs |")
        print("|---|---|---|")
        for r in results["live_concurrency"]:
            print(f"| {r['sessions']} | {r['min_speed']:.2f} | {r['resyncs']} |")
    if "soak" in results:
        s = results["soak"]
        print("\n| soak | minutes | rounds | RSS baseline MiB | peak MiB | end MiB | sessions left | session errors "
              "| HTTP 5xx | client errors | server tracebacks |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print(f"| open / read / abort | {s['minutes']:g} | {s['rounds']} | {s['baseline_mb']:.0f} | {s['peak_mb']:.0f} "
              f"| {s['end_mb']:.0f} | {s['sessions_left']} | {s['session_errors']} | {s['http_5xx']} | {s['client_errors']} "
              f"| {s['server_tracebacks']} |")
        if s["rss_per_minute"]:
            print("\nRSS each minute during the soak (MiB): " + ", ".join(f"{v:.0f}" for v in s["rss_per_minute"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per input kind (>= 20)")
    parser.add_argument("--utterances", type=int, default=20, help="live utterances (half end, half interrupted)")
    parser.add_argument("--levels", default="1,2,4,5,6", help="concurrent clip sessions to try")
    parser.add_argument("--live-sessions", default="4", help="concurrent live sessions to try")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--skip", default="", help="comma list of: ttff, live, concurrency, soak")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    grace = 2.0
    data_dir = Path(tempfile.mkdtemp(prefix="facecast-bench-"))
    os.environ.pop("FACECAST_API_TOKEN", None)  # no token: an empty one is refused at start
    env = {"FACECAST_SESSION_GRACE_S": str(grace), "FACECAST_SERVER_DIR": str(data_dir)}
    results: dict = {"machine": machine()}
    with ServerProcess(env=env, log=data_dir / "serve.log") as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        if "ttff" not in skip:
            results["ttff"] = bench_ttff(client, args.requests)
        if "live" not in skip:
            results["live"] = bench_live(server, client, args.utterances)
        if "concurrency" not in skip:
            results["concurrency"] = bench_concurrency(server, [int(k) for k in args.levels.split(",")])
            results["live_concurrency"] = [bench_live_concurrency(server, client, int(k), 8.0)
                                           for k in args.live_sessions.split(",")]
        if "soak" not in skip:
            results["soak"] = soak(server, client, args.minutes, grace)
    print_tables(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
