"""The web client end to end in real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): type text, watch the avatar play through Media Source Extensions with sound.

Needs scripts/install-browser.sh and requirements/test-web.txt (scripts/install.sh --test)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from support.server_process import served

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "web-token-0123456789"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
MSE_TYPE = 'video/mp4; codecs="avc1.42C01E, mp4a.40.2"'  # what x264 ultrafast + AAC-LC give
GRACE_S = 60.0  # s a session without readers lives on (FACECAST_SESSION_GRACE_S)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("web-server")
    # Sessions without a reader are kept GRACE_S, so /stats still shows a stopped one.
    with served(data, {"FACECAST_API_TOKEN": TOKEN, "FACECAST_SESSION_GRACE_S": str(GRACE_S)}) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: run scripts/install-browser.sh")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements/test-web.txt")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/?token={TOKEN}")
    page.wait_for_function("document.querySelector('#avatar').options.length > 0")
    yield page
    page.close()
    assert not errors, errors


def test_chromium_plays_h264_and_aac_through_mse(page):
    assert page.evaluate(f"MediaSource.isTypeSupported('{MSE_TYPE}')")


def test_typed_text_plays_with_sound(page, tmp_path):
    page.fill("#text", "Hello from a real browser. The avatar should talk now.")
    page.click("#speak")
    page.wait_for_function("window.facecast.firstFrameMs !== null", timeout=15_000)
    page.wait_for_function("document.querySelector('#video').currentTime > 1.0", timeout=15_000)
    video = page.evaluate("""() => { const v = document.querySelector('#video');
        return {width: v.videoWidth, height: v.videoHeight, audio: v.webkitAudioDecodedByteCount,
                error: v.error && v.error.message, mime: window.facecast.mime,
                status: document.querySelector('#status').textContent}; }""")
    assert (video["width"], video["height"]) == (512, 512) and video["error"] is None
    assert video["audio"] > 0, "the audio track is decoded"
    assert video["mime"] == MSE_TYPE
    assert "first frame" in video["status"] and "frames/s" in video["status"]
    shot = page.screenshot(path=str(tmp_path / "web_speaking.png"))
    assert shot.startswith(b"\x89PNG")
    # Speak is locked while the clip streams in, and unlocks once all of it has arrived.
    page.wait_for_function("!document.querySelector('#speak').disabled", timeout=15_000)


TRIM_WHOLE_CLIP = """async () => {
    const form = new FormData();
    form.append("text", "A clip long enough to drop some of it while the rest is still arriving.");
    const session = await (await api("/sessions", { method: "POST", body: form })).json();
    const response = await api(session.stream_url);
    const media = new MediaSource();
    document.createElement("video").src = URL.createObjectURL(media);
    await new Promise((resolve) => media.addEventListener("sourceopen", resolve, { once: true }));
    const buffer = media.addSourceBuffer(response.headers.get("content-type"));
    const listening = { updateend: 0, error: 0 };  // listeners added minus removed
    const add = buffer.addEventListener.bind(buffer), drop = buffer.removeEventListener.bind(buffer);
    buffer.addEventListener = (type, f, o) => { listening[type] += 1; add(type, f, o); };
    buffer.removeEventListener = (type, f, o) => { listening[type] -= 1; drop(type, f, o); };
    let trims = 0;
    const remove = buffer.remove.bind(buffer);
    buffer.remove = (start, end) => { trims += 1; remove(start, end); };
    const reader = response.body.getReader();
    let appends = 0, busyAfterTrim = 0;
    for (;;) {
        const { value, done } = await reader.read();
        if (done) { break; }
        await append(buffer, value);
        appends += 1;
        const newest = buffer.buffered.length ? buffer.buffered.end(0) : 0;  // s; empty until a keyframe
        await trimPlayed(buffer, newest, 0.2);  // keep 0.2 s behind the newest media
        if (buffer.updating) { busyAfterTrim += 1; }
    }
    return { appends, trims, busyAfterTrim, listening };
}"""


def test_trimming_played_video_waits_for_the_source_buffer(page):
    """trimPlayed() resolves only after SourceBuffer.remove() is done, so the next appendBuffer
    never meets a busy buffer, and appends and trims leave no listeners behind."""
    result = page.evaluate(TRIM_WHOLE_CLIP)
    assert result["trims"] >= 1 and result["appends"] > result["trims"], result  # appends went on after trims
    assert result["busyAfterTrim"] == 0, result
    assert result["listening"] == {"updateend": 0, "error": 0}, result


LONG_TEXT = " ".join(["This talk is long on purpose, so that the test can stop it well before the avatar has said "
                      "all of it."] * 10)  # about a minute of speech: far from rendered when Stop is clicked
STOPPED = """() => { const v = document.querySelector('#video');
    return v.paused && !document.querySelector('#speak').disabled && !document.querySelector('#speak-file').disabled
        && document.querySelector('#stop').disabled
        && document.querySelector('#status').textContent.toLowerCase().includes('stopped'); }"""


def session_stats(server, sid: str) -> dict | None:
    """The session's entry in GET /stats, or None once the server has forgotten it."""
    stats = httpx.get(f"{server.url}/stats", headers=server.headers, timeout=5.0).json()
    return next((s for s in stats["sessions"] if s["id"] == sid), None)


