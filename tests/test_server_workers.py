"""Long jobs cannot starve sessions: a real `facecast serve` with a single thread for long work
(FACECAST_WORKERS=1) still starts a streaming session, and streams it, while a long POST /generate
holds that thread."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from facecast.media import fmp4
from support.server_process import served

LONG_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs home again. " * 6  # ~30 s of speech


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("workers-server")
    with served(data, {"FACECAST_WORKERS": "1"}) as server:
        with httpx.Client(base_url=server.url, timeout=300.0) as c:
            yield c


def tts_count(client) -> int:
    return client.get("/stats").json()["latency_ms"].get("tts_ms", {}).get("count", 0)


def start_render(client) -> dict:
    """POST /generate of LONG_TEXT on a thread; returns {"thread", "done_at", "status"} (monotonic s)."""
    result: dict = {}

    def render():
        response = client.post("/generate", data={"text": LONG_TEXT})
        result.update(done_at=time.monotonic(), status=response.status_code, size=len(response.content))

    result["thread"] = threading.Thread(target=render, daemon=True)
    result["thread"].start()
    return result


def first_media_at(client, stream_url: str) -> float:
    """Monotonic time (s) at which the stream's first moof+mdat arrived."""
    reader = fmp4.BoxReader()
    with client.stream("GET", stream_url) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            if any(kind == b"mdat" for kind, _ in reader.feed(chunk)):
                return time.monotonic()
    raise AssertionError("the stream ended without a media segment")


def test_a_session_starts_while_a_long_render_holds_every_long_job_thread(client):
    before = tts_count(client)
    render = start_render(client)
    deadline = time.monotonic() + 60
    while tts_count(client) == before:  # the render has synthesised its speech: it is rendering now
        assert time.monotonic() < deadline and render["thread"].is_alive(), render
        time.sleep(0.05)
    sent = time.monotonic()
    session = client.post("/sessions", data={"text": "Still quick, however busy the long jobs are."})
    created = time.monotonic()
    assert session.status_code == 201, session.text
    streaming = first_media_at(client, session.json()["stream_url"])
    render["thread"].join(300)
    assert render["status"] == 200 and render["size"] > 0, render
    assert render["done_at"] - streaming > 1.0, (
        f"the session waited for the render: created {created - sent:.2f} s and first media "
        f"{streaming - sent:.2f} s after the request, the render ended {render['done_at'] - sent:.2f} s after it")
