"""/ws/live and /live against a real `facecast serve` (uvicorn in a child process, loopback port):
frames come back and follow the driver, errors and floods leave the loop running, pause, resume
and reset work mid-stream, avatars are chosen by id."""

from __future__ import annotations

import json
import time

import av
import cv2
import httpx
import numpy as np
import pytest
from conftest import portrait, talking
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from probe import mouth_openings
from support.server_process import ServerProcess, served

TOKEN = "live-test-token-0123456789"
FRAME_SIZE = 480  # px: driver frames are sent at this size, like a browser's camera canvas


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("live-server")
    with served(data, {"FACECAST_API_TOKEN": TOKEN}) as proc:
        yield proc


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    """The first 75 frames of a talking clip as JPEG bytes."""
    frames = []
    with av.open(str(talking("woman_glasses_5s.mp4"))) as c:
        for frame in c.decode(video=0):
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)
            frames.append(jpeg(image))
            if len(frames) == 75:
                break
    return frames


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the server sent bytes that are not an image"
    return image


class Live:
    """A /ws/live client: text messages are kept in `messages`, frames returned."""

    def __init__(self, server: ServerProcess, query: str = ""):
        self.url = server.url.replace("http", "ws") + f"/ws/live?token={TOKEN}" + (f"&{query}" if query else "")
        self.messages: list[dict] = []
        self._cursor = 0  # messages before this index were already matched by wait_for

    def __enter__(self) -> "Live":
        self._connection = connect(self.url, max_size=2 ** 24, open_timeout=30)
        self.ws = self._connection.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._connection.__exit__(*exc)

    def next(self, timeout: float = 30.0):
        """The next message: bytes (a frame) or a dict (a text message, also kept)."""
        item = self.ws.recv(timeout=timeout)
        if isinstance(item, bytes):
            return item
        msg = json.loads(item)
        self.messages.append(msg)
        return msg

    def wait_for(self, kind: str, timeout: float = 60.0) -> dict:
        """The first message of type `kind` not matched before (it may have arrived already)."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self._cursor, len(self.messages)):
                if self.messages[i]["type"] == kind:
                    self._cursor = i + 1
                    return self.messages[i]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind!r} message within {timeout} s; got {self.messages}")
            self.next(timeout=max(0.1, deadline - time.monotonic()))

    def frame(self, data: bytes, timeout: float = 30.0) -> np.ndarray:
        """Send one frame and return the animated frame that answers it."""
        self.ws.send(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.next(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(item, bytes):
                return decode(item)
        raise AssertionError("no frame came back")

    def control(self, **message) -> None:
        self.ws.send(json.dumps(message))

    def quiet(self, seconds: float) -> list:
        """Everything that arrives within `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.next(timeout=max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                break
        return got


def head_yaws(frames: list[np.ndarray]) -> np.ndarray:
    """(N,) head yaw (degrees) of each (H, W, 3) uint8 BGR frame relative to the first, measured
    by facecast's own face tracking and pose fit (the skull points' similarity), unfiltered."""
    from facecast.portrait.pose import euler_deg, fit_similarity, skull_indices
    from facecast.portrait.tracking import FaceTracker

    tracker = FaceTracker()
    try:
        meshes = [tracker.landmarks(frame) for frame in frames]
    finally:
        tracker.close()
    assert all(m is not None for m in meshes), "a frame without a face"
    first, skull = meshes[0].astype(np.float64), skull_indices(meshes[0])
    return np.array([euler_deg(fit_similarity(first[skull], m[skull].astype(np.float64)).rotation)[0]
                     for m in meshes])


def live_stats(server: ServerProcess) -> dict:
    return httpx.get(server.url + "/live/stats", headers=server.headers, timeout=10).json()


def test_page_and_script_are_served(server):
    page = httpx.get(server.url + f"/live?token={TOKEN}", timeout=10)
    assert page.status_code == 200 and 'id="avatar-view"' in page.text
    assert f"/live/live.js?token={TOKEN}" in page.text
    script = httpx.get(server.url + "/live/live.js", headers=server.headers, timeout=10)
    assert script.status_code == 200 and "getUserMedia" in script.text and "/ws/live" in script.text
    assert httpx.get(server.url + "/live", timeout=10).status_code == 401  # the token guard covers it


def test_frames_come_back_and_follow_the_driver(server, clip):
    with Live(server) as live:
        ready = live.wait_for("ready")
        assert (ready["avatar"]["width"], ready["avatar"]["height"]) == (512, 512) and ready["mode"] == "relative"
        outs = [live.frame(data) for data in clip]
    assert all(o.shape == (512, 512, 3) for o in outs)
    driver_frames = [decode(d) for d in clip]
    driver, rendered = mouth_openings(np.stack(driver_frames)), mouth_openings(np.stack(outs))
    assert np.corrcoef(driver, rendered)[0, 1] > 0.7
    driver_yaw, render_yaw = head_yaws(driver_frames), head_yaws(outs)
    assert np.ptp(driver_yaw) > 6.0  # degrees: the speaker turns her head
    assert np.corrcoef(driver_yaw, render_yaw)[0, 1] > 0.7  # and the avatar turns with her
    assert np.ptp(render_yaw) > 0.5 * np.ptp(driver_yaw)
    assert not [m for m in live.messages if m["type"] in ("error", "warning")], live.messages
    stats = live_stats(server)
    assert stats["loop_ms"]["count"] >= len(clip) and stats["loop_ms"]["p95"] > 0
    assert set(stats["stages_ms"]) == {"decode", "landmarks", "warp", "encode"}
    server_stats = httpx.get(server.url + "/stats", headers=server.headers, timeout=10).json()
    assert server_stats["live"]["loop_ms"]["count"] >= len(clip)  # the server's /stats carries them too
    assert set(server_stats["live"]["stages_ms"]) == {"decode", "landmarks", "warp", "encode"}


def test_bad_frames_and_messages_are_answered_and_the_loop_keeps_running(server, clip):
    with Live(server) as live:
        live.wait_for("ready")
        live.frame(clip[0])
        live.ws.send(b"\x00not a jpeg")
        assert live.wait_for("error")["code"] == "bad_frame"
        live.ws.send(clip[1][: len(clip[1]) // 3])  # a truncated JPEG still decodes (top part) or is refused
        live.ws.send(b"\xff" * (1024 * 1024 + 100))  # over the 1 MiB frame limit
        err = live.wait_for("error")
        while "larger than" not in err["message"]:
            err = live.wait_for("error")
        assert err["code"] == "bad_frame"
        live.control(type="dance")
        assert live.wait_for("error")["code"] == "bad_message"
        live.ws.send("{not json")
        assert live.wait_for("error")["code"] == "bad_message"
        blank = live.frame(jpeg(np.full((FRAME_SIZE, FRAME_SIZE, 3), 120, np.uint8)))  # nobody in front of the camera
        assert blank.shape == (512, 512, 3)
        assert live.wait_for("warning")["code"] == "no_face"
        live.frame(clip[2])
        assert live.wait_for("info")["code"] == "face_found"
        live.control(type="ping")
        assert live.wait_for("pong")["stats"]["bad_frames"] >= 2


def test_pause_resume_and_reset_mid_stream(server, clip):
    with Live(server) as live:
        rest = live_avatar_rest(live)

        def change(image: np.ndarray) -> float:
            """Mean change of the upper head (above the mouth, which follows the driver's opening)."""
            return float(np.abs(image[:135].astype(int) - rest[:135]).mean())

        first = live.frame(clip[0])
        assert change(first) < 1.0  # the first frame is the neutral pose: the head is at rest
        moved = [live.frame(d) for d in clip[1:40]]
        live.control(type="pause")
        assert live.wait_for("state")["state"] == "paused"
        for d in clip[40:45]:
            live.ws.send(d)
        assert not [i for i in live.quiet(0.8) if isinstance(i, bytes)]  # nothing is animated while paused
        live.control(type="resume")
        assert live.wait_for("state")["state"] == "running"
        far = int(np.argmax([change(m) for m in moved])) + 1
        before = live.frame(clip[far])
        live.control(type="reset")
        assert live.wait_for("state")["reset"] is True
        after = live.frame(clip[far])  # becomes the new neutral pose: the head is back at rest
        assert change(after) < 1.0 < change(before)
        live.control(type="mode", mode="absolute")
        assert live.wait_for("state")["mode"] == "absolute"
        assert live.frame(clip[3]).shape == (512, 512, 3)


def live_avatar_rest(live: Live) -> np.ndarray:
    """The avatar at rest, as the server encodes it: the default astronaut."""
    live.wait_for("ready")
    from facecast.portrait.session import encode_jpeg
    from facecast.portrait.source import load_avatar, still_of

    return decode(encode_jpeg(still_of(load_avatar(None), 512).frame))


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_a_flooding_client_gets_fresh_frames_and_a_warning(server, clip):
    with Live(server) as live:
        live.wait_for("ready")
        live.frame(clip[0])
        before = rss_mib(server.proc.pid)
        for i in range(300):  # as fast as the socket takes them, without reading
            live.ws.send(clip[i % len(clip)])
        got = live.quiet(3.0)
        assert rss_mib(server.proc.pid) - before < 100  # MiB: 300 frames (~20 MB) were not kept
        frames = [i for i in got if isinstance(i, bytes)]
        assert 1 <= len(frames) < 200  # stale frames were dropped, not queued
        assert any(isinstance(m, dict) and m.get("code") == "flood" for m in got)
        session = next(s for s in live_stats(server)["sessions"] if s["received"] >= 300)
        assert session["dropped_in"] > 100
        assert session["in_queue"] == 0  # the worker took the last frame: nothing waits any more
        assert live.frame(clip[5]).shape == (512, 512, 3)  # still answering


def test_avatar_by_id_and_refused_requests(server):
    upload = httpx.post(server.url + "/avatars", headers=server.headers, timeout=120,
                        files={"file": ("woman.jpg", portrait("woman_frontal_slight_turn_01.jpg").read_bytes())})
    assert upload.status_code in (200, 201), upload.text
    avatar_id = upload.json()["id"]
    with Live(server, f"avatar={avatar_id}&mode=absolute") as live:
        ready = live.wait_for("ready")
        assert ready["mode"] == "absolute" and ready["avatar"]["width"] == 512
        assert ready["avatar"]["id"] == avatar_id, "ready reports the id the client gave, not the cache key"
    with Live(server, "avatar=no-such-avatar") as live:
        err = live.wait_for("error")
        assert err["code"] == "avatar" and "does not exist" in err["message"]
        with pytest.raises(ConnectionClosed):
            live.next(timeout=5)  # then the server closes the connection (a timeout would fail here)
        assert live.ws.close_code == 1008
    with Live(server, "mode=sideways") as live:
        err = live.wait_for("error")
        assert "mode='sideways'" in err["message"]
