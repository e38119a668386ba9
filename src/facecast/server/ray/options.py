"""The command line's Ray options -> ReplicaOptions (kept apart so `serve --help` needs no Ray)."""

from __future__ import annotations

from facecast.deps import require
from facecast.errors import InvalidArgument

DEFAULT_SESSIONS = 6  # sessions per CPU replica when --max-sessions is not given (2 cores hold 6-8)


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


def run_from_args(args, settings) -> int:
    require("ray")  # the ray extra, with the install command when missing
    from facecast.server.ray.deployment import ReplicaOptions
    from facecast.server.ray.launch import run

    low, high = parse_replicas(args.replicas)
    options = ReplicaOptions(sessions=args.max_sessions or DEFAULT_SESSIONS, min_replicas=low, max_replicas=high,
                             num_cpus=args.replica_cpus, num_gpus=args.replica_gpus, drain_s=args.drain)
    options.validate()
    return run(settings, options, args.ray_address)
