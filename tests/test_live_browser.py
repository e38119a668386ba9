"""The /live page end to end in real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright) with a fake camera that plays a talking clip: animated frames come back, follow the
driver's mouth, and pause / resume work. The .y4m camera file is made by the test with PyAV.

Needs scripts/install-browser.sh and requirements/test-web.txt."""

from __future__ import annotations

import base64
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import talking

from probe import mouth_openings
from support.server_process import served

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "live-web-token-0123456789"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAIRS = 60  # (camera frame, avatar frame) pairs the page records for the test


def write_y4m(clip: Path, out: Path, size=(640, 480)) -> Path:
    """The clip's frames as a raw YUV4MPEG2 file (what Chromium's fake camera reads), 4:3."""
    with av.open(str(clip)) as src, av.open(str(out), "w", format="yuv4mpegpipe") as dst:
        stream_in = src.streams.video[0]
        fps = int(round(float(stream_in.base_rate or 25)))
        stream = dst.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(src.decode(stream_in)):
            img = frame.to_ndarray(format="bgr24")
            h, w = img.shape[:2]
            pad = max(0, (h * size[0] // size[1] - w) // 2)
            img = cv2.resize(cv2.copyMakeBorder(img, 0, 0, pad, pad, cv2.BORDER_REPLICATE), size)
            vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
            vf.pts = i
            dst.mux(stream.encode(vf))
        dst.mux(stream.encode(None))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("live-web-server")
    with served(data, {"FACECAST_API_TOKEN": TOKEN}) as proc:
        yield proc


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: run scripts/install-browser.sh")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements/test-web.txt")
    camera = write_y4m(talking("woman_glasses_5s.mp4"), tmp_path_factory.mktemp("camera") / "clip.y4m")
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS + fake)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/live?token={TOKEN}&autostart=1&record={PAIRS}")
        yield page
        browser.close()
        assert not errors, errors


def data_url_image(url: str) -> np.ndarray:
    raw = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)


def test_camera_frames_come_back_animated_and_follow_the_driver(page):
    page.wait_for_function(f"window.facecastLive.pairs.length >= {PAIRS}", timeout=120_000)
    live = page.evaluate("({phase: facecastLive.phase, ready: facecastLive.ready, errors: facecastLive.errors,"
                         " received: facecastLive.received, pairs: facecastLive.pairs})")
    assert live["phase"] == "running" and not live["errors"], live["errors"]
    assert live["ready"]["avatar"]["width"] == 512
    sent = np.stack([data_url_image(p["sent"]) for p in live["pairs"]])
    got = np.stack([data_url_image(p["received"]) for p in live["pairs"]])
    assert sent.shape[1:] == (480, 640, 3) and got.shape[1:] == (512, 512, 3)
    driver, avatar = mouth_openings(sent), mouth_openings(got)
    assert np.nanstd(driver) > 0.01  # the fake camera really talks
    assert np.corrcoef(driver, avatar)[0, 1] > 0.6
    drawn = page.evaluate("(() => { const c = document.getElementById('avatar-view');"
                          " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                          " let s = 0; for (let i = 0; i < d.length; i += 997) s += d[i]; return s; })()")
    assert drawn > 0  # the avatar is on screen


def test_pause_and_resume(page):
    page.wait_for_function("window.facecastLive.phase === 'running'", timeout=60_000)
    page.click("#pause")
    page.wait_for_timeout(400)
    before = page.evaluate("facecastLive.received")
    page.wait_for_timeout(1000)
    assert page.evaluate("facecastLive.received") - before <= 1
    page.click("#pause")  # resume
    page.wait_for_function(f"facecastLive.received > {before + 10}", timeout=30_000)
    page.click("#neutral")
    page.wait_for_function("facecastLive.messages.some(m => m.type === 'state' && m.reset)", timeout=10_000)
