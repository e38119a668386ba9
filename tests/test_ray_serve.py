"""`facecast serve --ray` and `facecast batch --ray-address` on a real local Ray cluster (2 replicas),
inside a loopback-only network namespace (support.netns), one cluster for the whole module.

Order matters only at the end: the failure test kills a replica (Serve starts a new one), and the
draining test scales down last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("ray.serve")
if os.geteuid() != 0:
    pytest.skip("Ray runs in a private network namespace, which needs root", allow_module_level=True)

from support.ray_cluster import batch_task_pids, facecast_command, ray_serve  # noqa: E402
from support.waiting import within  # noqa: E402

pytestmark = pytest.mark.slow
websockets = pytest.importorskip("websockets.sync.client")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ray_serve(tmp_path_factory.mktemp("ray-serve")) as running:
        yield running


def new_session(cluster, **fields) -> str:
    answer = httpx.post(cluster.url + "/sessions", data={"live": "true", **fields}, timeout=60)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def one_per_replica(cluster, readers: list | None = None, **fields) -> list[str]:
    """A session on each replica: new sessions go to the replica with the fewest, as reported about a
    second ago, so right after other sessions ended the first two may share one; extras are deleted.
    readers: a list to put a started StreamReader of each kept session in at once, so that none is
    reaped (no reader for the grace period) while the others are made on a slow machine."""
    kept: dict[str, str] = {}

    def another() -> bool:
        sid = new_session(cluster, **fields)
        if home(sid) in kept:
            httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)
        else:
            kept[home(sid)] = sid
            if readers is not None:
                readers.append(StreamReader(f"{cluster.url}/stream/{sid}"))
                readers[-1].start()
        return len(kept) == 2

    # a replica Serve just started reaches the proxy's router within seconds
    assert within(60, another), f"new sessions all went to {list(kept)}"
    return list(kept.values())


def home(session_id: str) -> str:
    return session_id.split(".", 1)[0]


class StreamReader(threading.Thread):
    """Reads GET /stream/{id} in the background: bytes received, and how it ended."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.received, self.ended, self.error, self.ended_at = url, 0, False, None, None
        self.stop = threading.Event()

    def run(self):
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(30, read=30)) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    self.received += len(chunk)
                    if self.stop.is_set():
                        return
        except httpx.HTTPError as exc:
            self.error = exc
        self.ended, self.ended_at = True, time.monotonic()


def test_new_sessions_spread_and_every_request_reaches_its_replica(cluster):
    replicas = cluster.replicas()
    assert len(replicas) == 2
    sessions = [new_session(cluster) for _ in range(4)]
    homes = [home(s) for s in sessions]
    assert set(homes) == set(replicas) and max(homes.count(h) for h in set(homes)) == 2, homes
    readers = [StreamReader(f"{cluster.url}/stream/{sid}") for sid in sessions]  # read: not reaped meanwhile
    for reader in readers:
        reader.start()
    wrong = []
    for i in range(40):  # session requests: state, interrupt, say
        sid = sessions[i % len(sessions)]
        answers = [httpx.get(f"{cluster.url}/sessions/{sid}", timeout=30),
                   httpx.post(f"{cluster.url}/sessions/{sid}/interrupt", timeout=30)]
        if i % 10 == 0:
            answers.append(httpx.post(f"{cluster.url}/sessions/{sid}/say", data={"text": "Hi."}, timeout=60))
        wrong += [(a.request.url.path, a.status_code) for a in answers if a.status_code != 200]
    assert wrong == []
    assert all(r.received > 0 and not r.ended for r in readers)
    for reader in readers:
        reader.stop.set()
    for sid in sessions:
        with httpx.stream("GET", f"{cluster.url}/stream/{sid}", timeout=30) as response:
            assert response.status_code == 200
            assert next(response.iter_bytes())[4:8] == b"ftyp"
        assert httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30).status_code == 200


