"""/docs (Swagger UI) and /redoc (ReDoc) with their scripts and styles served by this server, not a CDN,
so the API pages work on a machine without internet access.

The asset files are upstream Swagger UI 5 (Apache-2.0) and ReDoc 2 (MIT) bundles, unmodified, as shipped
in the `fastapi-offline` wheel (PyPI, MIT; a dependency of facecast's server extra); they are read from
that package at import, never fetched.
"""

from __future__ import annotations

import logging
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from facecast.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs/assets"
ASSETS = {  # name -> media type; the only files served (names never become paths)
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
ASSET_PACKAGE = "fastapi_offline"


def _load_assets() -> dict[str, bytes]:
    """The asset files, or {} when fastapi-offline is not installed: the pages then fall back to
    FastAPI's CDN links (as before) and a warning is logged once, rather than the server not starting."""
    try:
        folder = resources.files(ASSET_PACKAGE).joinpath("static")
        return {name: folder.joinpath(name).read_bytes() for name in ASSETS}
    except (ImportError, OSError):
        logging.getLogger("facecast.server").warning(
            "fastapi-offline is not installed: /docs and /redoc load Swagger UI and ReDoc from a CDN "
            "(pip install fastapi-offline)")
        return {}


FILES = _load_assets()  # read once, at import (about 2.8 MB)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    local = {"swagger_js_url": f"{ASSETS_URL}/swagger-ui-bundle.js", "swagger_css_url": f"{ASSETS_URL}/swagger-ui.css",
             "swagger_favicon_url": f"{ASSETS_URL}/favicon.png"} if FILES else {}
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - Swagger UI",
                               **local)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    local = {"redoc_js_url": f"{ASSETS_URL}/redoc.standalone.js", "redoc_favicon_url": f"{ASSETS_URL}/favicon.png",
             "with_google_fonts": False} if FILES else {}
    return get_redoc_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - ReDoc", **local)


@router.get(ASSETS_URL + "/{name}")
async def asset(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no documentation asset {name!r}")
    return Response(FILES[name], media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})
