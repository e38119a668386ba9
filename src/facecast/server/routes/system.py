"""GET /health and GET /stats."""

from __future__ import annotations

import resource
import time

from fastapi import APIRouter, Depends

from facecast import __version__
from facecast.streaming.telemetry import live_stats
from facecast.server.deps import get_runtime
from facecast.server.models import HealthOut, StatsOut
from facecast.server.routes.sessions import session_out
from facecast.server.runtime import Runtime

router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthOut, summary="Liveness and readiness")
async def health(rt: Runtime = Depends(get_runtime)) -> dict:
    """Whether the server is up and warm, with its backend and default avatar."""
    return {"status": "ok" if rt.ready else "starting", "version": __version__, "backend": rt.settings.backend,
            "default_avatar": rt.avatars.default_id if rt.avatars else None,
            "active_sessions": sum(1 for s in rt.sessions.all() if s.alive), "auth": rt.settings.token is not None}


@router.get("/stats", response_model=StatsOut, summary="Latency, throughput, queues, cache, memory")
async def stats(rt: Runtime = Depends(get_runtime)) -> dict:
    """Per-stage latency p50/p95/p99, frames/s, queue depths, sessions, cache hits, memory, and the
    live-portrait loop's telemetry."""
    out = local_stats(rt)
    if rt.cluster is not None:  # Ray Serve: every replica's numbers and their totals
        out["cluster"] = await rt.cluster.collect(out)
    return out


def local_stats(rt: Runtime) -> dict:
    """This process's /stats."""
    snap = rt.telemetry.snapshot()
    sessions = [session_out(s) for s in rt.sessions.all()]
    counters = snap["counters"]
    cache = {k: counters.get(k, 0) for k in ("avatar_memory_hits", "avatar_memory_misses", "avatar_upload_cache_hits")}
    queues = {"commands_queued": sum(s["commands_queued"] for s in sessions),
              "segments_kept": sum(s["segments_kept"] for s in sessions),
              "readers": sum(s["readers"] for s in sessions)}
    return {"uptime_s": round(time.monotonic() - rt.started, 3),
            "active_sessions": sum(1 for s in rt.sessions.all() if s.alive), "sessions": sessions,
            "latency_ms": snap["latency_ms"], "frames_per_s": round(snap["frames_per_s"], 2),
            "counters": counters, "cache": cache, "memory": memory_mib(), "queues": queues,
            "live": live_stats(rt.live_telemetry)}


def memory_mib() -> dict:
    """Resident memory now and at its peak, in MiB (Linux /proc; peak from getrusage)."""
    rss = 0.0
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        rss = pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rss": round(rss, 1), "peak_rss": round(peak, 1)}
