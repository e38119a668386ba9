"""The Ray Serve deployment: each replica is one facecast server (create_app) behind Serve's proxy.

Facts of ray 2.60 this relies on (read in its source, ray/serve/):
- `@serve.ingress()` without an app calls the class's `__serve_build_asgi_app__` after __init__,
  then runs the app's lifespan (startup: models, default avatar, warm-up; shutdown on stop).
- HTTP and WebSocket requests reach a replica through the proxy; a streaming response and an open
  WebSocket each count as one ongoing request for their whole life (max_ongoing_requests).
- Stopping a replica (controller: DeploymentReplica.stop -> replica.perform_graceful_shutdown):
  it leaves the routers' set at once (serve.status() shows it STOPPING), waits, checking every
  graceful_shutdown_wait_loop_s, until its ongoing requests (open streams and WebSockets) end, then
  runs `__del__` (for an ingress: the app's lifespan shutdown, where Runtime.close waits for the
  remaining sessions, drain_s); the controller kills it graceful_shutdown_timeout_s after the stop
  whatever it is doing. check_health cannot delay a stop; a long `__del__` can, within that budget.
- Which replica a downscale stops (deployment_scheduler._get_replicas_to_stop): not-yet-running
  ones first, then off the head node, on the nodes with fewest replicas, newest first; never by
  load. A redeploy whose code version differs replaces every replica (a rolling update), and
  `serve.run` makes a random code version each call unless the deployment has one: so the
  deployment's version is a hash of facecast's version and the settings (set through
  `Deployment.options(version=..., _internal=True)`, the public `version` argument being removed),
  and a redeploy that changes only the number of replicas is a scale-down, not a replacement.
- `serve.run(..., blocking=False)` still waits until the application is RUNNING, which it is not
  while a replica is STOPPING: a redeploy that scales down returns only after the drain.
- A method `record_autoscaling_stats()` returning {name: value} feeds custom metrics to an
  autoscaling policy (`autoscaling_config.policy.policy_function`), here active sessions.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

from ray import serve
from ray.serve.config import AutoscalingConfig, AutoscalingPolicy, RequestRouterConfig

from facecast.errors import InvalidArgument
from facecast.server.ray.router import SessionRouter
from facecast.server.settings import ServerSettings

APP_NAME = "facecast"
REQUESTS_PER_SESSION = 3  # ongoing requests one session may hold: its stream, a reconnect, its live-audio socket
SPARE_REQUESTS = 16  # beyond them: uploads, /say, /stats, renders, health checks
METRIC = "sessions"  # the custom autoscaling metric
REPLICA_HEADER = b"x-facecast-replica"  # names the replica that answered an HTTP request


@dataclass(frozen=True)
class ReplicaOptions:
    """How many replicas, and what each one gets.

    sessions: sessions one replica holds at most (its FACECAST_MAX_SESSIONS); min/max_replicas:
    autoscaling bounds (equal: a fixed number); target_sessions: active sessions per replica the
    autoscaler aims at; num_cpus / num_gpus: Ray resources one replica reserves (a fraction of a GPU
    shares it); drain_s: how long a replica being stopped waits for its sessions to end;
    upscale/downscale_delay_s: how long the autoscaler must want more / fewer replicas before it acts.
    """

    sessions: int = 6
    min_replicas: int = 1
    max_replicas: int = 1
    target_sessions: float | None = None  # default: 3/4 of `sessions`
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    drain_s: float = 300.0
    upscale_delay_s: float = 5.0  # autoscaling: how long more replicas must be wanted before Serve adds them
    downscale_delay_s: float = 60.0  # ... and fewer before it stops (drains) one

    def validate(self) -> None:
        if self.sessions < 1:
            raise InvalidArgument(f"sessions per replica={self.sessions!r} must be at least 1")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise InvalidArgument(f"replicas {self.min_replicas!r}..{self.max_replicas!r}: need 0 <= min <= max, "
                                  "max at least 1")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise InvalidArgument(f"num_cpus={self.num_cpus!r} and num_gpus={self.num_gpus!r} must not be negative")
        if self.target_sessions is not None and not self.target_sessions > 0:
            raise InvalidArgument(f"target_sessions={self.target_sessions!r} must be positive")
        if self.drain_s < 0:
            raise InvalidArgument(f"drain_s={self.drain_s!r} must not be negative")
        if not (self.upscale_delay_s >= 0 and self.downscale_delay_s >= 0):
            raise InvalidArgument(f"upscale_delay_s={self.upscale_delay_s!r} and downscale_delay_s="
                                  f"{self.downscale_delay_s!r} must not be negative (seconds)")

    @property
    def max_ongoing_requests(self) -> int:
        return self.sessions * REQUESTS_PER_SESSION + SPARE_REQUESTS

    def target(self) -> float:
        return self.target_sessions or max(1.0, 0.75 * self.sessions)


def sessions_policy(ctx) -> tuple[int, dict]:
    """Autoscaling on active sessions: enough replicas that each holds about `target` of them
    (target_ongoing_requests carries it), within the configured bounds."""
    per = float(ctx.config.target_ongoing_requests or 1.0)
    metrics = ctx.aggregated_metrics or {}
    sessions = sum(metrics.get(METRIC, {}).values())
    wanted = math.ceil(sessions / per) if sessions else 0
    low, high = ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas
    return max(low, min(high, wanted)), {}


@serve.ingress()
class FacecastReplica:
    """One facecast server; its sessions' ids name it (affinity.py)."""

    def __init__(self, settings: ServerSettings, drain_s: float):
        from facecast.server.app import create_app
        from facecast.server.ray.stats import ClusterStats
        from facecast.server.routes.system import local_stats

        self.home = serve.get_replica_context().replica_id.unique_id
        self.facecast = create_app(settings, home=self.home)  # not `app`: Serve's wrapper has that property
        self.facecast.add_middleware(ReplicaHeader, replica=self.home)
        self.runtime = self.facecast.state.runtime
        self.runtime.drain_s = drain_s
        self.runtime.cluster = ClusterStats(self.home, lambda: local_stats(self.runtime))
        self.runtime.cluster.start()

    def __serve_build_asgi_app__(self):
        return self.facecast

    def record_autoscaling_stats(self) -> dict:
        return {METRIC: float(self.runtime.sessions.active())}

    def check_health(self) -> None:
        """Serve restarts a replica whose health check raises."""

    async def __del__(self):
        if hasattr(self, "runtime"):  # not when __init__ failed
            await self.runtime.cluster.stop()


