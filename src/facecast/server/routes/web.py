"""The web client: GET / and its static files, from a fixed list (names never become paths)."""

from __future__ import annotations

import html
from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facecast.errors import NotFound
from facecast.server.security import request_token

router = APIRouter(include_in_schema=False)

STATIC = {"app.js": "text/javascript; charset=utf-8", "call.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
TOKEN_MARK = "{{token_query}}"


def _load(name: str) -> str:
    return resources.files("facecast.server").joinpath("static", name).read_text(encoding="utf-8")


FILES = {name: _load(name) for name in ("index.html", *STATIC)}  # read once, at import


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    """The page; a ?token= it was opened with is passed on to its script and style links."""
    token = request_token(request.scope)
    query = f"?token={html.escape(quote(token, safe=''))}" if token else ""
    page = FILES["index.html"].replace(TOKEN_MARK, query)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound(f"no static file {name!r}")
    return Response(FILES[name], media_type=STATIC[name], headers={"Cache-Control": "no-cache"})
