"""The Ray path (`facecast serve --ray`, `facecast batch --ray-address`) against plain `facecast serve`.

Run as root: .venv/bin/python benchmarks/bench_ray.py [--ttff 20] [--levels 4,6,8] [--json FILE]
Everything runs in one loopback-only network namespace (tests/support/netns.py; Ray binds the
machine's non-loopback address and probes a public one otherwise), with one local Ray cluster. Plain
serve runs beside it and the two are measured in turn (request by request, level by level), so
drifting load from other processes hits both alike. Ray's workers run at nice 0 here, like plain
serve (Ray's default is 15, which loses every contest for the CPU on a shared machine).

Bars (issue 15), this 2-core machine:
- time to first frame through Ray: p95 added <= 30 ms against plain serve;
- sustained real-time live sessions through Ray >= 90% of plain serve's (one replica vs one process);
- routing: 0 of 1,000 mixed requests (stream reads, state, live audio, interrupts, /say) over 20
  sessions on 2 replicas reach the wrong replica (x-facecast-replica header; a WebSocket's ready
  message names its session, which only its replica has);
- failure: one of 2 replicas SIGKILLed under load: the other's sessions lose no frames (their fMP4
  decode times stay contiguous), the killed one's clients see their streams end within 2 s, a new
  session succeeds within 5 s;
- batch: 20 jobs as Ray tasks on 2 workers; a worker killed mid-job; every job finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_server  # noqa: E402 - also puts tests/ on sys.path
from bench_server import bench_live_concurrency, first_frame, machine, pct  # noqa: E402
from support.ray_cluster import batch_task_pids, ray_serve  # noqa: E402
from support.server_process import ServerProcess  # noqa: E402

from facecast.media import fmp4  # noqa: E402

FPS = bench_server.FPS
SESSIONS_PER_REPLICA = 12  # the replicas' limit; also FACECAST_MAX_SESSIONS of plain serve
GRACE_S = 60.0  # s a session lives without readers: the routing sessions must outlive gaps in reading
REAL_TIME = 0.95  # min speed (media s per wall s) for a level of live sessions to count as real time
SAY = " ".join(bench_server.TEXTS * 4)


def home(sid: str) -> str:
    return sid.split(".", 1)[0]


# -- overhead: time to first frame and sustained live sessions ----------------------------------

def ttff(urls: dict[str, str], n: int) -> dict:
    """Time to first frame of text sessions, the servers taken in turn (drifting load hits both)."""
    clients = {name: httpx.Client(base_url=url, timeout=60) for name, url in urls.items()}
    times: dict[str, list[float]] = {name: [] for name in urls}
    try:
        for name, client in clients.items():
            first_frame(client, data={"text": bench_server.TEXTS[0]})  # untimed: connection and first use
        for i in range(n):
            for name, client in clients.items():
                ms, sid = first_frame(client, data={"text": bench_server.TEXTS[i % len(bench_server.TEXTS)]})
                times[name].append(ms)
                client.delete(f"/sessions/{sid}")
    finally:
        for client in clients.values():
            client.close()
    return {name: {"n": n, "p50": pct(t, 50), "p95": pct(t, 95), "max": max(t)} for name, t in times.items()}


def sustained(servers: dict, levels: list[int], seconds: float) -> dict:
    """Live sessions each fed text and read, per level, the servers in turn: min speed; the most
    sessions that stayed real time."""
    rows: dict[str, list[dict]] = {name: [] for name in servers}
    for k in levels:
        for name, server in servers.items():
            with httpx.Client(base_url=server.url, timeout=60) as client:
                rows[name].append(bench_live_concurrency(server, client, k, seconds))
            print(f"  {name}: {k} live sessions, min speed {rows[name][-1]['min_speed']:.3f}", file=sys.stderr,
                  flush=True)
            time.sleep(2.0)
    return {name: {"levels": r, "real_time_sessions": max([x["sessions"] for x in r if x["min_speed"] >= REAL_TIME],
                                                          default=0)} for name, r in rows.items()}


# -- routing -----------------------------------------------------------------------------------

KINDS = ("stream", "state", "audio", "interrupt", "say")


def routing(url: str, sessions: int, requests: int) -> dict:
    from websockets.sync.client import connect

    pcm = (np.sin(np.arange(1600) / 5) * 8000).astype("<i2").tobytes()  # 0.1 s at 16 kHz
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = []
        for _ in range(sessions):
            answer = client.post("/sessions", data={"live": "true"})
            answer.raise_for_status()
            ids.append(answer.json()["id"])

        def one(i: int) -> tuple[str, str | None]:
            """(kind, what was wrong or None)."""
            sid, kind = ids[i % sessions], KINDS[(i // sessions) % len(KINDS)]
            try:
                if kind == "audio":
                    ws_url = url.replace("http", "ws") + f"/ws/sessions/{sid}/audio?sample_rate=16000"
                    with connect(ws_url, open_timeout=60) as ws:
                        ready = json.loads(ws.recv(timeout=60))
                        if ready.get("session") != sid:
                            return kind, f"ready={ready}"
                        ws.send(pcm)
                        ws.send(json.dumps({"type": "end"}))
                        ended = json.loads(ws.recv(timeout=60))
                        return kind, None if ended.get("type") == "ended" else f"end={ended}"
                if kind == "stream":
                    with client.stream("GET", f"/stream/{sid}") as response:
                        head = next(response.iter_bytes())
                        answer, ok = response, head[4:8] == b"ftyp"
                elif kind == "state":
                    answer = client.get(f"/sessions/{sid}")
                    ok = answer.status_code == 200 and answer.json()["id"] == sid
                elif kind == "interrupt":
                    answer = client.post(f"/sessions/{sid}/interrupt")
                    ok = answer.status_code == 200
                else:
                    answer = client.post(f"/sessions/{sid}/say", data={"text": "Hi there."})
                    ok = answer.status_code == 200
                replica = answer.headers.get("x-facecast-replica")
                if replica != home(sid) or not ok:
                    return kind, f"{answer.status_code} from {replica}"
                return kind, None
            except Exception as exc:  # noqa: BLE001 - a failed request counts as wrong
                return kind, f"{type(exc).__name__}: {exc}"

        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(requests)))
        took = time.perf_counter() - start
        for sid in ids:
            client.delete(f"/sessions/{sid}")
    wrong = [(k, why) for k, why in results if why is not None]
    return {"sessions": sessions, "spread": dict(Counter(home(s) for s in ids)), "requests": requests,
            "by_kind": dict(Counter(k for k, _ in results)), "wrong": len(wrong), "wrong_examples": wrong[:5],
            "seconds": took}


# -- failure -----------------------------------------------------------------------------------

class FrameReader(threading.Thread):
    """Reads a session's fMP4 stream: video frames received, frames missing between fragments, and
    when and how the stream ended."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.frames, self.missing, self.ended_at, self.error = url, 0, 0, None, None
        self.stop = threading.Event()

    def run(self) -> None:
        reader, next_start = fmp4.BoxReader(), None
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(30, read=30)) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    for kind, box in reader.feed(chunk):
                        run = fmp4.read_moof(box).get(fmp4.VIDEO_TRACK_ID) if kind == b"moof" else None
                        if run is None:
                            continue
                        if next_start is not None and run.start != next_start:
                            self.missing += round((run.start - next_start) / (sum(run.durations) / len(run.durations)))
                        next_start = run.start + sum(run.durations)
                        self.frames += len(run.durations)
                    if self.stop.is_set():
                        return
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self.ended_at = time.monotonic()