def assert_not_generating(server, sid: str, settle_s: float = 0.5, watch_s: float = 1.0) -> None:
    """The session has lost its reader and makes no more frames. It is still listed (the server
    keeps it GRACE_S). A batch being rendered as the reader left is finished and kept, so the frame
    count is first awaited to hold still for `settle_s`, then watched for `watch_s` more."""
    deadline = time.monotonic() + 5.0
    info = session_stats(server, sid)
    while info is None or info["readers"] > 0:
        assert info is not None, f"session {sid} was forgotten within {GRACE_S:g} s"
        assert time.monotonic() < deadline, f"the server still has a reader of {sid}: {info}"
        time.sleep(0.1)
        info = session_stats(server, sid)
    frames, since = info["frames"], time.monotonic()
    while time.monotonic() - since < settle_s:
        assert time.monotonic() < deadline, f"session {sid} keeps making frames without a reader: {info}"
        time.sleep(0.1)
        info = session_stats(server, sid)
        assert info is not None, f"session {sid} was forgotten within {GRACE_S:g} s"
        if info["frames"] != frames:
            frames, since = info["frames"], time.monotonic()
    time.sleep(watch_s)  # the claim is that nothing happens: watch for a while
    after = session_stats(server, sid)
    assert after is not None, f"session {sid} was forgotten within {GRACE_S:g} s"
    assert after["frames"] == frames, (info, after)
    assert after["state"] != "finished", after  # it stopped partway, not because the clip was done


def start_long_talk(page) -> str:
    page.fill("#text", LONG_TEXT)
    page.click("#speak")
    page.wait_for_function("window.facecast.firstFrameMs !== null && window.facecast.session !== null",
                           timeout=15_000)
    assert page.is_disabled("#speak") and page.is_enabled("#stop")
    return page.evaluate("window.facecast.session")


def test_stop_ends_the_stream_and_unlocks_the_page(page, server):
    """Stop, clicked while a long clip streams: within 2 s the video is paused, the buttons are
    enabled and the status says so; the server stops generating for the aborted stream."""
    assert page.is_disabled("#stop")  # nothing plays yet
    assert page.get_by_role("button", name="Stop").count() == 1
    sid = start_long_talk(page)
    page.click("#stop")
    page.wait_for_function(STOPPED, timeout=2_000)
    assert page.evaluate("window.facecast.phase") == "stopped" and page.is_hidden("#error")
    shown = page.evaluate("document.querySelector('#video').currentTime")
    page.wait_for_timeout(500)
    assert page.evaluate("document.querySelector('#video').paused"), "the video started again"
    assert page.evaluate("document.querySelector('#video').currentTime") == shown
    assert_not_generating(server, sid)
    page.fill("#text", "Speaking again after a stop.")
    page.click("#speak")
    page.wait_for_function("window.facecast.firstFrameMs !== null", timeout=15_000)
    page.wait_for_function("!document.querySelector('#video').paused", timeout=5_000)
    assert page.is_hidden("#error")


