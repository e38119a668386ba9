"""The web client's live call end to end: real headless Chromium watching a real `facecast serve`
over real WebRTC (fMP4 through MSE as the fallback), inside the private network namespace of
support.netns, where both can find each other on a loopback-only host.

Every wait is for a condition (page.wait_for_function, or polling the server), with a generous
deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import time

import httpx
import pytest

from support.chromium import browser_fixture
from support.netns import namespace_fixture
from support.server_process import served

pytestmark = pytest.mark.browser

TOKEN = "call-token-0123456789"
CONNECT_MS = 60_000  # ms for a call to show its first frame (about a second when idle)
SERVER_S = 30.0  # s for the server to reflect a change (milliseconds when idle)
SENTENCE = "Hello there. I am saying this during a live call."
LONG_TEXT = " ".join(["This sentence is repeated so that there is a lot of speech waiting in the queue."] * 6)

ns = namespace_fixture()


@pytest.fixture(scope="module")
def server(ns, tmp_path_factory):
    with served(tmp_path_factory.mktemp("call-server"), {"FACECAST_API_TOKEN": TOKEN}) as proc:
        yield proc


browser = browser_fixture()


@pytest.fixture
def open_page(browser, server):
    """open_page(transport=None, init_script=None) -> a page of the web client, avatars loaded.
    At the end: the call is hung up and the page had no script error."""
    pages: list = []
    errors: list[str] = []

    def open_(transport: str | None = None, init_script: str | None = None):
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if init_script:
            page.add_init_script(init_script)
        query = f"?token={TOKEN}" + (f"&transport={transport}" if transport else "")
        page.goto(f"{server.url}/{query}")
        page.wait_for_function("document.querySelector('#avatar').options.length > 0")
        pages.append(page)
        return page

    yield open_
    for page in pages:
        if not page.is_closed():
            page.evaluate("typeof hangUp === 'function' && hangUp(activeCall)")  # the page may be gone
            page.close()
    assert not errors, errors


def session(server, sid: str) -> dict | None:
    """GET /sessions/{sid}, or None once the server no longer has it."""
    response = httpx.get(f"{server.url}/sessions/{sid}", headers=server.headers, timeout=5.0)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def until(condition, seconds: float = SERVER_S, what: str = "the condition"):
    """Poll `condition()` every 0.1 s until it returns something truthy (returned); fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:g} s"
        time.sleep(0.1)


def call(page) -> dict:
    return page.evaluate("({...window.facecast.call})")


def start_call(page, transport: str = "webrtc") -> dict:
    """Click Start call and wait for the first frame over `transport`; returns window.facecast.call."""
    page.click("#call")
    page.wait_for_function(f"""() => {{ const c = window.facecast.call;
        return c.transport === '{transport}' && c.firstFrameMs !== null && c.state === 'connected'; }}""",
                           timeout=CONNECT_MS)
    return call(page)


def frames_go_on(page, more: int = 25) -> None:
    """At least `more` further frames are presented."""
    seen = page.evaluate("window.facecast.call.framesPresented")
    page.wait_for_function(f"window.facecast.call.framesPresented >= {seen + more}", timeout=CONNECT_MS)


def say(page, text: str) -> dict:
    """Speak text in the call; returns the session as /say answered it."""
    page.evaluate("window.facecast.call.said = null")
    page.fill("#text", text)
    page.click("#speak")
    page.wait_for_function("window.facecast.call.said !== null || !document.querySelector('#error').hidden",
                           timeout=CONNECT_MS)
    assert page.is_hidden("#error"), page.text_content("#error")
    return page.evaluate("window.facecast.call.said")


def hang_up(page, server, sid: str) -> None:
    """Click Hang up: the page is back to no call and the server forgets the session."""
    page.click("#call")
    page.wait_for_function("window.facecast.call.state === 'closed'", timeout=5_000)
    assert page.text_content("#call") == "Start call" and page.is_disabled("#interrupt")
    assert page.evaluate("document.querySelector('#video').srcObject === null")
    until(lambda: session(server, sid) is None, what=f"session {sid} being deleted")


