"""One live client: JPEG frames in, animated JPEG frames out, on a worker thread.

Transport-independent: the WebSocket route feeds `submit()` / `control()` and gets every
outgoing item through the `emit` callback (called on the worker thread). The input queue
holds at most a few frames and the worker always takes the newest, so a client sending
faster than frames are animated gets fresh frames back, never a growing backlog.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from facecast.avatar.model import Avatar
from facecast.errors import FacecastError, InvalidArgument
from facecast.portrait.driver import MODES
from facecast.portrait.queues import LatestQueue
from facecast.portrait.telemetry import REGISTRY, SessionStats

log = logging.getLogger("facecast.live")

MAX_FRAME_BYTES = 1024 * 1024  # refused before decoding (facecast serve's WebSocket limit is 1 MiB + 1 KiB)
MAX_FRAME_SIDE = 4096  # px: larger decoded frames are refused
JPEG_QUALITY = 80
INPUT_QUEUE = 2  # frames waiting for the worker at most
FLOOD_DROPS = 30  # dropped input frames between two "flood" warnings
CONTROL_TYPES = ("pause", "resume", "reset", "neutral", "mode", "ping")


@dataclass
class LiveFrame:
    """An animated frame for the client. jpeg: the encoded avatar frame; received_s: when
    its input arrived (perf_counter seconds); face_found: whether the driver showed a face."""

    jpeg: bytes
    received_s: float
    face_found: bool
    times_ms: dict = field(default_factory=dict)


@dataclass
class LiveMessage:
    """A JSON text message for the client; `close` asks the transport to end the session."""

    body: dict
    close: bool = False

    def text(self) -> str:
        return json.dumps(self.body)


Emit = Callable[[object], None]


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """JPEG/PNG/WebP bytes -> (h, w, 3) uint8 BGR, or None when they are not a decodable image."""
    if not data:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """(H, W, 3) uint8 BGR -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _worth_telling(count: int) -> bool:
    """Report the first few of a repeated problem, then every 30th: no flood of errors."""
    return count <= 3 or count % 30 == 0


