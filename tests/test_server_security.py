"""The API token middleware and the log redaction, through the real FastAPI app (Starlette's TestClient;
no lifespan, so nothing heavy loads: /docs and /openapi.json need no runtime)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from facecast.server.app import create_app
from facecast.server.redact import TokenRedactor, install_log_redaction, redact_token
from facecast.server.security import COOKIE, cookie_digest
from facecast.server.settings import ServerSettings

TOKEN = "cookie-test-token-42"


def app_client(tmp_path, token: str | None) -> TestClient:
    """A TestClient (base http://testserver) of the facecast app with `token` required."""
    return TestClient(create_app(ServerSettings(token=token, data_dir=tmp_path, warmup=False)))


def test_docs_with_token_sets_a_cookie_that_opens_openapi(tmp_path):
    client = app_client(tmp_path, TOKEN)
    docs = client.get("/docs", params={"token": TOKEN})
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    cookie = docs.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={cookie_digest(TOKEN)};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and TOKEN not in cookie
    assert client.cookies.get(COOKIE) == cookie_digest(TOKEN)
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "facecast"
    assert "set-cookie" not in schema.headers, "only a ?token= request sets the cookie"


def test_wrong_cookie_is_refused(tmp_path):
    client = app_client(tmp_path, TOKEN)
    for value in (cookie_digest("another-token-42"), TOKEN, "", "x" * 64):
        client.cookies.set(COOKIE, value)
        refused = client.get("/openapi.json")
        assert refused.status_code == 401 and "API token" in refused.json()["detail"], value
    client.cookies.clear()
    assert client.get("/openapi.json").status_code == 401


def test_cookie_counts_only_on_same_origin_requests(tmp_path):
    client = app_client(tmp_path, TOKEN)
    client.cookies.set(COOKIE, cookie_digest(TOKEN))
    assert client.get("/openapi.json", headers={"Origin": "http://testserver"}).status_code == 200
    for origin in ("http://evil.example", "http://testserver:8081", "null"):
        assert client.get("/openapi.json", headers={"Origin": origin}).status_code == 401, origin
    assert client.get("/openapi.json", headers={"Origin": "http://evil.example",
                                                "Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_header_and_query_still_work_and_wrong_ones_set_no_cookie(tmp_path):
    client = app_client(tmp_path, TOKEN)
    by_header = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_header.status_code == 200 and "set-cookie" not in by_header.headers
    wrong = client.get("/docs", params={"token": "wrong-token-123"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", params={"token": TOKEN}).status_code == 200


def test_websocket_handshake_accepts_the_cookie(tmp_path):
    """The guard runs before the route: without a credential the handshake is closed (1008); with the
    cookie it reaches the live-portrait socket, which answers the bad mode itself."""
    from starlette.websockets import WebSocketDisconnect

    client = app_client(tmp_path, TOKEN)
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/ws/live?mode=bogus") as ws:
            ws.receive_text()
    assert refused.value.code == 1008 and refused.value.reason == "missing or wrong API token"
    client.cookies.set(COOKIE, cookie_digest(TOKEN))
    with client.websocket_connect("/ws/live?mode=bogus") as ws:
        answer = ws.receive_json()
    assert answer["type"] == "error" and answer["code"] == "bad_request", answer


def test_no_token_configured_is_unchanged(tmp_path):
    client = app_client(tmp_path, None)
    assert client.get("/openapi.json").status_code == 200
    docs = client.get("/docs", params={"token": TOKEN})
    assert docs.status_code == 200 and "set-cookie" not in docs.headers
    client.cookies.set(COOKIE, "anything")
    assert client.get("/openapi.json", headers={"Origin": "http://evil.example"}).status_code == 200


@pytest.mark.parametrize("text, expected", [
    ("/x?token=secret", "/x?token=***"),
    ("/x?a=1&token=secret&b=2", "/x?a=1&token=***&b=2"),
    ("/x?%74oken=secret", "/x?%74oken=***"),
    ("/x?token=", "/x?token=***"),
    ("/x?tokens=keep&mytoken=keep", "/x?tokens=keep&mytoken=keep"),
    ('127.0.0.1:5 - "GET /d?token=s HTTP/1.1" 200', '127.0.0.1:5 - "GET /d?token=*** HTTP/1.1" 200'),
])
def test_redact_token(text, expected):
    assert redact_token(text) == expected


def test_log_redaction_is_installed_once_per_logger():
    install_log_redaction()
    install_log_redaction()
    for name in ("uvicorn.access", "uvicorn.error"):
        assert sum(isinstance(f, TokenRedactor) for f in logging.getLogger(name).filters) == 1, name


@pytest.mark.parametrize("value", ["", "   ", "\n", " \t\n "])
def test_an_empty_or_blank_token_refuses_to_start(tmp_path, monkeypatch, value):
    """Issue 12 item 14: FACECAST_API_TOKEN="" (a failed `$(cat tokenfile)`) used to turn authentication off."""
    from facecast.cli import main
    from facecast.errors import InvalidArgument

    monkeypatch.setenv("FACECAST_API_TOKEN", value)
    with pytest.raises(InvalidArgument, match="FACECAST_API_TOKEN is set but empty"):
        ServerSettings.from_env(data_dir=tmp_path)
    with pytest.raises(InvalidArgument, match="empty"):
        create_app(ServerSettings(token=value, data_dir=tmp_path, warmup=False))
    assert main(["serve", "--data-dir", str(tmp_path), "--no-warmup", "--port", "1"]) == 1


def test_token_is_stripped_once_and_works(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECAST_API_TOKEN", f"  {TOKEN}\n")
    settings = ServerSettings.from_env(data_dir=tmp_path, warmup=False)
    assert settings.token == TOKEN
    client = TestClient(create_app(settings))
    assert client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/openapi.json", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/openapi.json").status_code == 401


@pytest.mark.parametrize("value, match", [("short", "at least 8"), ("two words here", "spaces")])
def test_bad_tokens_are_refused(tmp_path, value, match):
    from facecast.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=match):
        ServerSettings(token=value, data_dir=tmp_path)


@pytest.mark.parametrize("page, assets", [
    ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]),
    ("/redoc", ["redoc.standalone.js", "favicon.png"]),
])
def test_docs_pages_load_their_assets_from_this_server(tmp_path, page, assets):
    """An offline machine showed blank /docs and /redoc pages: their scripts came from a public CDN."""
    import re

    client = app_client(tmp_path, TOKEN)
    html = client.get(page, params={"token": TOKEN})
    assert html.status_code == 200
    external = re.findall(r"""(?:src|href)=["']?(https?://[^"' >]+)""", html.text)
    assert external == [], external
    for name in assets:
        assert f"/docs/assets/{name}" in html.text
        response = client.get(f"/docs/assets/{name}")  # the cookie the page got authenticates it
        assert response.status_code == 200 and len(response.content) > 1000, name
    assert client.get("/docs/assets/../settings.py").status_code == 404
    assert TestClient(create_app(ServerSettings(token=TOKEN, data_dir=tmp_path, warmup=False))).get(
        "/docs/assets/swagger-ui.css").status_code == 401  # assets need the token like everything else
