"""SessionRouter: Ray Serve request routing that keeps every request of a session on its replica.

Serve's HTTP proxy hands each request to its deployment's router with the request's ASGI scope
pickled in the first argument (ray 2.60: `StreamingHTTPRequest(asgi_scope=...)`, pickled bytes).
The router reads the path:
- a session's request (affinity.py) goes to the replica whose unique id begins the session id;
  when that replica is not among the running ones (it died, or it is draining), to any replica,
  which answers 410;
- a new session (POST /sessions) goes to the replica with the fewest sessions: those it reported
  to the stats board (stats.py, once a second) plus those this router sent it since;
- anything else (avatars, renders, /stats) by Serve's power of two choices on queue length.

Serve's experimental ConsistentHashRouter keys on a header (x-session-id), which a browser cannot
put on a WebSocket, and its ring moves sessions whenever a replica is added: not usable here.
"""

from __future__ import annotations

import pickle
import time
from collections import defaultdict
from typing import List, Optional

from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import PendingRequest, RunningReplica

from facecast.server.ray.affinity import home_in_path
from facecast.server.ray.stats import REPORT_EVERY_S

VIEW_EVERY_S = 0.5  # s between reads of the replicas' session counts
ROUTED_KEPT_S = 2.5 * REPORT_EVERY_S  # s a routed new session counts, until the replica's reports include it


def request_target(pending: Optional[PendingRequest]) -> tuple[str, str]:
    """(method, path) of a pending HTTP request; ("", "") for calls that are not HTTP requests."""
    if pending is None or not pending.args:
        return "", ""
    arg = pending.args[0]
    if isinstance(arg, (bytes, bytearray)):
        try:
            arg = pickle.loads(arg)
        except Exception:  # noqa: BLE001 - not a proxied HTTP request: no session to route by
            return "", ""
    scope = getattr(arg, "asgi_scope", None)
    if not isinstance(scope, dict):
        return "", ""
    return scope.get("method", "WS"), scope.get("path", "")


class SessionRouter(PowerOfTwoChoicesRequestRouter):
    """Session requests to their replica, new sessions to the least loaded, the rest by power of two."""

    def initialize_state(self, **kwargs) -> None:
        super().initialize_state(**kwargs)
        self._reported: dict[str, int] = {}
        self._viewed_at = 0.0
        self._routed: dict[str, list[float]] = defaultdict(list)

    async def choose_replicas(self, candidate_replicas: List[RunningReplica],
                              pending_request: Optional[PendingRequest] = None) -> List[List[RunningReplica]]:
        method, path = request_target(pending_request)
        home = home_in_path(path)
        if home is not None:
            owner = [r for r in candidate_replicas if r.replica_id.unique_id == home]
            if owner:
                return [owner]
        elif method == "POST" and path.rstrip("/") == "/sessions" and candidate_replicas:
            return [[await self._least_sessions(candidate_replicas)]]
        return await super().choose_replicas(candidate_replicas, pending_request)

    async def _least_sessions(self, candidates: List[RunningReplica]) -> RunningReplica:
        now = time.monotonic()
        if now - self._viewed_at > VIEW_EVERY_S:
            self._viewed_at = now
            self._reported = await _reported_sessions()
        for routed in self._routed.values():
            routed[:] = [t for t in routed if now - t < ROUTED_KEPT_S]
        chosen = min(candidates, key=lambda r: self._reported.get(r.replica_id.unique_id, 0)
                     + len(self._routed[r.replica_id.unique_id]))
        self._routed[chosen.replica_id.unique_id].append(now)
        return chosen


_board = None


async def _reported_sessions() -> dict[str, int]:
    """{replica: active sessions} from the stats board ({} while it is unavailable)."""
    global _board
    try:
        if _board is None:
            from facecast.server.ray.stats import board_handle

            _board = board_handle()
        return {r["replica"]: r["active_sessions"] for r in await _board.fresh.remote()}
    except Exception:  # noqa: BLE001 - without the board, routed counts alone decide
        _board = None
        return {}
