"""`facecast serve --ray` without `--ray-address`: the command starts its own local Ray instance
(the issue's "one command, one machine"), serves through the Serve proxy, and on SIGTERM exits 0
and takes that instance with it.

The command runs as a child process inside a loopback-only network namespace (support.netns), so
its Ray instance can bind and probe nothing but 127.0.0.1, and the namespace tells this instance's
processes apart from any other Ray on the machine. It is its own module, and sorts before
test_ray_serve.py, because it cannot share that module's cluster (it starts its own): pytest
tears a module-scoped cluster down before the next module, so the two never run at once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray.serve")
if os.geteuid() != 0:
    pytest.skip("Ray runs in a private network namespace, which needs root", allow_module_level=True)

from support.netns import loopback_namespace  # noqa: E402
from support.ray_cluster import facecast_command  # noqa: E402
from support.server_process import free_port  # noqa: E402

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 300.0  # Ray, Serve and one replica (imports, default avatar) on 2 busy cores
STOP_TIMEOUT_S = 120.0  # serve.shutdown + ray.shutdown


def eventually(seconds: float, condition, every: float = 0.5) -> bool:
    """Poll `condition()` every `every` s until it holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def pids_in(ns, *, besides: set[int]) -> dict[int, str]:
    """{pid: command line} of the processes in namespace `ns`, other than `besides`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in besides:
            continue
        try:  # a process outside this container's reach (pid 1 here) raises, like one that exited
            if os.stat(entry / "ns" / "net").st_ino == ns.inode:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            pass
    return found


def test_serve_ray_starts_its_own_ray_instance_serves_and_takes_it_down(tmp_path):
    with loopback_namespace() as ns:  # this thread and the command (its child) live in it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "FACECAST_SERVER_DIR": str(tmp_path), "FACECAST_SESSION_GRACE_S": "5",
               "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
        args = ["serve", "--ray", "--port", str(port), "--replicas", "1", "--replica-cpus", "0.5", "--max-sessions", "2",
                "--drain", "5", "--no-warmup"]
        mine = {os.getpid(), ns.holder_pid}
        with facecast_command(args, env) as (proc, lines):
            assert ns.contains(proc.pid)
            assert eventually(START_TIMEOUT_S, lambda: proc.poll() is not None or any(
                "gcs_server" in c for c in pids_in(ns, besides=mine).values())), "".join(lines)
            assert proc.poll() is None, "".join(lines)  # it started a Ray instance of its own, here

            def healthy() -> bool:
                try:
                    return httpx.get(url + "/health", timeout=5).json().get("status") == "ok"
                except (httpx.HTTPError, ValueError):
                    return proc.poll() is not None  # stop waiting: it died

            assert eventually(START_TIMEOUT_S, healthy), "".join(lines)
            assert proc.poll() is None, "".join(lines)
            assert any(x.startswith(f"facecast: serving on {url} through Ray Serve") for x in lines) or \
                eventually(30, lambda: any(x.startswith("facecast: serving on") for x in lines)), "".join(lines)
            answer = httpx.post(url + "/sessions", data={"live": "true"}, timeout=60)
            assert answer.status_code == 201, answer.text
            sid = answer.json()["id"]
            with httpx.stream("GET", f"{url}/stream/{sid}", timeout=60) as response:
                assert response.status_code == 200
                assert response.headers["x-facecast-replica"] == sid.split(".", 1)[0]  # through Serve
                head = b""
                for chunk in response.iter_bytes():
                    head += chunk
                    if len(head) >= 8:
                        break
                assert head[4:8] == b"ftyp"
            ray_processes = pids_in(ns, besides=mine)
            assert any("raylet" in c for c in ray_processes.values()), ray_processes
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, "".join(lines)
        # the instance it started is gone: no raylet, gcs_server, worker or replica is left in the namespace
        assert eventually(60, lambda: not pids_in(ns, besides=mine)), pids_in(ns, besides=mine)