class LiveSession:
    """Animates an avatar from a client's frames.

    load_avatar: returns the prepared Avatar (called once, on the worker thread; may block)
    emit: receives LiveFrame and LiveMessage items, on the worker thread
    mode: "relative" or "absolute"; max_side: px, the long side of the output frames
    label: how telemetry names the avatar
    """

    def __init__(self, load_avatar: Callable[[], Avatar], emit: Emit, *, mode: str = "relative",
                 max_side: int = 512, quality: int = JPEG_QUALITY, label: str = ""):
        if mode not in MODES:
            raise InvalidArgument(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        self.load_avatar, self.emit, self.mode = load_avatar, emit, mode
        self.max_side, self.quality = max_side, quality
        self.inbox: LatestQueue = LatestQueue(INPUT_QUEUE)
        self.stats = SessionStats(label, input_queue=self.inbox)
        self.paused = False
        self._pending: list[str] = []  # control actions for the worker: "reset", "mode"
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"facecast-live-{self.stats.id}", daemon=True)
        self._face: bool | None = None
        self._frame_no = 0

    # -- called by the transport (event-loop thread); never blocks ------------------------
    def start(self) -> None:
        REGISTRY.add(self.stats)
        self._thread.start()

    def submit(self, data: bytes, received_s: float | None = None) -> None:
        """Queue one client frame (encoded image bytes). Oversized frames are refused here."""
        self.stats.received += 1
        if len(data) > MAX_FRAME_BYTES:
            self._bad_frame(f"frame of {len(data)} bytes is larger than the {MAX_FRAME_BYTES} byte limit")
            return
        if self.paused:
            return
        dropped = self.inbox.put((data, time.perf_counter() if received_s is None else received_s))
        self._note_drops(dropped)

    def control(self, text: str) -> None:
        """Handle a JSON text message: {"type": "pause" | "resume" | "reset" | "neutral" |
        "mode" (with "mode": "relative" | "absolute") | "ping"}."""
        try:
            msg = json.loads(text)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except ValueError:
            kind, msg = None, None
        if kind not in CONTROL_TYPES:
            self.stats.bad_messages += 1
            if _worth_telling(self.stats.bad_messages):
                self._error("bad_message", f"unknown control message {text[:80]!r}; expected JSON with "
                            f"\"type\" one of {', '.join(CONTROL_TYPES)} ({self.stats.bad_messages} so far)")
            return
        getattr(self, f"_on_{kind}")(msg)

    def close(self) -> None:
        """Stop the worker (idempotent, non-blocking); join() waits for it."""
        self.inbox.close()
        REGISTRY.remove(self.stats)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- control messages --------------------------------------------------------------------
    def _on_pause(self, msg: dict) -> None:
        self.paused = True
        self.inbox.clear()
        self._state("paused")

    def _on_resume(self, msg: dict) -> None:
        self.paused = False
        self._state("running")

    def _on_reset(self, msg: dict) -> None:
        with self._lock:
            self._pending.append("reset")
        self._state("paused" if self.paused else "running", reset=True)

    _on_neutral = _on_reset  # the next frame with a face becomes the neutral pose

    def _on_mode(self, msg: dict) -> None:
        mode = msg.get("mode")
        if mode not in MODES:
            self._error("bad_message", f"mode {mode!r}: expected one of {', '.join(MODES)}")
            return
        with self._lock:
            self.mode = mode
            self._pending.append("mode")
        self._state("paused" if self.paused else "running", reset=True)

    def _on_ping(self, msg: dict) -> None:
        self.emit(LiveMessage({"type": "pong", "stats": self.stats.snapshot()}))

    # -- worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            animator = self._open()
        except FacecastError as exc:
            self.emit(LiveMessage({"type": "error", "code": "avatar", "message": str(exc)}, close=True))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the client, logged with its trace
            log.exception("live session %s: cannot start", self.stats.id)
            self.emit(LiveMessage({"type": "error", "code": "internal", "message": f"cannot start: {exc}"}, close=True))
            return
        try:
            while (item := self.inbox.get()) is not None:
                try:
                    self._apply_pending(animator)
                    if not self.paused:
                        self._process(animator, *item)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not end the session
                    log.exception("live session %s: frame %s failed", self.stats.id, self._frame_no)
                    self._error("frame_failed", f"frame {self._frame_no} could not be animated: {exc}")
        finally:
            animator.close()

    def _open(self):
        from facecast.portrait.animator import PortraitAnimator
        from facecast.portrait.source import still_of

        avatar = still_of(self.load_avatar(), self.max_side)
        animator = PortraitAnimator(avatar, mode=self.mode)
        h, w = avatar.frame.shape[:2]
        self.emit(LiveMessage({"type": "ready", "avatar": {"id": avatar.id, "name": avatar.name, "width": w,
                                                            "height": h}, "mode": self.mode}))
        return animator

    def _apply_pending(self, animator) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            mode = self.mode
        if "mode" in pending:
            from facecast.portrait.driver import DriverTracker

            animator.tracker = DriverTracker(mode, animator.avatar.mesh.astype(np.float64), animator.tracker.settings)
        if pending:
            animator.reset()

    def _process(self, animator, data: bytes, received_s: float) -> None:
        """Decode, animate, encode one frame and emit it; errors become messages."""
        self._frame_no += 1
        t0 = time.perf_counter()
        image = decode_jpeg(data)
        if image is None:
            self._bad_frame(f"frame {self._frame_no} ({len(data)} bytes) is not a JPEG, PNG or WebP image")
            return
        if max(image.shape[:2]) > MAX_FRAME_SIDE:
            self._bad_frame(f"frame {self._frame_no} is {image.shape[1]}x{image.shape[0]} px; "
                            f"the limit is {MAX_FRAME_SIDE} px a side")
            return
        t1 = time.perf_counter()
        result = animator.animate(image, received_s)
        t2 = time.perf_counter()
        jpeg = encode_jpeg(result.image, self.quality)
        times = {"decode": (t1 - t0) * 1e3, **result.times_ms, "encode": (time.perf_counter() - t2) * 1e3}
        self.stats.record_stages(times)
        self._face_state(result.face_found)
        self.emit(LiveFrame(jpeg, received_s, result.face_found, times))

    def _face_state(self, found: bool) -> None:
        """Tell the client when the driver's face is lost or found again (transitions only)."""
        if not found:
            self.stats.no_face += 1
        if found == self._face:
            return
        self._face = found
        if found:
            self.emit(LiveMessage({"type": "info", "code": "face_found", "message": "Face found: the avatar follows."}))
        else:
            self.emit(LiveMessage({"type": "warning", "code": "no_face",
                                   "message": "No face in the camera picture: the avatar holds its last pose."}))

    # -- messages ------------------------------------------------------------------------------
    def _state(self, state: str, reset: bool = False) -> None:
        self.emit(LiveMessage({"type": "state", "state": state, "reset": reset, "mode": self.mode}))

    def _error(self, code: str, message: str) -> None:
        self.emit(LiveMessage({"type": "error", "code": code, "message": message}))

    def _bad_frame(self, message: str) -> None:
        self.stats.bad_frames += 1
        if _worth_telling(self.stats.bad_frames):
            self._error("bad_frame", f"{message}; it was skipped ({self.stats.bad_frames} so far)")

    def _note_drops(self, dropped: int) -> None:
        before = self.stats.dropped_in
        self.stats.dropped_in = self.inbox.dropped
        if dropped and before // FLOOD_DROPS != self.stats.dropped_in // FLOOD_DROPS:
            self.emit(LiveMessage({"type": "warning", "code": "flood",
                                   "message": f"frames arrive faster than they are animated: "
                                              f"{self.stats.dropped_in} stale frames dropped so far; "
                                              f"only the newest frame is animated"}))
