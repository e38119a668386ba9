"""`facecast serve`: the HTTP server and web client (registered by facecast.cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

LOOPBACK = "127.0.0.1"
SERVE_EPILOG = """\
environment (command-line options win):
  FACECAST_API_TOKEN        require this token (Bearer header, ?token=, or the cookie ?token= sets) on every
                            request; ?token= values are masked (***) in the log
  FACECAST_MAX_UPLOAD_MB    largest upload (default 50)
  FACECAST_SERVER_DIR       uploaded sources and the avatar index
  FACECAST_CACHE_DIR        prepared avatars (default ~/.cache/facecast)
  FACECAST_WORKERS          threads for long jobs: whole-file renders, avatar preparation (default 4)
  FACECAST_MAX_QUEUED_S     seconds of speech a live session may hold waiting (default 60)
  FACECAST_BACKEND          lip-sync backend; FACECAST_MUSETALK_* configure musetalk (docs/musetalk.md), e.g.
                            FACECAST_MUSETALK_DECODER=small / FACECAST_MUSETALK_UNET=student: distilled networks
  FACECAST_PROFILE=1        live-portrait sessions log their latency every 30 frames

pages: / (web client), /live (webcam live portrait), /docs (OpenAPI); details in docs/server.md
"""


def add_commands(sub) -> None:
    p = sub.add_parser("serve", help="HTTP server with a web client: stream talking avatars to a browser",
                       description="Serve the API and the web client. Binds 127.0.0.1 unless told otherwise. "
                                   "Set FACECAST_API_TOKEN to require a token on every request.",
                       epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=LOOPBACK, help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it "
                                                     "to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest upload in MiB (default 50)")
    p.add_argument("--data-dir", type=Path, default=None, help="uploaded sources and the avatar index "
                                                              "(default <cache>/server)")
    p.add_argument("--max-sessions", type=int, default=None, help="sessions generating at once (default 16)")
    p.add_argument("--grace", type=float, default=None, help="seconds a session lives without readers (default 10)")
    p.add_argument("--backend", default=None, help="lip-sync backend: classic (CPU, default) or musetalk "
                                                       "(GPU; weights from FACECAST_MUSETALK_DIR)")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up at start")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    ray = p.add_argument_group("Ray Serve (the ray extra; docs/scaling.md)")
    ray.add_argument("--ray", action="store_true", help="serve through Ray Serve replicas on a local Ray instance")
    ray.add_argument("--ray-address", default=None, metavar="ADDR", help="deploy onto the Ray cluster at ADDR "
                                                                          "(implies --ray)")
    ray.add_argument("--replicas", default="1", metavar="N|MIN:MAX", help="replicas: a number, or autoscaling "
                                                                           "bounds on active sessions (default 1)")
    ray.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs one replica reserves (default 1)")
    ray.add_argument("--replica-gpus", type=float, default=0.0, help="GPUs one replica reserves, e.g. 0.25")
    ray.add_argument("--drain", type=float, default=300.0, help="seconds a replica being stopped waits for its "
                                                                 "sessions to end (default 300)")
    ray.add_argument("--target-sessions", type=float, default=None, metavar="N",
                     help="autoscaling: active sessions per replica aimed at (default 3/4 of --max-sessions)")
    ray.add_argument("--upscale-delay", type=float, default=None, metavar="S",
                     help="autoscaling: seconds more replicas must be wanted before one is added "
                          "(default 5, or FACECAST_RAY_UPSCALE_DELAY_S)")
    ray.add_argument("--downscale-delay", type=float, default=None, metavar="S",
                     help="autoscaling: seconds fewer replicas must be wanted before one is stopped "
                          "(default 60, or FACECAST_RAY_DOWNSCALE_DELAY_S)")
    p.set_defaults(run=run_serve)


def run_serve(args) -> int:
    from facecast.deps import require

    require("fastapi")  # the server extra, with the install command when missing
    uvicorn = require("uvicorn")

    from facecast.server.app import create_app
    from facecast.server.redact import install_log_redaction
    from facecast.server.routes.live_audio import WS_FRAME_SLACK
    from facecast.server.runtime import limit_malloc_arenas
    from facecast.server.settings import MB, ServerSettings

    limit_malloc_arenas()
    settings = ServerSettings.from_env(
        host=args.host, port=args.port, data_dir=args.data_dir, max_sessions=args.max_sessions,
        session_grace_s=args.grace, backend=args.backend,
        max_upload_bytes=int(args.max_upload_mb * MB) if args.max_upload_mb else None,
        warmup=False if args.no_warmup else None)
    if settings.host not in (LOOPBACK, "localhost", "::1") and settings.token is None:
        print(f"facecast: warning: listening on {settings.host} without FACECAST_API_TOKEN: anyone who can reach "
              "this address can use the server")
    if args.ray or args.ray_address:
        from facecast.server.ray.options import run_from_args

        return run_from_args(args, settings)
    install_log_redaction()  # before uvicorn.run: its dictConfig replaces handlers but keeps logger filters
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level,
                ws_max_size=settings.max_chunk_bytes + WS_FRAME_SLACK, timeout_graceful_shutdown=5)
    return 0