def test_a_new_speak_replaces_the_running_one(page, server):
    """speakText() while a stream runs (stopCurrent) aborts the old stream and plays the new one;
    the old download's end does not unlock the page while the new one streams."""
    first = start_long_talk(page)
    page.fill("#text", LONG_TEXT.replace("on purpose", "again"))
    page.evaluate("() => { speakText(); }")
    page.wait_for_function(f"window.facecast.session !== null && window.facecast.session !== '{first}' "
                           "&& window.facecast.firstFrameMs !== null", timeout=15_000)
    second = page.evaluate("window.facecast.session")
    assert page.is_disabled("#speak") and page.is_enabled("#stop") and page.is_hidden("#error")
    assert_not_generating(server, first)
    assert page.is_disabled("#speak"), "the first stream's end unlocked the page during the second"
    assert session_stats(server, second)["readers"] == 1
    page.click("#stop")
    page.wait_for_function(STOPPED, timeout=2_000)
    assert_not_generating(server, second)


def test_server_errors_are_shown_and_the_ui_stays_usable(page, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are notes, not a portrait")
    page.set_input_files("#avatar-file", str(not_an_image))
    page.click("#avatar-upload")
    page.wait_for_selector("#error:not([hidden])")
    assert "415" in page.text_content("#error") and "not an image or video" in page.text_content("#error")
    assert not page.is_disabled("#avatar-upload") and not page.is_disabled("#speak")
    page.fill("#voice", "no-such-voice")
    page.click("#speak")
    page.wait_for_function("document.querySelector('#error').textContent.includes('voice')")
    assert not page.is_disabled("#speak")
    page.fill("#voice", "en")
    page.fill("#text", "Still working.")
    page.click("#speak")
    page.wait_for_function("window.facecast.firstFrameMs !== null", timeout=15_000)
    assert page.is_hidden("#error")


def test_advanced_video_steps(page, tmp_path):
    """The advanced section renders through POST /generate: a refused step is shown and the UI
    stays usable; a new background plays as a whole file."""
    import cv2
    import numpy as np

    page.click("#advanced > summary")
    page.check("#opt-stabilize")  # the default avatar is a photo: refused
    page.fill("#text", "Steady, please.")
    page.click("#speak")
    page.wait_for_function("document.querySelector('#error').textContent.includes('still image')", timeout=30_000)
    assert not page.is_disabled("#speak")
    page.uncheck("#opt-stabilize")
    background = tmp_path / "green.png"
    cv2.imwrite(str(background), np.full((90, 160, 3), (40, 200, 40), np.uint8))
    page.set_input_files("#background-file", str(background))
    page.click("#speak")
    page.wait_for_function("document.querySelector('#video').currentTime > 0.5", timeout=60_000)
    shown = page.evaluate("""() => { const v = document.querySelector('#video');
        const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext('2d'); g.drawImage(v, 0, 0);
        return {width: v.videoWidth, pixel: Array.from(g.getImageData(4, 4, 1, 1).data),
                status: document.querySelector('#status').textContent, phase: window.facecast.phase}; }""")
    assert shown["width"] == 512 and shown["phase"] == "playing"
    r, g, b, _ = shown["pixel"]
    assert g > 150 and r < 100 and b < 100, shown  # the corner shows the new background
    assert "rendered in" in shown["status"]
    assert page.is_hidden("#error") and not page.is_disabled("#speak")
    assert page.screenshot(path=str(tmp_path / "web_advanced.png")).startswith(b"\x89PNG")
    page.click("#background-clear")
    assert page.evaluate("document.querySelector('#background-file').files.length") == 0
