"""`facecast serve --ray`: start (or join) a Ray cluster, deploy the API with Serve, wait for Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading

from facecast.server.ray.deployment import APP_NAME, ReplicaOptions, facecast_app
from facecast.server.settings import ServerSettings


def start(settings: ServerSettings, options: ReplicaOptions, address: str | None = None,
          num_cpus: int | None = None) -> str:
    """Connect to the cluster at `address` (None: start a local one), start Serve's HTTP proxy on
    settings.host:port and deploy; returns the URL once every replica is up."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        if address:
            ray.init(address=address, namespace=APP_NAME)
        else:
            # Ray starts its workers (here: the replicas) at nice 15, behind every ordinary process on
            # the machine; the embedded instance serves, so they run at the usual priority, as plain
            # serve does. `ray start` clusters: set RAY_worker_niceness=0 there the same way.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(namespace=APP_NAME, num_cpus=num_cpus, include_dashboard=False,
                     _node_ip_address=settings.host if settings.host not in ("0.0.0.0", "::") else None)
    serve.start(http_options={"host": settings.host, "port": settings.port}, logging_config={"log_level": "WARNING"})
    serve.run(facecast_app(settings, options), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings.host}:{settings.port}"


def stop() -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def run(settings: ServerSettings, options: ReplicaOptions, address: str | None) -> int:
    """Deploy, then block until SIGINT/SIGTERM; a local cluster is shut down with the command, a
    cluster given by address keeps running (`serve shutdown` removes the app from it)."""
    done = threading.Event()
    url = start(settings, options, address)
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs its own SIGTERM handler (exit 15)
        signal.signal(sig, lambda *_: done.set())
    print(f"facecast: serving on {url} through Ray Serve ({options.min_replicas}..{options.max_replicas} replicas, "
          f"{options.sessions} sessions each)", flush=True)
    done.wait()
    if address:
        from ray import serve

        serve.delete(APP_NAME)
        import ray

        ray.shutdown()
    else:
        stop()
    return 0
