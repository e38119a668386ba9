"""WebRTC between aiortc and headless Chromium on a loopback-only host, inside the private network
namespace of support.netns (see docs/webrtc.md, "Testing WebRTC on this machine").

An in-process aiortc peer (its event loop on a thread started inside the namespace) sends solid
colour video; Chromium loads a page from `python -m http.server` in the namespace (a page set with
page.set_content or a data: URL has an opaque origin, and Chromium gathers no ICE candidate at all
for it), receives the track and reports the presented frames' size and colour. Every wait is for a
condition, with a generous deadline.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from support.chromium import browser_fixture, checked_page, descendants
from support.netns import namespace_fixture
from support.waiting import within

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 320, 240
COLOUR = (224, 48, 96)  # RGB of every sent frame; far from black, white and grey
COLOUR_TOLERANCE = 16  # per channel, after RGB -> I420 -> VP8 -> RGB
FRAMES_TO_SEE = 5  # presented frames before the colour is read
TIMEOUT_S = 60.0  # s for any one condition (seconds when idle; generous for a loaded CI machine)

ns = namespace_fixture()

PAGE = """<!doctype html>
<html><body><video id="v" autoplay muted playsinline></video><canvas id="c"></canvas><script>
let pc;
window.makeOffer = async () => {
  pc = new RTCPeerConnection({iceServers: []});
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.ontrack = (e) => { document.getElementById('v').srcObject = new MediaStream([e.track]); };
  const gathered = new Promise((resolve) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered;  // no trickle: the offer carries every candidate
  return pc.localDescription.sdp;
};
window.acceptAnswer = (sdp) => pc.setRemoteDescription({type: 'answer', sdp});
window.waitForFrames = (count, timeoutMs) => new Promise((resolve, reject) => {
  const video = document.getElementById('v');
  let seen = 0;
  const timer = setTimeout(() => reject(new Error(
    `${seen} frames presented in ${timeoutMs} ms; ice ${pc.iceConnectionState}, connection ${pc.connectionState}`)),
    timeoutMs);
  const onFrame = (now, meta) => {
    if (++seen < count) { video.requestVideoFrameCallback(onFrame); return; }
    clearTimeout(timer);
    const canvas = document.getElementById('c');
    canvas.width = meta.width; canvas.height = meta.height;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    ctx.drawImage(video, 0, 0);
    const px = ctx.getImageData(0, 0, meta.width, meta.height).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < px.length; i += 4) { sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2]; }
    const n = px.length / 4;
    resolve({width: meta.width, height: meta.height, videoWidth: video.videoWidth,
             mean: sum.map((s) => s / n)});
  };
  video.requestVideoFrameCallback(onFrame);
});
window.selectedPair = async () => {
  const stats = [...(await pc.getStats()).values()];
  const byId = Object.fromEntries(stats.map((s) => [s.id, s]));
  const transport = stats.find((s) => s.type === 'transport');
  const pair = byId[transport.selectedCandidatePairId];
  return {local: byId[pair.localCandidateId].address, remote: byId[pair.remoteCandidateId].address,
          state: pair.state};
};
</script></body></html>
"""


def _candidate_addresses(sdp: str) -> set[str]:
    """The addresses of the `a=candidate` lines (field 5 of RFC 8839's candidate-attribute)."""
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


@pytest.fixture(scope="module")
def page_url(ns, tmp_path_factory):
    """`python -m http.server` in the namespace, serving PAGE at http://127.1.0.1:<port>/."""
    root = tmp_path_factory.mktemp("netns-www")
    (root / "index.html").write_text(PAGE)
    with socket.socket() as sock:  # the namespace is private: nothing else can take the port meanwhile
        sock.bind((ns.addresses[0], 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", ns.addresses[0],
                               "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{ns.addresses[0]}:{port}/"
    try:
        assert within(TIMEOUT_S, lambda: _http_ok(url)), f"http.server did not answer at {url}"
        yield url
    finally:
        server.terminate()
        server.wait(timeout=TIMEOUT_S)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status == 200
    except OSError:
        return False


browser = browser_fixture()


@pytest.fixture
def page(browser, page_url):
    with checked_page(browser, page_url) as page:
        yield page


@pytest.fixture
def peer_loop(ns):
    """An asyncio loop on a thread started here, so its sockets (aiortc's) are in the namespace."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="aiortc-peer", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=TIMEOUT_S)
    loop.close()


def _run(loop: asyncio.AbstractEventLoop, coro):
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=TIMEOUT_S)


def _solid_colour_track():
    import numpy as np
    from aiortc import VideoStreamTrack
    from av import VideoFrame

    class SolidColourTrack(VideoStreamTrack):
        """WIDTH x HEIGHT frames of COLOUR at VideoStreamTrack's 30 fps."""

        async def recv(self) -> VideoFrame:
            pts, time_base = await self.next_timestamp()
            frame = VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), COLOUR, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(time_base)
            return frame

    return SolidColourTrack()


async def _answer(offer_sdp: str):
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    pc.addTrack(_solid_colour_track())
    await pc.setLocalDescription(await pc.createAnswer())  # gathers every candidate first
    return pc, pc.localDescription.sdp


def test_everything_started_here_is_in_the_namespace(ns, browser, page_url):
    assert ns.thread_inside()
    ours = {}  # Playwright's driver, Chromium's processes, http.server: pid -> command line
    for pid in descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited meanwhile
        if any(word in cmdline for word in ("playwright", "chromium", "http.server")):
            ours[pid] = cmdline
    for word in ("playwright", "chromium", "http.server"):
        assert any(word in cmdline for cmdline in ours.values()), (word, ours)
    outside = {pid: cmdline for pid, cmdline in ours.items() if Path(f"/proc/{pid}").exists() and not ns.contains(pid)}
    assert not outside, outside
    assert _http_ok(page_url)


def test_chromium_offers_vp8_and_h264(page):
    offer = page.evaluate("makeOffer()")
    rtpmap = [line for line in offer.splitlines() if line.startswith("a=rtpmap:")]
    assert any("VP8/90000" in line for line in rtpmap)
    assert any("H264/90000" in line for line in rtpmap)
    assert "profile-level-id=42e01f" in offer  # constrained baseline 3.1, what browsers all decode


def test_chromium_receives_aiortc_video(ns, page, peer_loop):
    offer = page.evaluate("makeOffer()")
    assert _candidate_addresses(offer) == set(ns.addresses), offer  # 127.1.x on the veth; never 127.0.0.1
    pc, answer = _run(peer_loop, _answer(offer))
    try:
        assert _candidate_addresses(answer) == set(ns.addresses), answer  # aioice skips 127.0.0.1 too
        page.evaluate("(sdp) => acceptAnswer(sdp)", answer)
        seen = page.evaluate("([n, ms]) => waitForFrames(n, ms)", [FRAMES_TO_SEE, int(TIMEOUT_S * 1000)])
        assert (seen["width"], seen["height"], seen["videoWidth"]) == (WIDTH, HEIGHT, WIDTH), seen
        assert all(abs(got - want) <= COLOUR_TOLERANCE for got, want in zip(seen["mean"], COLOUR)), seen
        pair = page.evaluate("selectedPair()")
        assert pair["state"] == "succeeded" and {pair["local"], pair["remote"]} <= set(ns.addresses), json.dumps(pair)
    finally:
        _run(peer_loop, pc.close())
