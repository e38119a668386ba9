"""The command line's Ray options -> ReplicaOptions (kept apart so `serve --help` needs no Ray)."""

from __future__ import annotations

import os
from pathlib import Path

from facecast.deps import require
from facecast.errors import InvalidArgument

DEFAULT_SESSIONS = 6  # sessions per CPU replica when --max-sessions is not given (2 cores hold 6-8)
UPSCALE_DELAY_S = 5.0  # default autoscaling delays (FACECAST_RAY_UPSCALE_DELAY_S / _DOWNSCALE_DELAY_S)
DOWNSCALE_DELAY_S = 60.0

# The args Serve's application builder (deployment.build_app) takes: name -> meaning.
ARGS = {
    "replicas": "a number, or autoscaling bounds MIN:MAX (default 1)",
    "max_sessions": "sessions one replica holds (default 6)",
    "target_sessions": "autoscaling: active sessions per replica aimed at (default 3/4 of max_sessions)",
    "replica_cpus": "CPUs one replica reserves (default 1)",
    "replica_gpus": "GPUs one replica reserves, e.g. 0.25 (default 0)",
    "drain": "seconds a replica being stopped waits for its sessions (default 300)",
    "upscale_delay": "seconds more replicas must be wanted before one is added (default 5)",
    "downscale_delay": "seconds fewer replicas must be wanted before one is stopped (default 60)",
    "backend": "lip-sync backend: classic or musetalk",
    "grace": "seconds a session lives without readers",
    "data_dir": "uploaded sources and the avatar index (shared by every node)",
    "warmup": "true/false: warm up each replica at start (default true)",
}


def parse_replicas(text: str) -> tuple[int, int]:
    """'2' -> (2, 2); '1:4' -> (1, 4)."""
    try:
        low, _, high = text.partition(":")
        bounds = (int(low), int(high or low))
    except ValueError:
        raise InvalidArgument(f"--replicas {text!r}: give a number or MIN:MAX, e.g. 2 or 1:8") from None
    if not 0 <= bounds[0] <= bounds[1] or bounds[1] < 1:
        raise InvalidArgument(f"--replicas {text!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return bounds


def delay(value: float | None, name: str, default: float) -> float:
    """An autoscaling delay: the given value, else FACECAST_RAY_<NAME>, else the default."""
    if value is not None:
        return float(value)
    text = os.environ.get(f"FACECAST_RAY_{name}", "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"FACECAST_RAY_{name}={text!r}: give seconds, e.g. 30") from None


def replica_options(*, replicas: str = "1", max_sessions: int | None = None, target_sessions: float | None = None,
                    replica_cpus: float = 1.0, replica_gpus: float = 0.0, drain: float = 300.0,
                    upscale_delay: float | None = None, downscale_delay: float | None = None):
    """ReplicaOptions from the `serve --ray` options (delays: given, else FACECAST_RAY_*, else default)."""
    from facecast.server.ray.deployment import ReplicaOptions

    low, high = parse_replicas(str(replicas))
    options = ReplicaOptions(sessions=max_sessions or DEFAULT_SESSIONS, min_replicas=low, max_replicas=high,
                             target_sessions=target_sessions, num_cpus=replica_cpus, num_gpus=replica_gpus,
                             drain_s=drain,
                             upscale_delay_s=delay(upscale_delay, "UPSCALE_DELAY_S", UPSCALE_DELAY_S),
                             downscale_delay_s=delay(downscale_delay, "DOWNSCALE_DELAY_S", DOWNSCALE_DELAY_S))
    options.validate()
    return options


def _number(name: str, value, kind=float):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name}={value!r}: expected {'an integer' if kind is int else 'a number'}") from None


def _flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"{name}={value!r}: expected true or false")


def options_from_args(args: dict | None):
    """Serve's builder args (strings from `serve run k=v`, any YAML scalar from a config file)
    -> (ServerSettings, ReplicaOptions); InvalidArgument names an unknown or bad arg."""
    from facecast.server.settings import ServerSettings

    args = dict(args or {})
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise InvalidArgument(f"unknown facecast app args {unknown}; known: " +
                              ", ".join(f"{k} ({v})" for k, v in ARGS.items()))
    numbers = {"max_sessions": int, "target_sessions": float, "replica_cpus": float, "replica_gpus": float,
               "drain": float, "upscale_delay": float, "downscale_delay": float}
    given = {k: _number(k, args[k], kind) for k, kind in numbers.items() if args.get(k) is not None}
    options = replica_options(replicas=str(args.get("replicas", "1")), **given)
    settings = ServerSettings.from_env(
        backend=args.get("backend"), data_dir=Path(args["data_dir"]).expanduser() if args.get("data_dir") else None,
        session_grace_s=_number("grace", args["grace"]) if args.get("grace") is not None else None,
        warmup=_flag("warmup", args["warmup"]) if args.get("warmup") is not None else None)
    return settings, options


def run_from_args(args, settings) -> int:
    require("ray")  # the ray extra, with the install command when missing
    from facecast.server.ray.launch import run

    options = replica_options(replicas=args.replicas, max_sessions=args.max_sessions,
                              target_sessions=args.target_sessions, replica_cpus=args.replica_cpus,
                              replica_gpus=args.replica_gpus, drain=args.drain, upscale_delay=args.upscale_delay,
                              downscale_delay=args.downscale_delay)
    return run(settings, options, args.ray_address)
