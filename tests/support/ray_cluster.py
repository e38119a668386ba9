"""A local Ray cluster with facecast deployed on Ray Serve, inside a loopback-only network namespace.

Ray binds the machine's non-loopback address even when told 127.0.0.1 and probes a public address
for its own IP; inside a namespace that holds only `lo` neither can happen and nothing leaves the
machine. Ray's start-up takes seconds, so a test run shares one cluster (a package- or
session-scoped fixture) and every test deploys onto it.

    with ray_serve(data_dir, replicas=2) as cluster:     # the calling thread is in the namespace
        httpx.get(cluster.url + "/health")
        cluster.replica_pids()                          # {replica id: pid}

    batch_task_pids()                                   # Ray workers running a `facecast batch --ray` job now

    with facecast_command(["serve", "--ray", ...], env) as (proc, lines):   # its output, line by line
        ...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx

from support.netns import loopback_namespace
from support.server_process import free_port

READY_TIMEOUT_S = 240.0  # s for Ray, Serve and every replica's start (imports, default avatar) on 2 busy cores
CLUSTER_CPUS = 4  # logical CPUs Ray may hand out: two replicas, the batch tasks' workers and spare


@dataclass
class RayServe:
    """The running cluster: where Serve listens and what is deployed."""

    url: str
    port: int
    data_dir: Path
    options: object = None
    settings: object = None
    extra: dict = field(default_factory=dict)

    def replicas(self) -> dict[str, int]:
        """{replica unique id: pid} of the replicas that reported in the last 3 s (facecast's stats
        board: Ray's state API needs the dashboard, which this cluster does not start)."""
        import ray

        from facecast.server.ray.stats import board_handle

        board = board_handle()
        return {r["replica"]: r["pid"] for r in ray.get(board.fresh.remote())}

    def kill_replica(self, replica: str) -> int:
        """SIGKILL one replica's process (a crash, not a graceful stop); returns its pid."""
        pid = self.replicas()[replica]
        os.kill(pid, signal.SIGKILL)
        return pid

    def deploy(self, options=None, settings=None, timeout: float = READY_TIMEOUT_S,
               wait: bool = True) -> threading.Thread | None:
        """(Re)deploy facecast with these options and wait until every replica is up.

        wait=False: deploy from a thread (returned) and return at once. serve.run waits until the
        application is RUNNING, which it is not while a replica drains (STOPPING), so a scale-down
        must not be awaited by a test that watches the drain."""
        from ray import serve

        from facecast.server.ray.deployment import APP_NAME, facecast_app

        self.options = options or self.options
        self.settings = settings or self.settings
        app = facecast_app(self.settings, self.options)
        if not wait:  # a thread started here shares this thread's network namespace
            thread = threading.Thread(target=serve.run, args=(app,), daemon=True,
                                      kwargs={"name": APP_NAME, "route_prefix": "/", "blocking": False})
            thread.start()
            return thread
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        self.wait_replicas(self.options.min_replicas, timeout)
        return None

    def replica_states(self) -> dict[str, int]:
        """serve.status()'s replica counts by state, e.g. {"RUNNING": 1, "STOPPING": 1}."""
        from ray import serve

        status = serve.status().applications.get("facecast")
        return dict(status.deployments["facecast"].replica_states) if status is not None else {}

    def wait_replicas(self, count: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until `count` replicas run and the app answers /health through the proxy."""
        from ray import serve

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = serve.status().applications.get("facecast")
            if status is not None and status.status == "RUNNING":
                dep = status.deployments["facecast"]
                running = dep.replica_states.get("RUNNING", 0)
                if running == count and sum(dep.replica_states.values()) == count and self._healthy() \
                        and self._reported(count):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"facecast did not reach {count} running replicas in {timeout:g} s: {serve.status()}")

    def _reported(self, count: int) -> bool:
        """Whether `count` replicas have reported to the stats board lately (tests find replicas there)."""
        try:
            return len(self.replicas()) == count
        except ValueError:  # no board yet
            return False

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2.0).json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False


@contextmanager
def ray_serve(data_dir: Path, *, replicas: int = 2, sessions: int = 4, replica_cpus: float = 0.5,
              warmup: bool = False, grace_s: float = 15.0) -> Iterator[RayServe]:
    """A loopback-only namespace, a local Ray instance in it, Serve on a free port and facecast
    deployed with `replicas` replicas; all torn down on exit."""
    import ray
    from ray import serve

    from facecast.server.ray.deployment import APP_NAME, ReplicaOptions
    from facecast.server.settings import ServerSettings

    with loopback_namespace():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        # replicas report their autoscaling metric (active sessions) every second, not every 10 s,
        # so the autoscaling test sees a change within seconds (read by the workers Ray starts)
        os.environ.setdefault("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "1")
        port = free_port()
        ray.init(num_cpus=CLUSTER_CPUS, include_dashboard=False, namespace=APP_NAME, _node_ip_address="127.0.0.1",
                 log_to_driver=False)
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
            cluster = RayServe(url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir)
            settings = ServerSettings(data_dir=data_dir, warmup=warmup, session_grace_s=grace_s)
            cluster.deploy(ReplicaOptions(sessions=sessions, min_replicas=replicas, max_replicas=replicas,
                                          num_cpus=replica_cpus, drain_s=30.0), settings)
            yield cluster
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()


def batch_task_pids() -> list[int]:
    """Pids of the Ray workers running a batch job now (facecast.batch.run's task: Ray titles its
    process `ray::_attempt`), e.g. to kill one mid-job."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_attempt"):
                    pids.append(int(entry.name))
            except OSError:
                pass  # exited meanwhile
    return pids


@contextmanager
def facecast_command(args: list[str], env: dict) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """`facecast ARGS` (this environment's script) in a child process with environment `env`:
    yields the process and a list that a thread fills with its output lines (stdout and stderr,
    Ray's logs too). At exit it is killed if it still runs and its output read to the end."""
    command = [str(Path(sys.executable).parent / "facecast"), *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reading = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reading.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reading.join(timeout=30)  # EOF once the command (and anything holding its stdout) has exited
        proc.stdout.close()