def test_a_call_connects_over_webrtc_and_reports_its_stats(open_page, server):
    page = open_page("webrtc")
    start_call(page)
    page.wait_for_function("""() => { const c = window.facecast.call;
        return c.codec !== null && c.rttMs !== null && c.fps > 15 && c.audioSamples > 0; }""", timeout=CONNECT_MS)
    state = call(page)
    assert state["codec"] in ("H264", "VP8"), state
    assert 0 < state["firstFrameMs"] < CONNECT_MS and state["rttMs"] >= 0 and state["peerId"], state
    tracks = page.evaluate("""() => { const s = document.querySelector('#video').srcObject;
        return {video: s.getVideoTracks().length, audio: s.getAudioTracks().length,
                muted: document.querySelector('#video').muted, width: document.querySelector('#video').videoWidth}; }""")
    assert tracks == {"video": 1, "audio": 1, "muted": False, "width": 512}, tracks
    status = page.text_content("#status")
    for part in ("connected", "WebRTC", "first frame", "frames/s", "RTT", state["codec"]):
        assert part in status, status
    peers = until(lambda: session(server, state["sessionId"])["webrtc_peers"], what="the server listing the peer")
    assert [p["id"] for p in peers] == [state["peerId"]] and peers[0]["state"] == "connected", peers
    assert page.evaluate("window.facecast.session") is None, "a call creates no clip session"
    hang_up(page, server, state["sessionId"])


def test_text_is_said_in_the_call(open_page, server):
    page = open_page("webrtc")
    sid = start_call(page)["sessionId"]
    said = say(page, SENTENCE)
    assert said["id"] == sid and said["live"], said
    frames = page.evaluate("window.facecast.call.framesPresented")
    until(lambda: (info := session(server, sid))["queued_speech_s"] == 0 and info["commands_queued"] == 0,
          what="the queued speech being spoken")
    frames_go_on(page)
    assert page.evaluate("window.facecast.call.framesPresented") > frames
    assert page.evaluate("window.facecast.session") is None, "speaking in a call made a clip"
    assert page.is_enabled("#speak") and call(page)["state"] == "connected"
    hang_up(page, server, sid)


def test_interrupt_drops_the_queued_speech(open_page, server):
    page = open_page("webrtc")
    sid = start_call(page)["sessionId"]
    said = say(page, LONG_TEXT)
    assert said["queued_speech_s"] > 10, said  # far from spoken when the interrupt comes
    page.evaluate("window.facecast.call.said = null")
    page.click("#interrupt")
    page.wait_for_function("window.facecast.call.said !== null", timeout=10_000)  # /interrupt answered
    until(lambda: session(server, sid)["queued_speech_s"] == 0, seconds=5.0, what="the speech being dropped")
    frames_go_on(page)  # the avatar idles on
    assert page.is_hidden("#error")
    hang_up(page, server, sid)


def test_hang_up_closes_the_peer_and_the_session(open_page, server):
    page = open_page("webrtc")
    state = start_call(page)
    hang_up(page, server, state["sessionId"])
    sessions = httpx.get(f"{server.url}/sessions", headers=server.headers, timeout=5.0).json()["sessions"]
    assert not [s for s in sessions if s["webrtc_peers"]], sessions
    assert page.is_enabled("#call") and page.is_enabled("#speak") and page.is_enabled("#avatar")
    again = start_call(page)  # a second call on the same page
    assert again["sessionId"] != state["sessionId"] and again["framesPresented"] > 0
    hang_up(page, server, again["sessionId"])


def test_leaving_the_page_hangs_up(open_page, server):
    page = open_page("webrtc")
    sid = start_call(page)["sessionId"]
    page.goto("about:blank")
    until(lambda: session(server, sid) is None, what="the session being deleted at pagehide")


