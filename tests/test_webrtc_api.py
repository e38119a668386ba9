"""POST /sessions/{id}/webrtc and friends against a real `facecast serve`, without a browser or a
network: offers made by aiortc in this process (createOffer needs no ICE candidate), and bad input,
each answered with a 4xx and a `detail` that names the problem while the server stays up. The media
itself is tested end to end in Chromium by test_webrtc_browser.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from support.server_process import assert_alive, client_fixture, detail, served

TOKEN = "webrtc-api-token-0123456789"
TIMEOUT_S = 60.0  # s per request (the first offer imports aiortc's codecs; a loaded 2-core machine)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("webrtc-api"), {"FACECAST_API_TOKEN": TOKEN}) as proc:
        yield proc


client = client_fixture(timeout_s=TIMEOUT_S)


@pytest.fixture(scope="module")
def session_id(client) -> str:
    response = client.post("/sessions", data={"live": "true"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def make_offer(video: bool = True, audio: bool = True) -> str:
    """A receive-only SDP offer from aiortc (no candidates: it is never connected)."""
    from aiortc import RTCPeerConnection

    async def offer() -> str:
        pc = RTCPeerConnection()
        try:
            if video:
                pc.addTransceiver("video", direction="recvonly")
            if audio:
                pc.addTransceiver("audio", direction="recvonly")
            return (await pc.createOffer()).sdp
        finally:
            await pc.close()

    return asyncio.run(offer())


@pytest.fixture(scope="module")
def offer() -> str:
    return make_offer()


def post_json(client, session_id: str, body) -> httpx.Response:
    return client.post(f"/sessions/{session_id}/webrtc", json=body)


def post_sdp(client, session_id: str, sdp: str, content_type: str = "application/sdp") -> httpx.Response:
    return client.post(f"/sessions/{session_id}/webrtc", content=sdp.encode(), headers={"Content-Type": content_type})


def test_ice_servers_are_none_by_default(client):
    response = client.get("/webrtc/ice-servers")
    assert response.status_code == 200 and response.json() == {"iceServers": []}, response.text


def test_a_json_offer_is_answered_and_hung_up(client, session_id, offer):
    response = post_json(client, session_id, {"sdp": offer, "type": "offer"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["type"] == "answer" and body["sdp"].startswith("v=0") and "m=video" in body["sdp"]
    assert body["location"] == f"/sessions/{session_id}/webrtc/{body['peer_id']}" == response.headers["location"]
    peers = client.get(f"/sessions/{session_id}").json()["webrtc_peers"]
    assert [(p["id"], p["codec"]) for p in peers] == [(body["peer_id"], "h264")], peers
    assert client.get(f"/sessions/{session_id}").json()["webrtc_peers_ended"] == []
    assert client.delete(body["location"]).json() == {"deleted": body["peer_id"]}
    info = client.get(f"/sessions/{session_id}").json()
    assert info["webrtc_peers"] == [], info
    assert [(p["id"], p["state"]) for p in info["webrtc_peers_ended"]] == [(body["peer_id"], "closed")], info
    assert "not connected" in detail(client.delete(body["location"]), 404)


def test_a_whep_offer_gets_the_sdp_and_a_location(client, session_id, offer):
    response = post_sdp(client, session_id, offer)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    assert response.text.startswith("v=0") and "m=video" in response.text
    location = response.headers["location"]
    assert location.startswith(f"/sessions/{session_id}/webrtc/")
    assert client.delete(location).status_code == 200
    assert client.get(f"/sessions/{session_id}").json()["webrtc_peers"] == []


@pytest.mark.parametrize("body, words", [
    ("this is not SDP", "not SDP"),
    ("v=0\r\nthis is not SDP either\r\n", "SDP"),
])
def test_garbage_sdp_is_400(client, session_id, body, words):
    assert words in detail(post_sdp(client, session_id, body), 400)
    assert words in detail(post_json(client, session_id, {"sdp": body, "type": "offer"}), 400)
    assert_alive(client)


def test_json_without_sdp_or_not_json_is_400(client, session_id):
    assert '"sdp"' in detail(post_json(client, session_id, {"type": "offer"}), 400)
    assert '"sdp"' in detail(post_json(client, session_id, {"sdp": 42, "type": "offer"}), 400)
    assert '"sdp"' in detail(post_json(client, session_id, ["v=0"]), 400)
    not_json = client.post(f"/sessions/{session_id}/webrtc", content=b"{sdp: v=0",
                           headers={"Content-Type": "application/json"})
    assert "not JSON" in detail(not_json, 400)
    assert_alive(client)


def test_an_answer_instead_of_an_offer_is_400(client, session_id, offer):
    text = detail(post_json(client, session_id, {"sdp": offer, "type": "answer"}), 400)
    assert "'answer'" in text and "offer" in text
    assert client.get(f"/sessions/{session_id}").json()["webrtc_peers"] == []


def test_an_offer_without_video_is_400(client, session_id):
    text = detail(post_json(client, session_id, {"sdp": make_offer(video=False), "type": "offer"}), 400)
    assert "video" in text
    assert client.get(f"/sessions/{session_id}").json()["webrtc_peers"] == []
    assert_alive(client)


def test_an_offer_without_a_codec_in_common_is_400(client, session_id, offer):
    vp9_only = offer.replace("VP8/90000", "VP9/90000").replace("H264/90000", "AV1/90000")
    text = detail(post_json(client, session_id, {"sdp": vp9_only, "type": "offer"}), 400)
    assert "codec" in text
    assert client.get(f"/sessions/{session_id}").json()["webrtc_peers"] == []
    assert_alive(client)


def test_an_unknown_session_is_404(client, offer):
    assert "nosuchsession" in detail(post_json(client, "nosuchsession", {"sdp": offer, "type": "offer"}), 404)
    assert "nosuchsession" in detail(client.delete("/sessions/nosuchsession/webrtc/somepeer"), 404)


def test_an_unknown_peer_is_404(client, session_id):
    assert "not connected" in detail(client.delete(f"/sessions/{session_id}/webrtc/nosuchpeer"), 404)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_wrong_content_type_is_415(client, session_id, offer, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    request = client.build_request("POST", f"/sessions/{session_id}/webrtc", content=offer.encode(), headers=headers)
    assert request.headers.get("Content-Type") == content_type  # httpx adds none for raw bytes
    text = detail(client.send(request), 415)
    assert "application/sdp" in text and "application/json" in text
    assert_alive(client)


def test_the_token_is_required(server, session_id, offer):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as anonymous:
        detail(anonymous.post(f"/sessions/{session_id}/webrtc", json={"sdp": offer, "type": "offer"}), 401)
        detail(anonymous.post(f"/sessions/{session_id}/webrtc", content=offer.encode(),
                              headers={"Content-Type": "application/sdp"}), 401)
        detail(anonymous.delete(f"/sessions/{session_id}/webrtc/somepeer"), 401)
        detail(anonymous.get("/webrtc/ice-servers"), 401)
        wrong = {"Authorization": "Bearer not-the-token"}
        detail(anonymous.post(f"/sessions/{session_id}/webrtc", json={"sdp": offer, "type": "offer"},
                              headers=wrong), 401)


def test_the_server_is_still_up(client, server):
    assert_alive(client)
    assert "Traceback" not in server.output(), server.output()
