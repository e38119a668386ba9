"""`facecast chat`: talk to the avatar in a browser, offline (registered by facecast.cli)."""

from __future__ import annotations

import argparse

LOOPBACK = "127.0.0.1"
CHAT_EPILOG = """\
the default conversation needs no network and no model download:
  silero VAD -> pocketsphinx (English) -> a rule-based reply -> espeak-ng -> the avatar
swap the reply for any OpenAI-compatible LLM server you run (llama.cpp, vLLM, Ollama, ...):
  facecast chat --llm-url http://localhost:8080/v1 --llm-model MODEL
other STT/TTS services: facecast.chat.pipeline.build_pipeline(transport, options, stt=..., tts=...)
--backend musetalk reads FACECAST_MUSETALK_* (DIR, DECODER=small, UNET=student, ...; docs/musetalk.md)
(docs/agents.md, "facecast chat")
"""


def add_commands(sub) -> None:
    p = sub.add_parser("chat", help="talk to the avatar in a browser (offline voice agent at /chat)",
                       description="Serve a page at /chat: the browser's microphone goes to a pipecat pipeline "
                                   "(VAD, speech recognition, a reply, speech, the avatar) and the avatar comes back "
                                   "over WebRTC. Binds 127.0.0.1 unless told otherwise.",
                       epilog=CHAT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=LOOPBACK, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8010, help="TCP port (default 8010)")
    p.add_argument("--avatar", default=None, help="image or video file, or a prepared avatar's id "
                                                  "(default: the built-in astronaut)")
    p.add_argument("--backend", default="classic", help="lip-sync backend: classic (CPU, default) or musetalk (GPU)")
    p.add_argument("--size", type=int, default=512, help="longest side of the avatar's video in px (default 512)")
    p.add_argument("--fps", type=int, default=25, help="the avatar's frames per second (default 25)")
    p.add_argument("--no-avatar", action="store_true", help="voice only: the reply's speech without the avatar")
    p.add_argument("--voice", default="en", help="espeak-ng voice (default en)")
    p.add_argument("--vad-start", type=float, default=0.064, metavar="S",
                   help="speech (s) before the user counts as speaking and interrupts the avatar "
                        "(default 0.064: two 32 ms VAD windows; raise it if coughs interrupt)")
    p.add_argument("--vad-stop", type=float, default=0.5, metavar="S",
                   help="silence (s) that ends the user's turn (default 0.5)")
    p.add_argument("--vad-min-volume", type=float, default=0.0, metavar="V",
                   help="loudness (0..1 over -110..-10 LUFS) under which speech is ignored, e.g. 0.6 "
                        "against faint background voices; it delays barge-in (default 0: off)")
    llm = p.add_argument_group("a language model instead of the rule-based reply (contacted only when given)")
    llm.add_argument("--llm-url", default=None, metavar="URL", help="OpenAI-compatible endpoint, e.g. "
                                                                    "http://localhost:8080/v1")
    llm.add_argument("--llm-model", default=None, metavar="NAME", help="the model's name at that endpoint")
    llm.add_argument("--llm-api-key", default=None, metavar="KEY", help="API key (default $OPENAI_API_KEY, "
                                                                        "else none)")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    p.set_defaults(run=run_chat)


def run_chat(args) -> int:
    from facecast.deps import require

    require("fastapi")
    require("pipecat")
    uvicorn = require("uvicorn")

    import sys

    from loguru import logger

    from facecast.chat.app import create_app
    from facecast.chat.pipeline import ChatOptions

    logger.remove()  # pipecat logs through loguru, at DEBUG unless told otherwise
    logger.add(sys.stderr, level=args.log_level.upper())

    options = ChatOptions(avatar=args.avatar, backend=args.backend, size=args.size, fps=args.fps,
                          show_avatar=not args.no_avatar, voice=args.voice, vad_start_s=args.vad_start,
                          vad_stop_s=args.vad_stop, vad_min_volume=args.vad_min_volume,
                          llm_url=args.llm_url, llm_model=args.llm_model, llm_api_key=args.llm_api_key)
    if args.host not in (LOOPBACK, "localhost", "::1"):
        print(f"facecast: warning: chat listens on {args.host} without authentication")
    print(f"facecast chat: open http://{args.host}:{args.port}/chat")
    uvicorn.run(create_app(options), host=args.host, port=args.port, log_level=args.log_level)
    return 0