def failure(cluster) -> dict:
    with httpx.Client(base_url=cluster.url, timeout=60) as client:
        by_home: dict[str, list[str]] = {}
        for _ in range(40):  # 2 sessions on each replica (new ones go to the one with fewest)
            if len(by_home) == 2 and min(len(v) for v in by_home.values()) == 2:
                break
            sid = client.post("/sessions", data={"live": "true"}).json()["id"]
            if len(by_home.get(home(sid), [])) >= 2:
                client.delete(f"/sessions/{sid}")
            else:
                by_home.setdefault(home(sid), []).append(sid)
        sessions = [s for v in by_home.values() for s in v]
        readers = {sid: FrameReader(f"{cluster.url}/stream/{sid}") for sid in sessions}
        for reader in readers.values():
            reader.start()
        loading = threading.Event()

        def load() -> None:  # speech into every session, over and over
            while not loading.is_set():
                for sid in sessions:
                    try:
                        client.post(f"/sessions/{sid}/say", data={"text": SAY}, timeout=10)
                    except httpx.HTTPError:
                        pass
                loading.wait(4.0)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(5.0)
        victim = home(sessions[0])
        cluster.kill_replica(victim)
        killed_at = time.monotonic()
        new_after = None
        while new_after is None and time.monotonic() - killed_at < 30:
            try:
                answer = httpx.post(cluster.url + "/sessions", data={"live": "true"}, timeout=5)
                if answer.status_code == 201 and home(answer.json()["id"]) != victim:
                    new_after = time.monotonic() - killed_at
                    client.delete(f"/sessions/{answer.json()['id']}")
            except httpx.HTTPError:
                time.sleep(0.1)
        theirs = [readers[s] for s in by_home[victim]]
        ours = [readers[s] for s in sessions if home(s) != victim]
        deadline = time.monotonic() + 10
        while any(r.ended_at is None for r in theirs) and time.monotonic() < deadline:
            time.sleep(0.05)
        before = [r.frames for r in ours]
        time.sleep(5.0)
        loading.set()
        gone = client.get(f"/sessions/{by_home[victim][0]}").status_code
        result = {
            "killed_clients_error_s": max((r.ended_at or float("inf")) - killed_at for r in theirs),
            "killed_clients_errors": [r.error for r in theirs],
            "new_session_s": new_after,
            "survivor_frames_missing": sum(r.missing for r in ours),
            "survivor_frames": [r.frames for r in ours],
            "survivors_kept_streaming": all(r.frames > b for r, b in zip(ours, before)) and all(
                r.ended_at is None for r in ours),
            "killed_session_then": gone,
        }
        for reader in ours:
            reader.stop.set()
        for sid in sessions:
            if home(sid) != victim:
                client.delete(f"/sessions/{sid}")
    cluster.wait_replicas(2)
    return result


