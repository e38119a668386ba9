"""/stats over every replica: each replica reports a summary every second to one small named actor
(StatsBoard); the replica that answers /stats adds the others' latest reports and the totals.

A report older than STALE_S is left out: that replica is gone (or stuck), and its sessions with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import ray

log = logging.getLogger(__name__)

BOARD_NAME = "facecast-stats"
BOARD_NAMESPACE = "facecast"  # explicit: replicas and proxies run in Serve's namespace, drivers in their own
REPORT_EVERY_S = 1.0  # s between a replica's reports
STALE_S = 3.0  # s after which a replica's last report no longer counts


@ray.remote(num_cpus=0, max_concurrency=64)
class StatsBoard:
    """The latest summary of every replica, by replica id."""

    def __init__(self):
        self._reports: dict[str, tuple[float, dict]] = {}

    def put(self, replica: str, summary: dict) -> None:
        self._reports[replica] = (time.monotonic(), summary)

    def forget(self, replica: str) -> None:
        self._reports.pop(replica, None)

    def fresh(self, max_age_s: float = STALE_S) -> list[dict]:
        now = time.monotonic()
        return [{**summary, "report_age_s": round(now - at, 3)}
                for _, (at, summary) in sorted(self._reports.items()) if now - at <= max_age_s]


def summary(replica: str, stats: dict) -> dict:
    """What a replica reports: its id and the numbers that add up across replicas."""
    return {"replica": replica, "pid": os.getpid(), "active_sessions": stats["active_sessions"], "frames_per_s": stats["frames_per_s"],
            "counters": stats["counters"], "memory": stats["memory"], "uptime_s": stats["uptime_s"]}


def totals(replicas: list[dict]) -> dict:
    counters: dict[str, int] = {}
    for rep in replicas:
        for key, value in rep["counters"].items():
            counters[key] = counters.get(key, 0) + value
    return {"replicas": len(replicas), "active_sessions": sum(r["active_sessions"] for r in replicas),
            "frames_per_s": round(sum(r["frames_per_s"] for r in replicas), 2), "counters": counters,
            "rss_mib": round(sum(r["memory"]["rss"] for r in replicas), 1)}


def board_handle():
    """The board's actor handle (ValueError while there is none)."""
    return ray.get_actor(BOARD_NAME, namespace=BOARD_NAMESPACE)


class ClusterStats:
    """A replica's side: report itself in the background; collect() for /stats."""

    def __init__(self, replica: str, stats_fn, namespace_board: str = BOARD_NAME):
        self.replica, self.stats_fn, self.name = replica, stats_fn, namespace_board
        self._board = None
        self._task: asyncio.Task | None = None

    def board(self):
        if self._board is None:
            self._board = StatsBoard.options(name=self.name, namespace=BOARD_NAMESPACE, get_if_exists=True).remote()
        return self._board

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._report_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:
            await self.board().forget.remote(self.replica)
        except Exception:  # noqa: BLE001 - the board may be gone with its node
            pass

    async def _report_forever(self) -> None:
        while True:
            try:
                await self.board().put.remote(self.replica, summary(self.replica, self.stats_fn()))
            except ray.exceptions.RayActorError:  # the board died (its owner's node went): make it again
                self._board = None
            except Exception:  # noqa: BLE001 - reporting must go on
                log.exception("stats report failed")
            await asyncio.sleep(REPORT_EVERY_S)

    async def collect(self, own: dict) -> dict:
        """Every replica's summary (this one's as of now) and their totals."""
        try:
            others = [r for r in await self.board().fresh.remote() if r["replica"] != self.replica]
        except ray.exceptions.RayActorError:
            self._board, others = None, []
        replicas = sorted([{**summary(self.replica, own), "report_age_s": 0.0}, *others], key=lambda r: r["replica"])
        return {"replicas": replicas, "totals": totals(replicas)}
