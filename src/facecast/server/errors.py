"""HTTP errors of the server: every failure answers JSON {"detail": "..."} naming the problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facecast.errors import FacecastError

log = logging.getLogger(__name__)


def install_handlers(app: FastAPI) -> None:
    """Map facecast errors, validation errors, unknown routes and crashes to JSON details."""
    app.add_exception_handler(FacecastError, _facecast_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


async def _facecast_error(request: Request, exc: FacecastError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": describe_validation(exc.errors())}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:  # this answer bypasses the request meter (it is sent outermost)
        runtime.telemetry.count("http_5xx")
    return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server keeps running"},
                        status_code=500)


def describe_validation(errors: list[dict]) -> str:
    """FastAPI's validation errors as one readable sentence naming each field."""
    parts = []
    for err in errors:
        where = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        field = ".".join(where) or "request"
        parts.append(f"{field}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