# -- batch -------------------------------------------------------------------------------------

def batch(data_dir: Path, jobs_count: int) -> dict:
    """jobs_count Ray tasks, 2 at a time (2 CPUs each of the cluster's 4); one worker killed mid-job."""
    from facecast.batch.jobs import read_jobs
    from facecast.batch.run import run_ray
    from facecast.demo import demo_portrait

    folder = data_dir / "batch"
    folder.mkdir()
    shutil.copy(demo_portrait(), folder / "face.jpg")
    (folder / "jobs.csv").write_text("name,avatar,text,fps\n" + "".join(
        f"job{i:02d},face.jpg,Hello number {i}. This is a batch render.,15\n" for i in range(jobs_count)))
    jobs = read_jobs(folder / "jobs.csv")
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            pids = batch_task_pids()
            if pids:
                time.sleep(1.0)  # mid-job
                try:
                    os.kill(pids[0], 9)
                    killed.append(pids[0])
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    start = time.perf_counter()
    summary = run_ray(jobs, folder / "out", address=None, retries=3, cpus_per_job=2.0)
    took = time.perf_counter() - start
    killer.join()
    outputs = sorted(p.name for p in (folder / "out").iterdir())
    return {"jobs": jobs_count, "workers": 2, "done": len(summary.done), "failed": summary.failed,
            "workers_killed": len(killed), "outputs": len(outputs), "seconds": took}


# -- report ------------------------------------------------------------------------------------

