"""fMP4 over HTTP: one reader's response body - the init segment, then segments as they are made."""

from __future__ import annotations

import logging
from typing import AsyncIterator

from facecast.errors import GenerationFailed, StreamGone, Unavailable
from facecast.transports.fmp4.fanout import StreamEnded
from facecast.transports.fmp4.output import Fmp4Output

log = logging.getLogger(__name__)

COALESCE_BYTES = 512 * 1024  # segments already made are sent together up to this size


class Fmp4Reader:
    """One HTTP reader of a session's fMP4 output. `await open(timeout)` waits for the first
    frame; then `body()` is the response body (it detaches the reader when it ends)."""

    def __init__(self, sink: Fmp4Output, name: str):
        self.sink, self.name = sink, name
        self.rid = sink.segments.attach()

    async def open(self, timeout: float) -> None:
        """Wait until the init segment exists; Unavailable, GenerationFailed or StreamGone otherwise."""
        try:
            await self.sink.segments.init_segment(self.rid, timeout)
        except TimeoutError:
            self.close()
            raise Unavailable(f"session {self.name!r}: no frame after {timeout:g} s") from None
        except StreamEnded as end:
            self.close()
            if end.error:
                raise GenerationFailed(f"session {self.name!r}: {end.error}") from None
            raise StreamGone(f"session {self.name!r} ended before its first frame") from None

    def close(self) -> None:
        self.sink.segments.detach(self.rid)

    async def body(self) -> AsyncIterator[bytes]:
        """Init segment, then segments as they come; ends with the stream or the client."""
        fanout = self.sink.segments
        try:
            pending = [fanout.init]
            while True:
                segments, ended = self._collect()
                if pending or segments:
                    yield b"".join(pending + [s.data for s in segments])
                    pending = []
                    for segment in segments:
                        self.sink.segment_sent(segment)
                if ended:
                    return
                if not segments:
                    await fanout.wait(self.rid)
        finally:
            self.close()

    def _collect(self) -> tuple[list, bool]:
        """Segments available now (up to COALESCE_BYTES), and whether the stream ended."""
        segments, size = [], 0
        try:
            while size < COALESCE_BYTES:
                segment = self.sink.segments.take(self.rid)
                if segment is None:
                    break
                segments.append(segment)
                size += len(segment.data)
        except StreamEnded as end:
            if end.error:
                log.warning("stream ended: %s", end.error)
            return segments, True
        return segments, False