def test_a_forced_fmp4_call(open_page, server):
    page = open_page("fmp4")
    state = start_call(page, "fmp4")
    assert state["fallback"] is None and state["codec"].startswith("H264"), state
    page.wait_for_function("window.facecast.call.fps > 15", timeout=CONNECT_MS)
    info = session(server, state["sessionId"])
    assert info["webrtc_peers"] == [] and info["readers"] == 1, info
    say(page, SENTENCE)
    until(lambda: session(server, state["sessionId"])["queued_speech_s"] == 0, what="the speech being spoken")
    frames_go_on(page)
    assert "fMP4" in page.text_content("#status") and "fallback" not in page.text_content("#status")
    hang_up(page, server, state["sessionId"])


NO_WEBRTC = "window.RTCPeerConnection = function () { throw new Error('WebRTC is switched off in this test'); };"
NO_ANSWER = "RTCPeerConnection.prototype.setRemoteDescription = function () { return Promise.resolve(); };"
OFFER_REFUSED = "offer refused"


@pytest.mark.parametrize("failure", ["no RTCPeerConnection", "offer refused", "no frame"])
def test_a_failed_webrtc_call_falls_back_to_fmp4(open_page, server, failure):
    """RTCPeerConnection throws / the offer is answered 500 / the answer is never applied (so no
    frame comes): the call plays the session's fMP4 stream instead, and the page stays usable."""
    script = {"no RTCPeerConnection": NO_WEBRTC, "no frame": NO_ANSWER}.get(failure)
    page = open_page(init_script=script)
    if failure == OFFER_REFUSED:
        page.route("**/sessions/*/webrtc", lambda route: route.fulfill(
            status=500, content_type="application/json", body='{"detail": "refused by the test"}'))
    state = start_call(page, "fmp4")
    assert state["fallback"].startswith("WebRTC failed"), state
    assert "fMP4 fallback" in page.text_content("#status")
    assert page.is_hidden("#error") and page.is_enabled("#speak") and page.is_enabled("#interrupt")
    until(lambda: session(server, state["sessionId"])["webrtc_peers"] == [], what="the failed peer going")
    say(page, SENTENCE)
    frames_go_on(page)
    hang_up(page, server, state["sessionId"])
    page.fill("#text", "A clip after the call.")  # without a call, Speak text makes a clip again
    page.click("#speak")
    page.wait_for_function("window.facecast.firstFrameMs !== null && window.facecast.session !== null",
                           timeout=CONNECT_MS)
    page.click("#stop")


def test_without_the_fallback_a_failure_is_shown_and_the_page_stays_usable(open_page, server):
    page = open_page("webrtc", init_script=NO_WEBRTC)
    page.click("#call")
    page.wait_for_selector("#error:not([hidden])", timeout=CONNECT_MS)
    assert "switched off" in page.text_content("#error")
    state = call(page)
    assert state["state"] == "failed", state
    assert page.text_content("#call") == "Start call" and page.is_enabled("#call") and page.is_enabled("#speak")
    until(lambda: session(server, state["sessionId"]) is None, what="the failed call's session being deleted")


def test_talk_streams_the_microphone_into_the_call(open_page, server):
    """Holding Talk sends Chromium's fake microphone (a beep) as 16-bit PCM over the session's
    audio WebSocket; releasing it ends the utterance."""
    page = open_page("webrtc")
    sid = start_call(page)["sessionId"]
    frames = session(server, sid)["frames"]
    page.hover("#talk")
    page.mouse.down()
    page.wait_for_function("window.facecast.call.talkBytes > 48000", timeout=CONNECT_MS)  # 0.5 s at 48 kHz
    page.mouse.up()
    page.wait_for_function("window.facecast.call.talkReplies.includes('ended')", timeout=CONNECT_MS)
    replies = call(page)["talkReplies"]
    assert replies[0] == "ready" and "error" not in replies, replies
    assert page.is_hidden("#error")
    until(lambda: session(server, sid)["frames"] > frames + 25, what="frames made after talking")
    frames_go_on(page)
    hang_up(page, server, sid)
