"""One live client: JPEG frames in, animated JPEG frames out, on a worker thread.

Transport-independent, in the shape every session has (streaming.lifecycle): the transport sends
typed commands (submit() and control() make CameraFrame, OversizeFrame and ControlText) and reads
`output`, a Channel of LiveFrame and LiveMessage items. One worker thread applies the commands in
the order they came and is the only writer of `output`, so every reply and error reaches the
client in order. The input queue holds at most a few frames and stale ones are skipped, so a
client sending faster than frames are animated gets fresh frames back, never a growing backlog.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from facecast.avatar.model import Avatar
from facecast.errors import FacecastError, InvalidArgument
from facecast.portrait.driver import MODES
from facecast.streaming.commands import CameraFrame, ControlText, OversizeFrame, PortraitCommand
from facecast.streaming.lifecycle import WorkerSession
from facecast.streaming.queues import Channel, LatestQueue
from facecast.streaming.telemetry import SessionStats, Telemetry

log = logging.getLogger("facecast.live")

MAX_FRAME_BYTES = 1024 * 1024  # refused before decoding (facecast serve's WebSocket limit is 1 MiB + 1 KiB)
MAX_FRAME_SIDE = 4096  # px: larger decoded frames are refused
JPEG_QUALITY = 80
INPUT_QUEUE = 2  # frames waiting for the worker at most
OUTPUT_QUEUE = 2  # animated frames waiting for the transport at most
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


class LiveSession(WorkerSession):
    """Animates an avatar from a client's frames.

    load_avatar: returns the prepared Avatar (called once, on the worker thread; may block);
    telemetry: where all sessions' loop and stage latencies go (the session's own record,
    `stats`, is tracked there while it runs); mode: "relative" or "absolute"; max_side: px, the
    long side of the output frames; label: how telemetry names the avatar.
    """

    def __init__(self, load_avatar: Callable[[], Avatar], telemetry: Telemetry, *, mode: str = "relative",
                 max_side: int = 512, quality: int = JPEG_QUALITY, label: str = ""):
        if mode not in MODES:
            raise InvalidArgument(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        self.load_avatar, self.mode = load_avatar, mode
        self.max_side, self.quality = max_side, quality
        self.inbox: LatestQueue[PortraitCommand] = LatestQueue(INPUT_QUEUE)
        self.output: Channel[LiveFrame | LiveMessage] = Channel(OUTPUT_QUEUE)
        self.stats = SessionStats(label, telemetry, input_queue=self.inbox, output_queue=self.output)
        super().__init__(f"facecast-live-{self.stats.id}", telemetry)
        self.paused = False
        self._face: bool | None = None
        self._frame_no = 0
        self._drops_told = 0  # input drops when the last "flood" warning went out

    # -- commands (the transport's thread); never block -------------------------------------
    def start(self) -> None:
        self.telemetry.track(self.stats)
        super().start()

    def submit(self, data: bytes, received_s: float | None = None) -> None:
        """Queue one client frame (encoded image bytes); an oversized one is refused unread."""
        self.stats.received += 1
        if len(data) > MAX_FRAME_BYTES:
            self.inbox.put(OversizeFrame(len(data)), droppable=False)
            return
        self.inbox.put(CameraFrame(data, time.perf_counter() if received_s is None else received_s))

    def control(self, text: str) -> None:
        """Queue a JSON text message: {"type": "pause" | "resume" | "reset" | "neutral" |
        "mode" (with "mode": "relative" | "absolute") | "ping"}."""
        self.inbox.put(ControlText(text), droppable=False)

    def _wake(self) -> None:
        self.inbox.close()
        self.telemetry.untrack(self.stats)

    close = WorkerSession.stop  # the transport's word for it

    def emit(self, item: LiveFrame | LiveMessage) -> None:
        """Send `item` to the transport (worker thread only: the one writer keeps the order)."""
        self.output.put(item, droppable=isinstance(item, LiveFrame))

    # -- worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        try:
            animator = self._open()
        except FacecastError as exc:
            self.emit(LiveMessage({"type": "error", "code": "avatar", "message": str(exc)}, close=True))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the client, logged with its trace
            log.exception("live session %s: cannot start", self.stats.id)
            self.emit(LiveMessage({"type": "error", "code": "internal", "message": f"cannot start: {exc}"}, close=True))
            return
        self.state = "streaming"
        try:
            while (command := self.inbox.get()) is not None:
                self._note_drops()
                try:
                    self._apply(animator, command)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not end the session
                    log.exception("live session %s: frame %s failed", self.stats.id, self._frame_no)
                    self._error("frame_failed", f"frame {self._frame_no} could not be animated: {exc}")
        finally:
            animator.close()

    def _finish(self) -> None:
        self.output.close()

    def _apply(self, animator, command: PortraitCommand) -> None:
        if isinstance(command, CameraFrame):
            if not self.paused:
                self._process(animator, command.data, command.received_s)
        elif isinstance(command, OversizeFrame):
            self._bad_frame(f"frame of {command.size} bytes is larger than the {MAX_FRAME_BYTES} byte limit")
        elif isinstance(command, ControlText):
            self._control(animator, command.text)

    def _open(self):
        from facecast.portrait.animator import PortraitAnimator
        from facecast.portrait.source import still_of

        avatar = still_of(self.load_avatar(), self.max_side)
        animator = PortraitAnimator(avatar, mode=self.mode)
        h, w = avatar.frame.shape[:2]
        self.emit(LiveMessage({"type": "ready", "avatar": {"id": avatar.id, "name": avatar.name, "width": w,
                                                            "height": h}, "mode": self.mode}))
        return animator

    # -- control messages --------------------------------------------------------------------
    def _control(self, animator, text: str) -> None:
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
        if kind == "pause":
            self.paused = True
            self.inbox.clear()
            self._state("paused")
        elif kind == "resume":
            self.paused = False
            self._state("running")
        elif kind in ("reset", "neutral"):  # the next frame with a face becomes the neutral pose
            animator.reset()
            self._state("paused" if self.paused else "running", reset=True)
        elif kind == "mode":
            self._set_mode(animator, msg.get("mode"))
        else:
            self.emit(LiveMessage({"type": "pong", "stats": self.stats.snapshot()}))

    def _set_mode(self, animator, mode) -> None:
        if mode not in MODES:
            self._error("bad_message", f"mode {mode!r}: expected one of {', '.join(MODES)}")
            return
        from facecast.portrait.driver import DriverTracker

        self.mode = mode
        animator.tracker = DriverTracker(mode, animator.avatar.mesh.astype(np.float64), animator.tracker.settings)
        animator.reset()
        self._state("paused" if self.paused else "running", reset=True)

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

    def _note_drops(self) -> None:
        dropped = self.stats.dropped_in
        if dropped // FLOOD_DROPS != self._drops_told // FLOOD_DROPS:
            self.emit(LiveMessage({"type": "warning", "code": "flood",
                                   "message": f"frames arrive faster than they are animated: "
                                              f"{dropped} stale frames dropped so far; "
                                              f"only the newest frame is animated"}))
        self._drops_told = dropped
