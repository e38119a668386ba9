"""The HTTP side of `facecast chat`: the page at /chat and one pipecat pipeline per WebRTC call.

    GET  /chat               the page (talk button, transcript, connection state)
    GET  /chat/static/...    its script and style
    POST /chat/offer         {"sdp", "type"} -> the answer {"sdp", "type", "pc_id"}; starts a call
    GET  /chat/calls         the calls and the timeline of each turn (chat.timeline)
    GET  /health             {"ok": true} (also gives a browser a real http origin for ICE)

The browser gathers its ICE candidates before it offers (no trickle), so an offer and its answer are
complete. A call ends when the browser hangs up or its connection fails.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from facecast.chat.pipeline import IN_RATE, OUT_RATE, ChatOptions

STATIC = Path(__file__).parent / "static"
MAX_CALLS = 4  # conversations at once (each runs an avatar in real time)
log = logging.getLogger("facecast.chat")


@dataclass
class Call:
    """One browser's conversation: its connection, timeline and the task running its pipeline."""

    pc_id: str
    connection: object  # SmallWebRTCConnection
    timeline: object  # chat.timeline.Timeline
    task: asyncio.Task | None = None

    def as_dict(self) -> dict:
        return {"pc_id": self.pc_id, "state": self.connection.pc.connectionState,
                "turns": [turn.as_dict() for turn in self.timeline.turns]}


class ChatServer:
    """The calls of one `facecast chat` process. `await prepare()` once (loads the avatar, so calls
    know its size), then `await offer(...)` per browser."""

    def __init__(self, options: ChatOptions, ice_servers: list[str] | None = None):
        self.options = options
        self.ice_servers = ice_servers or []
        self.size: tuple[int, int] = (options.size or 512, options.size or 512)
        self.calls: dict[str, Call] = {}
        self.finished: list[Call] = []

    async def prepare(self) -> None:
        """Prepare (or load from the cache) the avatar: its frame size sizes every call's video."""
        if not self.options.show_avatar:
            return
        from facecast.agents.avatar import AvatarOptions, load

        avatar_options = AvatarOptions(avatar=self.options.avatar, size=self.options.size, fps=self.options.fps)
        avatar, _ = await asyncio.get_running_loop().run_in_executor(None, load, avatar_options)
        self.size = tuple(avatar.size)

    async def offer(self, sdp: str, kind: str) -> dict:
        """Answer a browser's offer and start its conversation. Raises ValueError when full."""
        from pipecat.transports.base_transport import TransportParams
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
        from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

        from facecast.transports.webrtc.receive import hear_audio_at_once

        if len(self.calls) >= MAX_CALLS:
            raise ValueError(f"{len(self.calls)} calls already (MAX_CALLS={MAX_CALLS}); hang one up first")
        connection = SmallWebRTCConnection(ice_servers=self.ice_servers)
        await connection.initialize(sdp=sdp, type=kind)
        hear_audio_at_once(connection.pc)  # the microphone reaches the VAD 60 ms sooner
        width, height = self.size
        params = TransportParams(audio_in_enabled=True, audio_in_sample_rate=IN_RATE, audio_out_enabled=True,
                                 audio_out_sample_rate=OUT_RATE, video_out_enabled=self.options.show_avatar,
                                 video_out_is_live=False, video_out_width=width, video_out_height=height,
                                 video_out_framerate=self.options.fps)
        transport = SmallWebRTCTransport(webrtc_connection=connection, params=params)
        call = self._start(connection, transport)
        answer = connection.get_answer()
        call.pc_id = answer["pc_id"]
        self.calls[call.pc_id] = call
        return answer

    def _start(self, connection, transport) -> Call:
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker
        from pipecat.workers.runner import WorkerRunner

        from facecast.chat.pipeline import build_pipeline
        from facecast.chat.timeline import Timeline

        chat = build_pipeline(transport, self.options)
        timeline = Timeline(chat, vad_stop_s=self.options.vad_stop_s)
        worker = PipelineWorker(chat.pipeline, observers=[timeline], enable_rtvi=False, idle_timeout_secs=None,
                                params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE))
        call = Call(pc_id="", connection=connection, timeline=timeline)

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(_transport, _connection):
            await worker.cancel()

        @connection.event_handler("failed")
        async def on_failed(_connection):
            await worker.cancel()

        async def run() -> None:
            runner = WorkerRunner(handle_sigint=False)
            try:
                await runner.add_workers(worker)
                await runner.run()
            except Exception:  # one call's failure is logged; the server and other calls go on
                log.exception("chat call %s failed", call.pc_id)
            finally:
                self.calls.pop(call.pc_id, None)
                self.finished.append(call)
                del self.finished[:-20]
                await connection.disconnect()

        call.task = asyncio.create_task(run())
        return call

    async def close(self) -> None:
        """Hang up every call (idempotent)."""
        calls = list(self.calls.values())
        for call in calls:
            await call.connection.disconnect()
            if call.task is not None:
                call.task.cancel()
        await asyncio.gather(*(call.task for call in calls if call.task is not None), return_exceptions=True)


def create_app(options: ChatOptions, ice_servers: list[str] | None = None):
    """The FastAPI app of `facecast chat`."""
    from contextlib import asynccontextmanager

    from fastapi import Body, FastAPI, HTTPException
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    server = ChatServer(options, ice_servers)

    @asynccontextmanager
    async def lifespan(_app):
        await server.prepare()
        yield
        await server.close()

    app = FastAPI(title="facecast chat", lifespan=lifespan)
    app.state.chat = server
    app.mount("/chat/static", StaticFiles(directory=STATIC), name="chat-static")

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    @app.get("/chat")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "chat.html")

    @app.post("/chat/offer")
    async def offer(body: dict = Body(...)) -> dict:
        sdp, kind = body.get("sdp"), body.get("type", "offer")
        if not isinstance(sdp, str) or not sdp.startswith("v=0") or kind != "offer":
            raise HTTPException(400, f"give {{'sdp': 'v=0...', 'type': 'offer'}}; got type={kind!r}")
        try:
            return await server.offer(sdp, kind)
        except ValueError as error:
            raise HTTPException(503, str(error)) from None

    @app.get("/chat/calls")
    async def calls() -> dict:
        return {"active": [call.as_dict() for call in server.calls.values()],
                "finished": [call.as_dict() for call in server.finished]}

    return app