def test_live_audio_websocket_through_the_proxy(cluster):
    sessions = one_per_replica(cluster)  # both replicas are reached by the path alone
    pcm = (np.sin(np.arange(3200) / 5) * 8000).astype("<i2").tobytes()
    for sid in sessions:
        url = cluster.url.replace("http", "ws") + f"/ws/sessions/{sid}/audio?sample_rate=16000"
        with websockets.connect(url, open_timeout=30) as ws:
            assert json.loads(ws.recv(timeout=30)) == {"type": "ready", "session": sid, "sample_rate": 16000}
            ws.send(pcm)
            ws.send(json.dumps({"type": "end"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ended"
            ws.send(json.dumps({"type": "interrupt"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "interrupted"
        httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)


def test_bad_input_gets_the_same_answers_as_plain_serve(cluster):
    from fastapi.testclient import TestClient

    from facecast.server.app import create_app

    cases = [("post", "/sessions", {"data": {"sample_rate": "5"}}),
             ("post", "/sessions", {"data": {"live": "false"}}),
             ("post", "/sessions", {"data": {"text": "   "}}),
             ("get", "/sessions/nosuchsession", {}),
             ("post", "/avatars", {"files": {"file": ("a.jpg", b"not an image", "image/jpeg")}}),
             ("post", "/generate", {"data": {}}),
             ("get", "/avatars/nosuchavatar", {}),
             ("get", "/no/such/route", {})]
    settings = cluster.settings.replace(data_dir=cluster.data_dir / "plain")
    with TestClient(create_app(settings)) as plain:
        for method, path, kwargs in cases:
            here = getattr(plain, method)(path, **kwargs)
            there = getattr(httpx, method)(cluster.url + path, timeout=60, **kwargs)
            assert 400 <= here.status_code < 500, (path, here.text)
            assert (there.status_code, there.json()) == (here.status_code, here.json()), (method, path, kwargs)
    ws_url = cluster.url.replace("http", "ws") + "/ws/sessions/nosuchsession/audio"
    with websockets.connect(ws_url, open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "error"


def test_stats_add_up_every_replica(cluster):
    sessions = [new_session(cluster) for _ in range(2)]
    assert within(10, lambda: httpx.get(cluster.url + "/stats", timeout=30).json()["cluster"]["totals"]
                  ["active_sessions"] == 2)
    cluster_stats = httpx.get(cluster.url + "/stats", timeout=30).json()["cluster"]
    assert {r["replica"] for r in cluster_stats["replicas"]} == set(cluster.replicas())
    for sid in sessions:
        httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)


def test_an_avatar_uploaded_once_serves_on_every_replica(cluster):
    from facecast.demo import demo_portrait

    data = Path(demo_portrait()).read_bytes()
    answer = httpx.post(cluster.url + "/avatars", files={"file": ("me.jpg", data[:-2] + data[-2:], "image/jpeg")},
                        timeout=120)
    assert answer.status_code in (200, 201), answer.text
    avatar = answer.json()["id"]
    sessions = one_per_replica(cluster, avatar_id=avatar)
    for sid in sessions:
        assert httpx.get(f"{cluster.url}/sessions/{sid}", timeout=30).json()["avatar_id"] == avatar
        httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)


def test_a_dead_replica_takes_only_its_own_sessions(cluster):
    sessions = one_per_replica(cluster)
    readers = {sid: StreamReader(f"{cluster.url}/stream/{sid}") for sid in sessions}
    for reader in readers.values():
        reader.start()
    assert within(30, lambda: all(r.received > 0 for r in readers.values()))
    victim = home(sessions[0])
    cluster.kill_replica(victim)
    killed_at = time.monotonic()
    theirs = [r for sid, r in readers.items() if home(sid) == victim]
    ours = [r for sid, r in readers.items() if home(sid) != victim]
    assert within(10, lambda: all(r.ended for r in theirs))
    assert max(r.ended_at for r in theirs) - killed_at < 2.0
    before = {id(r): r.received for r in ours}
    new = new_session(cluster)  # goes to the healthy replica
    assert time.monotonic() - killed_at < 5.0 and home(new) != victim
    assert within(10, lambda: all(r.received > before[id(r)] for r in ours))
    assert not any(r.ended for r in ours)
    gone = httpx.get(f"{cluster.url}/sessions/{sessions[0]}", timeout=30)
    assert gone.status_code == 410 and "gone" in gone.json()["detail"]
    for reader in ours:
        reader.stop.set()
    for sid in [new, *(s for s in sessions if home(s) != victim)]:
        httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)
    cluster.wait_replicas(2)  # Serve replaced the dead one


def test_a_webrtc_offer_through_the_proxy_reaches_the_sessions_replica(cluster):
    """Signalling only: the answer comes from the session's replica (x-facecast-replica) and the
    peer it made is there (hang-up by peer id). No media: ICE needs a non-loopback interface (a
    veth pair, support.netns.webrtc_namespace), which this loopback-only namespace has none of; the
    media path is the plain server's (tests/test_netns_webrtc.py)."""
    pytest.importorskip("aiortc")
    readers: list = []  # the sessions must outlive the offers on a slow machine
    for sid in one_per_replica(cluster, readers):
        offer = asyncio.run(_recvonly_offer())
        answer = httpx.post(f"{cluster.url}/sessions/{sid}/webrtc", json={"sdp": offer, "type": "offer"}, timeout=60)
        assert answer.status_code == 201, answer.text
        assert answer.headers["x-facecast-replica"] == home(sid)
        body = answer.json()
        assert body["type"] == "answer" and "m=video" in body["sdp"] and "a=fingerprint" in body["sdp"]
        # Its replica answers the hang-up: 200, or 404 once the peer has closed itself (ICE fails at
        # once without candidates); another replica would answer 410 (not its session).
        hung_up = httpx.delete(cluster.url + body["location"], timeout=30)
        assert hung_up.status_code in (200, 404) and hung_up.headers["x-facecast-replica"] == home(sid), hung_up.text
    for reader in readers:
        reader.stop.set()
        httpx.delete(f"{reader.url.replace('/stream/', '/sessions/')}", timeout=30)


async def _recvonly_offer() -> str:
    """An aiortc offer receiving video and audio, as a viewer sends it (no ICE candidates here)."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


def test_scaling_down_drains_a_replica_with_sessions(cluster):
    """2 -> 1 replicas (same code version: a scale-down, not a replacement). The replica Serve stops
    keeps streaming to its reader and takes no new sessions; it stops only after its reader has left
    and its session has ended (the grace period later: Runtime._drain), the other is untouched."""
    import dataclasses

    sessions = one_per_replica(cluster)
    readers = {home(sid): StreamReader(f"{cluster.url}/stream/{sid}") for sid in sessions}
    for reader in readers.values():
        reader.start()
    assert within(30, lambda: all(r.received > 0 for r in readers.values()))
    deploying = cluster.deploy(dataclasses.replace(cluster.options, min_replicas=1, max_replicas=1), wait=False)
    assert within(60, lambda: states_are(cluster, {"RUNNING": 1, "STOPPING": 1})), cluster.replica_states()
    time.sleep(1.0)  # the proxy's router hears of the change from the controller (a long poll)
    fresh = [new_session(cluster) for _ in range(2)]  # new sessions: all on the replica that stays
    staying = {home(sid) for sid in fresh}
    assert len(staying) == 1, fresh
    stopping = next(h for h in readers if h not in staying)
    seen = readers[stopping].received
    assert within(10, lambda: readers[stopping].received > seen + 10_000)  # still streaming while it drains
    assert cluster.replica_states() == {"RUNNING": 1, "STOPPING": 1}
    readers[stopping].stop.set()  # its client leaves; its session ends after the grace period, then the replica
    left_at = time.monotonic()
    assert within(cluster.settings.session_grace_s + 30, lambda: states_are(cluster, {"RUNNING": 1}))
    drained_for = time.monotonic() - left_at
    assert drained_for > cluster.settings.session_grace_s - 2, drained_for  # it waited for the session
    assert readers[stopping].error is None  # its stream ended because its reader left, not by an error
    other = readers[next(iter(staying))]
    assert other.received > 0 and not other.ended and other.error is None
    deploying.join(timeout=30)
    assert not deploying.is_alive()  # serve.run returned once the application was RUNNING again
    assert set(cluster.replicas()) == staying
    other.stop.set()
    for sid in [*fresh, *(s for s in sessions if home(s) in staying)]:
        httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)


def test_the_serve_ray_command_deploys_onto_a_cluster_and_removes_itself(cluster):
    """`facecast serve --ray-address ADDR` (the command itself, in a child process): it deploys onto
    this cluster (replacing the app the tests deployed: its settings differ), serves through the
    proxy, and on SIGTERM deletes the app and leaves the cluster running."""
    import ray

    before = set(cluster.replicas())
    env = {**os.environ, "FACECAST_SERVER_DIR": str(cluster.data_dir), "FACECAST_SESSION_GRACE_S": "5"}
    args = ["serve", "--ray-address", ray.get_runtime_context().gcs_address, "--port", str(cluster.port),
            "--replicas", "1", "--replica-cpus", "0.5", "--max-sessions", "2", "--drain", "5", "--no-warmup"]
    serving = f"facecast: serving on {cluster.url} through Ray Serve"
    with facecast_command(args, env) as (proc, lines):  # the line comes once the replica runs (serve.run waits)
        assert within(240, lambda: any(x.startswith(serving) for x in lines) or proc.poll() is not None)
        assert any(x.startswith(serving) for x in lines), "".join(lines)
        sid = new_session(cluster)
        assert home(sid) not in before  # a replica of the command's deployment
        assert httpx.get(f"{cluster.url}/sessions/{sid}", timeout=30).headers["x-facecast-replica"] == home(sid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    from ray import serve

    assert "facecast" not in serve.status().applications
    assert ray.is_initialized()  # the cluster the command joined goes on


def test_an_app_from_the_builder_autoscales_on_active_sessions(cluster):
    """`build_app` (the `serve run` / config-file / KubeRay import path) deployed with Serve's args,
    autoscaling 1..2 replicas with a target of 1 session each and short delays: two live sessions
    bring a second replica, ending them takes it away. Runs after the command test deleted the app;
    leaves one replica deployed. Replicas report sessions every second here (ray_cluster.py)."""
    from ray import serve

    from facecast.server.ray.deployment import APP_NAME, build_app

    args = {"replicas": "1:2", "max_sessions": "4", "target_sessions": "1", "replica_cpus": "0.5", "drain": "10",
            "upscale_delay": "0", "downscale_delay": "2", "grace": "15", "warmup": "false",
            "data_dir": str(cluster.data_dir)}
    serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
    cluster.wait_replicas(1)
    readers = []
    sessions = [new_session(cluster) for _ in range(2)]  # both on the one replica
    try:
        for sid in sessions:  # read: not reaped while Serve decides
            readers.append(StreamReader(f"{cluster.url}/stream/{sid}"))
            readers[-1].start()
        assert within(180, lambda: states_are(cluster, {"RUNNING": 2})), cluster.replica_states()
        cluster.wait_replicas(2)  # the new one serves and reports
    finally:
        for reader in readers:
            reader.stop.set()
        for sid in sessions:
            httpx.delete(f"{cluster.url}/sessions/{sid}", timeout=30)
    cluster.wait_replicas(1, timeout=240)  # no sessions: back to the minimum


def states_are(cluster, expected: dict) -> bool:
    """serve.status() shows these replica counts (polled at most 4 times a second: it asks the controller)."""
    time.sleep(0.25)
    return cluster.replica_states() == expected


def test_batch_jobs_run_as_ray_tasks_and_a_killed_worker_is_retried(cluster, tmp_path):
    from facecast.batch.jobs import read_jobs
    from facecast.batch.run import run_ray
    from facecast.demo import demo_portrait

    import shutil

    shutil.copy(demo_portrait(), tmp_path / "face.jpg")
    (tmp_path / "jobs.csv").write_text("name,avatar,text,fps\n" + "".join(
        f"job{i},face.jpg,Hello number {i}.,10\n" for i in range(6)) + "bad,jobs.csv,Hi.,10\n")
    jobs = read_jobs(tmp_path / "jobs.csv")
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker():
        def running():
            found = batch_task_pids()
            if found:
                killed.append(found[0])
                os.kill(found[0], 9)
            return bool(found)
        within(60, running)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    summary = run_ray(jobs, out, address=None, retries=3, cpus_per_job=0.5)
    killer.join()
    assert killed, "no batch task was seen running"
    assert sorted(summary.done) == [f"job{i}" for i in range(6)] and list(summary.failed) == ["bad"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"job{i}.mp4" for i in range(6))
    again = run_ray(jobs, out, address=None, retries=0)
    assert sorted(again.skipped) == sorted(f"job{i}" for i in range(6)) and again.done == []
