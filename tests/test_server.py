"""The HTTP API against a real `facecast serve` (uvicorn, loopback, free port): every endpoint, and
every bad input answered with a 4xx JSON detail while the server stays up."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import pytest
from conftest import portrait, speech, talking
from support.server_process import assert_alive, client_fixture, detail, served
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from facecast.errors import InvalidArgument
from facecast.media import fmp4

TOKEN = "test-token-0123456789"
UPLOAD_LIMIT_MB = 2
GRACE_S = 1.5
MAX_QUEUED_S = 10  # s of speech a live session may queue (FACECAST_MAX_QUEUED_S)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("server-data")
    env = {"FACECAST_API_TOKEN": TOKEN, "FACECAST_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB),
           "FACECAST_SESSION_GRACE_S": str(GRACE_S), "FACECAST_MAX_QUEUED_S": str(MAX_QUEUED_S)}
    with served(data, env, args=["--log-level", "info"]) as proc:
        yield proc
        assert TOKEN not in proc.output(), "the token reached the log"


client = client_fixture(timeout_s=30.0)


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def read_stream(client, session_id: str, seconds: float | None = None,
                past: int | None = None) -> list[tuple[bytes, bytes]]:
    """The boxes of /stream/{id} until it ends, `seconds` pass, or a video run starts at or after
    `past` (media time in the video track's timescale; at most 30 s of waiting)."""
    reader, boxes, start = fmp4.BoxReader(), [], time.monotonic()
    with client.stream("GET", f"/stream/{session_id}") as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith('video/mp4; codecs="avc1.')
        for chunk in response.iter_bytes():
            boxes += reader.feed(chunk)
            if seconds is not None and time.monotonic() - start > seconds:
                break
            if past is not None:
                runs = video_runs(boxes)
                if runs and runs[-1].start >= past:
                    break
                assert time.monotonic() - start < 30, "the stream never reached the media time asked for"
    return boxes


def video_runs(boxes) -> list[fmp4.RunInfo]:
    return [fmp4.read_moof(b)[fmp4.VIDEO_TRACK_ID] for k, b in boxes
            if k == b"moof" and fmp4.VIDEO_TRACK_ID in fmp4.read_moof(b)]


def decode(data: bytes) -> tuple[int, int]:
    """(video frames, audio samples) of an MP4 in memory."""
    with av.open(io.BytesIO(data)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(io.BytesIO(data)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    return frames, samples


# -- system ---------------------------------------------------------------------------------

def test_health_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["auth"] is True and ID_PATTERN.match(health["default_avatar"])
    schema = client.get("/openapi.json").json()
    for path in ("/health", "/stats", "/avatars", "/avatars/{avatar_id}", "/avatars/{avatar_id}/prepare",
                 "/generate", "/sessions", "/stream/{session_id}"):
        assert path in schema["paths"], path
    ok = schema["paths"]["/sessions"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/SessionOut")
    assert schema["paths"]["/stats"]["get"]["description"]


def test_openapi_describes_the_live_audio_websocket(client):
    """FastAPI lists no WebSockets: the protocol is in the description /docs shows."""
    description = client.get("/openapi.json").json()["info"]["description"]
    for words in ("WS /ws/sessions/{session_id}/audio?sample_rate=16000", "8000..96000", "16-bit little-endian PCM",
                  '{"type": "ready", "session"', '`{"type": "end"}` | `{"type": "ended"}`',
                  '`{"type": "interrupt"}` | `{"type": "interrupted"}`', '`{"type": "ping"}` | `{"type": "pong"}`',
                  '{"type": "error", "detail"', "up to 1 MiB", "code 1008", "code 1009",
                  f"more than {MAX_QUEUED_S} s of speech"):
        assert words in description, words


def test_stats_reports_stages_and_memory(client):
    client.post("/sessions", data={"text": "Statistics."})
    wanted, deadline = {"render_ms_per_frame", "encode_ms_per_frame", "tts_ms"}, time.monotonic() + 30
    while not wanted <= set((stats := client.get("/stats").json())["latency_ms"]):
        assert time.monotonic() < deadline, stats["latency_ms"]  # the session rendered and encoded a batch
        time.sleep(0.1)
    assert stats["memory"]["rss"] > 50
    assert set(stats["latency_ms"]["render_ms_per_frame"]) == {"count", "p50", "p95", "p99", "max"}
    assert stats["counters"]["frames"] > 0 and "avatar_memory_hits" in stats["cache"]
    assert "segments_kept" in stats["queues"]
    assert {"loop_ms", "stages_ms", "delivered_fps", "active_sessions"} <= set(stats["live"])


def test_unknown_route_and_method(client):
    assert "no such endpoint" in detail(client.get("/nope"), 404)
    assert "not allowed" in detail(client.put("/health"), 405)


# -- token --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/health", "/avatars", "/stats", "/", "/static/app.js", "/openapi.json"])
def test_every_endpoint_needs_the_token(server, path):
    bare = httpx.get(server.url + path)
    assert "API token" in detail(bare, 401)
    assert bare.headers["www-authenticate"] == "Bearer"
    assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong-token-xx"}).status_code == 401
    assert httpx.get(server.url + path, params={"token": TOKEN}).status_code == 200


def test_posts_and_websockets_need_the_token(server, client):
    assert httpx.post(server.url + "/sessions", data={"text": "hi"}).status_code == 401
    live = client.post("/sessions").json()
    with pytest.raises(InvalidStatus) as refused:  # the handshake itself is refused, not timed out
        connect(server.url.replace("http", "ws") + live["audio_ws_url"], open_timeout=30)
    assert refused.value.response.status_code == 403
    client.delete(f"/sessions/{live['id']}")


def test_page_passes_its_token_on(server):
    page = httpx.get(server.url + "/", params={"token": TOKEN}).text
    assert f'/static/app.js?token={TOKEN}' in page and "<video" in page


def test_docs_with_token_work_through_the_cookie(server):
    """A browser opening /docs?token= gets a cookie; Swagger UI's own fetch of /openapi.json carries only it."""
    with httpx.Client(base_url=server.url, timeout=30.0) as browser:
        docs = browser.get("/docs", params={"token": TOKEN})
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        assert "HttpOnly" in docs.headers["set-cookie"] and "SameSite=Strict" in docs.headers["set-cookie"]
        assert browser.get("/openapi.json").status_code == 200
        assert browser.get("/static/app.js").status_code == 200
        assert browser.get("/openapi.json", headers={"Origin": "http://evil.example"}).status_code == 401
        browser.cookies.clear()
        browser.cookies.set("facecast_auth", "0" * 64)
        assert "API token" in detail(browser.get("/openapi.json"), 401)


def test_websocket_takes_the_cookie(server, client):
    with httpx.Client(base_url=server.url, timeout=30.0) as browser:
        cookie = browser.get("/", params={"token": TOKEN}).headers["set-cookie"].split(";")[0]
    live = client.post("/sessions", data={"live": "true"}).json()
    url = server.url.replace("http", "ws") + live["audio_ws_url"] + "?sample_rate=16000"
    with connect(url, additional_headers={"Cookie": cookie, "Origin": server.url}) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
    with pytest.raises(InvalidStatus) as refused:  # a foreign Origin: the handshake is refused
        connect(url, additional_headers={"Cookie": cookie, "Origin": "http://evil.example"}, open_timeout=30)
    assert refused.value.response.status_code == 403
    client.delete(f"/sessions/{live['id']}")


def test_access_log_masks_the_token(server):
    httpx.get(server.url + "/x", params={"token": "secret"})
    httpx.get(server.url + "/x", params={"a": "1", "token": TOKEN})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.output().count("/x?") < 2:
        time.sleep(0.1)
    lines = [line for line in server.output().splitlines() if "/x?" in line]
    assert any('"GET /x?token=*** HTTP/1.1" 401' in line for line in lines), lines
    assert any('"GET /x?a=1&token=*** HTTP/1.1" 404' in line for line in lines), lines
    assert not any("secret" in line or TOKEN in line for line in lines), lines


# -- avatars ------------------------------------------------------------------------------------

def test_avatar_lifecycle(client):
    data = portrait("man_glasses_01.jpg").read_bytes()
    created = client.post("/avatars", files={"file": ("../../etc/passwd", data, "text/plain")})
    assert created.status_code == 201, created.text
    avatar = created.json()
    assert ID_PATTERN.match(avatar["id"]) and avatar["kind"] == "image" and not avatar["cached"]
    assert avatar["name"] == "passwd" and (avatar["width"], avatar["height"]) == (720, 720)
    again = client.post("/avatars", files={"file": ("other.jpg", data)})
    assert again.status_code == 200 and again.json()["id"] == avatar["id"] and again.json()["cached"]
    assert avatar["id"] in [a["id"] for a in client.get("/avatars").json()["avatars"]]
    assert client.get(f"/avatars/{avatar['id']}").json()["id"] == avatar["id"]
    assert client.post(f"/avatars/{avatar['id']}/prepare").json()["id"] == avatar["id"]
    clip = client.post("/generate", data={"avatar_id": avatar["id"], "text": "Glasses."})
    assert clip.status_code == 200 and decode(clip.content)[0] > 0
    assert client.delete(f"/avatars/{avatar['id']}").json() == {"deleted": avatar["id"]}
    assert "does not exist" in detail(client.get(f"/avatars/{avatar['id']}"), 404)
    assert_alive(client)


def test_default_avatar_cannot_be_deleted(client):
    default = client.get("/health").json()["default_avatar"]
    assert "default avatar" in detail(client.delete(f"/avatars/{default}"), 409)


def test_video_avatar(client, talking_clips):
    response = client.post("/avatars", files={"file": ("clip.bin", talking_clips[0].read_bytes()[:1_900_000])})
    if response.status_code == 413:
        pytest.skip("test clip is over the test upload limit")
    assert response.status_code in (200, 201), response.text
    assert response.json()["kind"] == "video" and response.json()["frames"] > 1


@pytest.mark.parametrize("name, payload, status, words", [
    ("noface.png", png(np.full((256, 256, 3), 127, np.uint8)), 422, "no face"),
    ("text.jpg", b"hello, I am not a picture at all" * 10, 415, "not an image or video"),
    ("broken.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, 400, "cannot be decoded"),
    ("empty.png", b"", 415, "empty"),
])
def test_bad_avatar_uploads(client, name, payload, status, words):
    message = detail(client.post("/avatars", files={"file": (name, payload)}), status)
    assert words in message and "/sources/" not in message
    assert_alive(client)


def test_oversize_upload_is_refused(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(UPLOAD_LIMIT_MB * 1024 * 1024 + 100_000)
    assert "limit" in detail(client.post("/avatars", files={"file": ("big.png", big)}), 413)
    assert "limit" in detail(client.post("/generate", files={"audio": ("big.wav", big)}), 413)
    assert_alive(client)


def test_oversize_chunked_upload_is_refused(client):
    def body():  # a well-formed multipart upload, sent chunked (no Content-Length)
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(UPLOAD_LIMIT_MB * 4):
            yield bytes(512 * 1024)
        yield b"\r\n--x--\r\n"

    response = client.post("/avatars", content=body(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert "limit" in detail(response, 413)
    assert_alive(client)


@pytest.mark.parametrize("bad_id", ["nope", "..%2Fx", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "%2E%2E", "a" * 300])
def test_unknown_and_path_like_ids(client, bad_id):
    for method, path in (("GET", f"/avatars/{bad_id}"), ("DELETE", f"/avatars/{bad_id}"),
                         ("POST", f"/avatars/{bad_id}/prepare"), ("GET", f"/sessions/{bad_id}"),
                         ("GET", f"/stream/{bad_id}"), ("DELETE", f"/sessions/{bad_id}"),
                         ("POST", f"/sessions/{bad_id}/say"), ("POST", f"/sessions/{bad_id}/interrupt")):
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"]
    assert "does not exist" in detail(client.post("/sessions", data={"avatar_id": "../x", "text": "hi"}), 404)
    assert_alive(client)


# -- /generate ----------------------------------------------------------------------------------

def test_generate_from_text(client):
    response = client.post("/generate", data={"text": "Hello from the server."})
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    frames, samples = decode(response.content)
    assert frames > 20 and samples > 0


def test_generate_from_audio(client):
    data = speech("zh_short_01_3s.wav").read_bytes()
    response = client.post("/generate", files={"audio": ("speech.bin", data)})
    assert response.status_code == 200
    frames, samples = decode(response.content)
    assert abs(frames - 3.4 * 25) <= 2 and samples > 3 * 16000


@pytest.mark.parametrize("fields, files, status, words", [
    ({}, None, 400, "give a 'text'"),
    ({"text": "a"}, {"audio": ("a.wav", b"RIFF0000WAVEfmt garbage")}, 400, "not both"),
    ({"text": "   "}, None, 400, "nothing to say"),
    ({"text": "x" * 6000}, None, 400, "at most"),
    ({"text": "?!...,;:--"}, None, 400, "nothing speakable in '?!...,;:--'"),  # the CLI's rule and message
    ({"text": "Hello <b>there</b>"}, None, 400, "markup '<b>'"),
    ({"text": "hi", "voice": "klingon-xx"}, None, 400, "voice"),
    ({}, {"audio": ("a.wav", b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(200))}, 400, "cannot be decoded"),
    ({}, {"audio": ("a.mp3", b"just some text, not audio" * 20)}, 415, "not an audio"),
    ({"avatar_id": "zzz", "text": "hi"}, None, 404, "does not exist"),
])
def test_generate_bad_input(client, fields, files, status, words):
    assert words in detail(client.post("/generate", data=fields, files=files), status)
    assert_alive(client)


def first_frame_and_count(data: bytes) -> tuple[np.ndarray, int]:
    """(first frame as (H, W, 3) uint8 BGR, frame count) of an MP4 in memory."""
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return frames[0], len(frames)


def test_generate_with_video_steps(client):
    """A talking clip as the avatar, stabilised, the mouth blended over time, on a new background."""
    clip = client.post("/avatars", files={"file": ("glasses.mp4", talking("woman_glasses_5s.mp4").read_bytes())})
    assert clip.status_code in (200, 201), clip.text
    green = np.zeros((90, 160, 3), np.uint8)
    green[:] = (40, 200, 40)
    response = client.post("/generate", data={"avatar_id": clip.json()["id"], "text": "A new background.",
                                              "stabilize": "true", "temporal": "true"},
                           files={"background": ("bg.png", png(green))}, timeout=180)
    assert response.status_code == 200, response.text
    first, count = first_frame_and_count(response.content)
    plain = client.post("/generate", data={"avatar_id": clip.json()["id"], "text": "A new background."},
                        timeout=120)
    plain_first, plain_count = first_frame_and_count(plain.content)
    assert count == plain_count and first.shape == plain_first.shape
    corner = first[: first.shape[0] // 8, : first.shape[1] // 8].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - (40, 200, 40)).max() < 25, corner  # the background was replaced
    assert np.abs(plain_first[: first.shape[0] // 8, : first.shape[1] // 8].reshape(-1, 3).mean(axis=0)
                  - (40, 200, 40)).max() > 40  # and was not green before
    assert client.get("/stats").json()["counters"]["generated_files_video_steps"] >= 1


def test_generate_video_steps_bad_input(client, server):
    default = client.get("/health").json()["default_avatar"]
    refused = detail(client.post("/generate", data={"avatar_id": default, "text": "hi", "stabilize": "true"}), 400)
    assert "still image" in refused and "stabilize" in refused and "sources" not in refused
    bad = {"background": ("bg.png", b"this is not a picture" * 10)}
    assert "background" in detail(client.post("/generate", data={"text": "hi"}, files=bad), 415)
    head = client.post("/avatars", files={"file": ("glasses.mp4", talking("woman_glasses_5s.mp4").read_bytes())})
    feet = detail(client.post("/generate", data={"avatar_id": head.json()["id"], "text": "hi", "footlock": "true"},
                              timeout=120), 422)
    assert "feet" in feet or "person" in feet
    assert "sources" not in feet
    leftovers = list((Path(server.env["FACECAST_SERVER_DIR"]) / "renders").glob("*"))
    assert not leftovers, leftovers  # no partial output or staging file stays behind
    assert_alive(client)


# -- sessions and streams -------------------------------------------------------------------------

def test_clip_session_streams_fragmented_mp4(client):
    session = client.post("/sessions", data={"text": "This sentence is long enough to need a few keyframes."})
    assert session.status_code == 201, session.text
    info = session.json()
    assert ID_PATTERN.match(info["id"]) and not info["live"] and info["stream_url"] == f"/stream/{info['id']}"
    boxes = read_stream(client, info["id"])
    assert [k for k, _ in boxes[:2]] == [b"ftyp", b"moov"]
    runs = video_runs(boxes)
    total = sum(len(r.durations) for r in runs)
    assert all(len(r.durations) <= 5 for r in runs), "segments hold at most 200 ms"
    keys = [r.start // 1000 for r in runs if r.keyframe]
    assert keys == list(range(0, total, 25)), "a keyframe opens a segment every second"
    frames, samples = decode(b"".join(b for _, b in boxes))
    assert frames == total and samples > 0
    done = client.get(f"/sessions/{info['id']}").json()
    assert done["state"] == "finished" and done["frames"] == total


def test_clip_session_from_audio(client):
    data = speech("en_radio_address_01_8s.wav").read_bytes()
    info = client.post("/sessions", files={"audio": ("radio.wav", data)}).json()
    boxes = read_stream(client, info["id"])
    assert sum(len(r.durations) for r in video_runs(boxes)) == 200


@pytest.mark.parametrize("fields, files, status, words", [
    ({"live": "false"}, None, 400, "clip session needs"),
    ({"text": "hi", "sample_rate": "100"}, None, 400, "sample_rate"),
    ({"text": "hi", "live": "maybe"}, None, 422, "live"),
    ({}, {"audio": ("x.wav", b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(100))}, 400, "cannot be decoded"),
])
def test_session_bad_input(client, fields, files, status, words):
    assert words in detail(client.post("/sessions", data=fields, files=files), status)
    assert_alive(client)


def test_second_reader_and_reconnect_join_at_a_keyframe(client):
    info = client.post("/sessions", data={"live": "true"}).json()
    first = read_stream(client, info["id"], past=30_000)  # 1.2 s of media made, however loaded the machine
    assert video_runs(first)[0].start == 0, "the first reader gets the stream from the start"
    with client.stream("GET", f"/stream/{info['id']}") as still_reading:
        second = read_stream(client, info["id"], seconds=1.2)
        assert still_reading.status_code == 200
    runs = video_runs(second)
    assert runs[0].keyframe and runs[0].start >= 25_000, "a new reader starts at a later keyframe"
    assert [r.start // 1000 for r in runs] == sorted(r.start // 1000 for r in runs)
    frames, _ = decode(b"".join(b for _, b in second))
    assert frames == sum(len(r.durations) for r in runs)
    client.delete(f"/sessions/{info['id']}")


def test_sessions_without_readers_stop(client):
    info = client.post("/sessions", data={"live": "true"}).json()
    read_stream(client, info["id"], seconds=0.5)
    deadline = time.monotonic() + GRACE_S + 5
    while client.get(f"/sessions/{info['id']}").status_code == 200:
        assert time.monotonic() < deadline, "an unread session kept generating"
        time.sleep(0.3)
    assert client.get("/stats").json()["counters"].get("sessions_reaped", 0) >= 1


def test_list_sessions(client):
    live = client.post("/sessions", data={"live": "true"}).json()
    listed = client.get("/sessions")
    assert listed.status_code == 200
    mine = [s for s in listed.json()["sessions"] if s["id"] == live["id"]]
    assert len(mine) == 1 and mine[0]["live"] and mine[0]["state"] in ("starting", "streaming")
    assert mine[0]["stream_url"] == f"/stream/{live['id']}"
    assert mine[0]["audio_ws_url"] == f"/ws/sessions/{live['id']}/audio"
    assert {"frames", "queued_speech_s", "commands_queued", "readers", "segments_kept"} <= set(mine[0])
    client.delete(f"/sessions/{live['id']}")
    assert live["id"] not in [s["id"] for s in client.get("/sessions").json()["sessions"]]


def test_say_and_interrupt_on_unknown_sessions(client):
    for path in ("/sessions/nope/say", "/sessions/nope/interrupt"):
        message = detail(client.post(path, data={"text": "hello"}), 404)
        assert "session 'nope' does not exist" in message, message
    assert_alive(client)


def test_delete_session_ends_its_stream(client):
    info = client.post("/sessions", data={"live": "true"}).json()
    assert client.delete(f"/sessions/{info['id']}").json() == {"deleted": info["id"]}
    assert client.get(f"/sessions/{info['id']}").status_code == 404


def test_say_and_interrupt_over_http(client):
    live = client.post("/sessions", data={"live": "true"}).json()
    said = client.post(f"/sessions/{live['id']}/say", data={"text": "Queued words."})
    assert said.status_code == 200 and said.json()["live"]
    assert client.post(f"/sessions/{live['id']}/interrupt").json()["state"] in ("starting", "streaming")
    clip = client.post("/sessions", data={"text": "A clip."}).json()
    assert "plays a clip" in detail(client.post(f"/sessions/{clip['id']}/say", data={"text": "x"}), 409)
    assert "give a 'text'" in detail(client.post(f"/sessions/{live['id']}/say"), 400)
    client.delete(f"/sessions/{live['id']}")


def wait_until_queued_below(client, session_id: str, seconds: float) -> None:
    deadline = time.monotonic() + 10
    while client.get(f"/sessions/{session_id}").json()["queued_speech_s"] >= seconds:
        assert time.monotonic() < deadline, "the queued speech never went down"
        time.sleep(0.1)


def test_say_is_bounded_by_seconds_of_queued_speech(client):
    live = client.post("/sessions", data={"live": "true"}).json()
    eight = {"audio": ("radio.wav", speech("en_radio_address_01_8s.wav").read_bytes())}
    with client.stream("GET", live["stream_url"]):  # a reader keeps the session from being reaped
        first = client.post(f"/sessions/{live['id']}/say", files=eight)
        assert first.status_code == 200 and first.json()["queued_speech_s"] > 7, first.text
        full = detail(client.post(f"/sessions/{live['id']}/say", files=eight), 503)
        assert f"limit of {MAX_QUEUED_S} s" in full and "radio.wav adds 8.0 s" in full, full
        long = {"audio": ("long.mp3", speech("en_male_02_19s.mp3").read_bytes())}
        alone = detail(client.post(f"/sessions/{live['id']}/say", files=long), 400)
        assert "long.mp3" in alone and f"{MAX_QUEUED_S} s a live session queues at most" in alone, alone
        client.post(f"/sessions/{live['id']}/interrupt")
        wait_until_queued_below(client, live["id"], 0.5)
        assert client.post(f"/sessions/{live['id']}/say", files=eight).status_code == 200, "room again"
    client.delete(f"/sessions/{live['id']}")
    assert_alive(client)


# -- live audio ---------------------------------------------------------------------------------

def ws_url(server, info) -> str:
    return server.url.replace("http", "ws") + info["audio_ws_url"] + f"?sample_rate=16000&token={TOKEN}"


def pcm16(path, seconds: float) -> bytes:
    """`seconds` of a speech file as mono 16 kHz signed 16-bit PCM."""
    from facecast.audio.decode import load_audio
    from facecast.audio.resampling import resample

    audio = load_audio(path)
    samples = resample(audio.samples, audio.sample_rate, 16000)[: int(seconds * 16000)]
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def test_live_audio_moves_the_mouth_and_interrupt_stops_it(server, client):
    info = client.post("/sessions", data={"live": "true"}).json()
    pcm = pcm16(speech("en_radio_address_02_8s.wav"), 2.0)
    with client.stream("GET", f"/stream/{info['id']}") as stream, connect(ws_url(server, info)) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        chunk = 640  # 20 ms
        for i in range(0, len(pcm), chunk + 1):  # odd sizes: samples straddle chunks
            ws.send(pcm[i:i + chunk + 1])
            time.sleep(0.015)
        ws.send(json.dumps({"type": "end"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ended"
        ws.send(pcm[:16000])
        ws.send(json.dumps({"type": "interrupt"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "interrupted"
        ws.send("not json")
        assert "JSON" in json.loads(ws.recv(timeout=5))["detail"]
        ws.send(json.dumps({"type": "dance"}))
        assert "unknown message" in json.loads(ws.recv(timeout=5))["detail"]
        reader, boxes, start = fmp4.BoxReader(), [], time.monotonic()
        for chunk_bytes in stream.iter_bytes():
            boxes += reader.feed(chunk_bytes)
            if time.monotonic() - start > 1.0:
                break
    stats = client.get("/stats").json()["latency_ms"]
    assert stats["live_chunk_to_frame_ms"]["count"] > 50
    assert stats["interrupt_to_closed_ms"]["count"] >= 1
    state = client.get(f"/sessions/{info['id']}").json()
    assert state["queued_speech_s"] < 0.5, "the interrupt dropped the queued audio"
    client.delete(f"/sessions/{info['id']}")


@pytest.mark.parametrize("query, words", [("sample_rate=5", "sample_rate"), ("sample_rate=abc", "not an integer")])
def test_live_audio_bad_rate(server, client, query, words):
    info = client.post("/sessions", data={"live": "true"}).json()
    url = server.url.replace("http", "ws") + info["audio_ws_url"] + f"?{query}&token={TOKEN}"
    with connect(url) as ws:
        message = json.loads(ws.recv(timeout=5))
    assert message["type"] == "error" and words in message["detail"]
    client.delete(f"/sessions/{info['id']}")
    assert_alive(client)


def test_live_audio_refuses_clips_unknown_ids_and_second_connections(server, client):
    clip = client.post("/sessions", data={"text": "Just a clip."}).json()
    with connect(ws_url(server, clip)) as ws:
        assert "live session" in json.loads(ws.recv(timeout=5))["detail"]
    with connect(ws_url(server, {"audio_ws_url": "/ws/sessions/nope/audio"})) as ws:
        assert "does not exist" in json.loads(ws.recv(timeout=5))["detail"]
    with pytest.raises(InvalidStatus, match="403"):  # no such route: the handshake is refused
        connect(ws_url(server, {"audio_ws_url": "/ws/sessions/..%2Fnope/audio"}))
    live = client.post("/sessions", data={"live": "true"}).json()
    with connect(ws_url(server, live)) as first:
        assert json.loads(first.recv(timeout=5))["type"] == "ready"
        with connect(ws_url(server, live)) as second:
            assert "already has an audio connection" in json.loads(second.recv(timeout=5))["detail"]
    client.delete(f"/sessions/{live['id']}")
    assert_alive(client)


def test_oversize_live_audio_chunks_are_refused_and_the_server_stays_up(server, client):
    info = client.post("/sessions", data={"live": "true"}).json()
    with client.stream("GET", info["stream_url"]), connect(ws_url(server, info), max_size=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(bytes(1024 * 1024 + 2))  # over the 1 MiB chunk limit, within the WebSocket frame limit
        refused = json.loads(ws.recv(timeout=10))
        assert refused["type"] == "error" and "over the limit of 1048576 bytes (1 MiB)" in refused["detail"], refused
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "pong", "the connection stays open"
        ws.send(bytes(2 * 1024 * 1024))  # over the frame limit: the server closes with 1009
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
        assert client.get(f"/sessions/{info['id']}").json()["queued_speech_s"] == 0, "nothing oversize was queued"
        with connect(ws_url(server, info)) as again:
            assert json.loads(again.recv(timeout=5))["type"] == "ready", "the session takes a new connection"
    client.delete(f"/sessions/{info['id']}")
    assert_alive(client)


def test_serve_binds_loopback_by_default():
    from facecast.cli import build_parser
    from facecast.server.settings import ServerSettings

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and ServerSettings().host == "127.0.0.1"
    with pytest.raises(InvalidArgument, match="at least 8"):
        ServerSettings.from_env(token="short")
