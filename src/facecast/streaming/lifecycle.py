"""The shape every session shares: typed commands in (from any thread), one worker thread that
applies them and produces output, an idempotent stop, join, and telemetry passed in.

A transport (an HTTP route, a WebSocket, a WebRTC track, a voice-agent adapter) only calls the
session's command methods and reads its output; it never reaches into the worker.
"""

from __future__ import annotations

import logging
import threading

from facecast.streaming.telemetry import Telemetry

log = logging.getLogger(__name__)

ENDED = ("finished", "stopped", "failed")  # states after the worker has returned


class WorkerSession:
    """Lifecycle of a session: start() runs `_work()` on a worker thread; stop() asks it to end.

    Subclasses implement `_work()` (returns when done or when `stopping` is set), `_wake()` (makes
    a waiting worker look at `stopping`) and may override `_finish()` (runs last, on the worker
    thread, after success or failure). state: "starting" -> "streaming" (set by the subclass) ->
    one of ENDED; error: why it failed, or None.
    """

    def __init__(self, name: str, telemetry: Telemetry):
        self.telemetry = telemetry
        self.state = "starting"
        self.error: str | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to end (idempotent, non-blocking); join() waits for it."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._wake()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _main(self) -> None:
        try:
            self._work()
            self.state = "stopped" if self.stopping else "finished"
        except Exception as exc:  # noqa: BLE001 - reported through the output and telemetry, never raised
            log.exception("%s failed", self._thread.name)
            self.error = f"generation failed: {type(exc).__name__}: {exc}"
            self.state = "failed"
            self.telemetry.count("session_errors")
        finally:
            self._finish()

    def _work(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Close the output (worker thread, last)."""