class ReplicaHeader:
    """ASGI middleware: every HTTP response says which replica answered it (x-facecast-replica),
    so clients, tests and benchmarks can check that a session's requests reached its replica."""

    def __init__(self, app, replica: str):
        self.app, self.replica = app, replica.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (REPLICA_HEADER, self.replica)]}
            await send(message)

        return await self.app(scope, receive, tagged)


def code_version(settings: ServerSettings, drain_s: float) -> str:
    """The deployment's version: equal for equal facecast versions and settings, so a redeploy that
    changes only the number of replicas scales (and drains) instead of replacing every replica."""
    from facecast import __version__

    return hashlib.sha256(f"{__version__}|{settings!r}|{drain_s!r}".encode()).hexdigest()[:16]


def facecast_app(settings: ServerSettings, options: ReplicaOptions):
    """The bound Serve application: FacecastReplica with its options."""
    options.validate()
    settings = settings.replace(max_sessions=options.sessions)
    config: dict = {}
    if options.max_replicas > options.min_replicas:
        config["autoscaling_config"] = AutoscalingConfig(
            min_replicas=options.min_replicas, max_replicas=options.max_replicas,
            initial_replicas=max(1, options.min_replicas), target_ongoing_requests=options.target(),
            upscale_delay_s=options.upscale_delay_s, downscale_delay_s=options.downscale_delay_s,
            policy=AutoscalingPolicy(policy_function=sessions_policy))
    else:
        config["num_replicas"] = options.max_replicas
    env = {k: v for k, v in os.environ.items() if k.startswith("FACECAST_")}
    deployment = serve.deployment(
        FacecastReplica, name="facecast",
        max_ongoing_requests=options.max_ongoing_requests, max_queued_requests=-1,
        graceful_shutdown_timeout_s=options.drain_s + 10.0, graceful_shutdown_wait_loop_s=0.5,
        health_check_period_s=5.0, health_check_timeout_s=30.0,
        request_router_config=RequestRouterConfig(request_router_class=SessionRouter),
        ray_actor_options={"num_cpus": options.num_cpus, "num_gpus": options.num_gpus,
                           "runtime_env": {"env_vars": env}},
        **config)
    # `version` is refused by the public API since Serve versions deployments itself (a random one per
    # serve.run); Deployment.options(_internal=True) still takes it, as Serve's own decorator does.
    deployment = deployment.options(version=code_version(settings, options.drain_s), _internal=True)
    return deployment.bind(settings, options.drain_s)


def build_app(args: dict):
    """Serve's application builder, for `serve run`, a Serve config file and KubeRay's RayService:

        serve run facecast.server.ray.deployment:build_app replicas=1:4 max_sessions=6
        # config file / RayService: import_path: facecast.server.ray.deployment:build_app
        #                           args: {replicas: "1:4", backend: classic, replica_cpus: 2}

    `args` holds the `facecast serve --ray` options by name (ARGS; values as strings or numbers);
    the server's settings come from FACECAST_* in the environment, then these args. Unknown or bad
    args raise InvalidArgument naming them."""
    from facecast.server.ray.options import options_from_args

    settings, options = options_from_args(args)
    return facecast_app(settings, options)