def table(results: dict) -> str:
    plain, ray = results["plain"], results["ray"]
    added = ray["ttff"]["p95"] - plain["ttff"]["p95"]
    p_rt, r_rt = plain["sustained"]["real_time_sessions"], ray["sustained"]["real_time_sessions"]
    ratio = r_rt / p_rt if p_rt else float("nan")
    rt, fl, bt = results["routing"], results["failure"], results["batch"]
    rows = [
        ("time to first frame p50 / p95, plain serve", f"{plain['ttff']['p50']:.0f} / {plain['ttff']['p95']:.0f} ms", ""),
        ("time to first frame p50 / p95, Ray (1 replica)", f"{ray['ttff']['p50']:.0f} / {ray['ttff']['p95']:.0f} ms", ""),
        ("time to first frame p95 added by Ray", f"{added:+.0f} ms", "<= 30 ms"),
        ("real-time live sessions, plain serve", f"{p_rt} (levels {_levels(plain)})", ""),
        ("real-time live sessions, Ray (1 replica)", f"{r_rt} (levels {_levels(ray)})", ""),
        ("Ray / plain real-time sessions", f"{ratio:.0%}", ">= 90%"),
        ("Ray / plain min speed, level by level", ", ".join(
            f"{p['sessions']}: {r['min_speed'] / p['min_speed']:.0%}"
            for p, r in zip(plain["sustained"]["levels"], ray["sustained"]["levels"])), ""),
        (f"routing: wrong of {rt['requests']} over {rt['sessions']} sessions ({_spread(rt)})",
         f"{rt['wrong']} ({rt['seconds']:.0f} s)", "0"),
        ("kill 1 of 2 replicas: survivors' frames missing", f"{fl['survivor_frames_missing']}"
         f"{'' if fl['survivors_kept_streaming'] else ' (a survivor stopped!)'}", "0"),
        ("kill: killed replica's streams ended after", f"{fl['killed_clients_error_s']:.2f} s", "<= 2 s"),
        ("kill: a new session succeeded after", f"{fl['new_session_s']:.2f} s" if fl["new_session_s"] else "never",
         "<= 5 s"),
        (f"batch: {bt['jobs']} jobs on {bt['workers']} workers, {bt['workers_killed']} worker killed",
         f"{bt['done']} done, {len(bt['failed'])} failed ({bt['seconds']:.0f} s)", "all done"),
    ]
    lines = [f"Machine: {results['machine']}", "", "| measure | value | bar |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _levels(phase: dict) -> str:
    return ", ".join(f"{r['sessions']}: {r['min_speed']:.2f}x" for r in phase["sustained"]["levels"])


def _spread(rt: dict) -> str:
    return "/".join(str(v) for v in sorted(rt["spread"].values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttff", type=int, default=20, help="timed sessions per server")
    parser.add_argument("--levels", type=lambda s: [int(k) for k in s.split(",")], default=[2, 4, 6],
                        help="live sessions at once to try for real time")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per sustained level")
    parser.add_argument("--requests", type=int, default=1000, help="routed requests")
    parser.add_argument("--jobs", type=int, default=20, help="batch jobs")
    parser.add_argument("--json", type=Path, default=Path("/tmp/bench_ray.json"), help="where to write the results")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_ray.py needs root (a network namespace for Ray)", file=sys.stderr)
        return 2
    os.environ.pop("FACECAST_API_TOKEN", None)
    data_dir = Path(tempfile.mkdtemp(prefix="facecast-bench-ray-"))
    results: dict = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print("Ray: starting a local cluster, 1 replica", file=sys.stderr, flush=True)
    os.environ.setdefault("RAY_worker_niceness", "0")  # Ray runs workers at nice 15; plain serve runs at 0
    env = {"FACECAST_SERVER_DIR": str(data_dir / "plain"), "FACECAST_SESSION_GRACE_S": str(GRACE_S),
           "FACECAST_MAX_SESSIONS": str(SESSIONS_PER_REPLICA)}
    with ray_serve(data_dir / "ray", replicas=1, sessions=SESSIONS_PER_REPLICA, replica_cpus=1.0, warmup=True,
                   grace_s=GRACE_S) as cluster:
        with ServerProcess(env=env, log=data_dir / "plain.log") as plain:  # in the same namespace
            print("time to first frame, plain and Ray in turn", file=sys.stderr, flush=True)
            first = ttff({"plain": plain.url, "ray": cluster.url}, args.ttff)
            print("sustained live sessions, plain and Ray in turn", file=sys.stderr, flush=True)
            held = sustained({"plain": plain, "ray": cluster}, args.levels, args.seconds)
        results["plain"] = {"ttff": first["plain"], "sustained": held["plain"]}
        results["ray"] = {"ttff": first["ray"], "sustained": held["ray"]}
        print("Ray: 2 replicas; routing", file=sys.stderr, flush=True)
        cluster.deploy(dataclasses.replace(cluster.options, min_replicas=2, max_replicas=2))
        results["routing"] = routing(cluster.url, 20, args.requests)
        print("Ray: killing a replica under load", file=sys.stderr, flush=True)
        results["failure"] = failure(cluster)
        print("Ray: batch", file=sys.stderr, flush=True)
        from ray import serve

        serve.delete("facecast")  # the replicas' CPUs go to the batch workers
        results["batch"] = batch(data_dir, args.jobs)
    results["load_after"] = os.getloadavg()
    print(table(results))
    args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"\n(raw results: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
