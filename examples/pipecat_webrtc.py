"""A talking avatar in a pipecat pipeline, to a browser over WebRTC, offline.

    EspeakTTSService -> FacecastVideoService -> SmallWebRTCTransport.output()

Each browser that connects gets its own pipeline: the avatar greets it, then speaks whatever is
typed into the page (POST /say), and stops mid-sentence on "Interrupt" (POST /interrupt, an
InterruptionFrame, as a voice agent sends when the user barges in). Everything runs in this process
with no network and no model download: espeak-ng speaks, the classic CPU backend moves the mouth.

Needs facecast with the pipecat and server extras (pipecat-ai, aiortc, fastapi, uvicorn):

    pip install "facecast[pipecat,server]"
    python examples/pipecat_webrtc.py                         # the built-in astronaut
    python examples/pipecat_webrtc.py --avatar me.jpg --size 512 --port 7862
    open http://localhost:7862/ , press Connect, type, press Say

    python examples/pipecat_webrtc.py --self-test 6           # no browser: an aiortc peer connects,
                                                              # the avatar speaks, what arrived is printed

Any pipecat TTS service can replace EspeakTTSService; put an STT and an LLM in front of it (see
`facecast chat`) for a full voice agent.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pipecat.frames.frames import InterruptionFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from facecast.agents.avatar import AvatarOptions, load
from facecast.agents.pipecat import FacecastVideoService
from facecast.agents.pipecat_tts import EspeakTTSService

RATE = 24_000  # Hz: the TTS's, the avatar's and the transport's audio
GREETING = "Hello! I am a facecast avatar, running on this computer. Type something and I will say it."

PAGE = """<!doctype html><meta charset="utf-8"><title>facecast + pipecat</title>
<video id="v" autoplay playsinline style="max-width:512px;background:#222"></video><br>
<button id="c">Connect</button> <input id="t" size="50" value="How are you today?">
<button id="s">Say</button> <button id="i">Interrupt</button>
<script>
const post = (path, body) => fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(body)});
let id = null;
c.onclick = async () => {
  const pc = new RTCPeerConnection(), stream = new MediaStream();
  pc.addTransceiver("audio", {direction: "sendrecv"});  // pipecat's order: audio, then video
  pc.addTransceiver("video", {direction: "sendrecv"});
  pc.ontrack = (e) => { stream.addTrack(e.track); v.srcObject = stream; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => { if (pc.iceGatheringState === "complete") done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done(); });
  const answer = await (await post("/offer", {sdp: pc.localDescription.sdp, type: "offer"})).json();
  id = answer.pc_id;
  await pc.setRemoteDescription(answer);
};
s.onclick = () => id && post("/say", {pc_id: id, text: t.value});
i.onclick = () => id && post("/interrupt", {pc_id: id});
</script>"""


class Calls:
    """One pipeline per connected peer: TTS -> avatar -> WebRTC."""

    def __init__(self, options: AvatarOptions):
        self.options = options
        self.size = (512, 512)
        self.workers: dict[str, PipelineWorker] = {}

    async def prepare(self) -> None:
        """Load (or prepare once) the avatar: its size is the video's."""
        avatar, _ = await asyncio.get_running_loop().run_in_executor(None, load, self.options)
        self.size = tuple(avatar.size)

    async def offer(self, sdp: str, kind: str) -> dict:
        connection = SmallWebRTCConnection(ice_servers=[])
        await connection.initialize(sdp=sdp, type=kind)
        width, height = self.size
        # video_out_is_live=False: pipecat draws audio-synced images only then; framerate = the avatar's
        transport = SmallWebRTCTransport(webrtc_connection=connection, params=TransportParams(
            audio_out_enabled=True, audio_out_sample_rate=RATE, video_out_enabled=True, video_out_is_live=False,
            video_out_width=width, video_out_height=height, video_out_framerate=self.options.fps))
        pipeline = Pipeline([transport.input(), EspeakTTSService(), FacecastVideoService(self.options),
                             transport.output()])
        worker = PipelineWorker(pipeline, params=PipelineParams(audio_out_sample_rate=RATE),
                                idle_timeout_secs=None, enable_rtvi=False)

        @transport.event_handler("on_client_connected")
        async def greet(_transport, _connection):
            await worker.queue_frame(TTSSpeakFrame(GREETING))

        @transport.event_handler("on_client_disconnected")
        async def hang_up(_transport, _connection):
            await worker.cancel()

        answer = connection.get_answer()
        self.workers[answer["pc_id"]] = worker
        asyncio.get_running_loop().create_task(self._run(answer["pc_id"], worker))
        return answer

    async def _run(self, pc_id: str, worker: PipelineWorker) -> None:
        try:
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            await runner.run()
        finally:
            self.workers.pop(pc_id, None)

    async def say(self, pc_id: str, text: str) -> bool:
        worker = self.workers.get(pc_id)
        if worker is not None:
            await worker.queue_frame(TTSSpeakFrame(text))
        return worker is not None

    async def interrupt(self, pc_id: str) -> bool:
        worker = self.workers.get(pc_id)
        if worker is not None:
            await worker.queue_frame(InterruptionFrame())
        return worker is not None


def make_app(calls: Calls):
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    @asynccontextmanager
    async def lifespan(_app):
        await calls.prepare()
        yield

    app = FastAPI(title="facecast + pipecat", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE

    @app.post("/offer")
    async def offer(body: dict):
        if body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
            raise HTTPException(400, "give {sdp: str, type: 'offer'}")
        return await calls.offer(body["sdp"], "offer")

    @app.post("/say")
    async def say(body: dict):
        if not await calls.say(str(body.get("pc_id")), str(body.get("text", ""))[:500]):
            raise HTTPException(404, "no such call")
        return {"ok": True}

    @app.post("/interrupt")
    async def interrupt(body: dict):
        if not await calls.interrupt(str(body.get("pc_id"))):
            raise HTTPException(404, "no such call")
        return {"ok": True}

    return app


async def self_test(calls: Calls, seconds: float) -> None:
    """Connect an aiortc peer (as the page does), let the avatar greet it for `seconds` s, and print
    what arrived: video frames and their rate, and audio (its loud part is the greeting)."""
    import numpy as np
    from aiortc import RTCPeerConnection, RTCSessionDescription

    await calls.prepare()
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendrecv")
    got = {"video": [], "audio": []}

    async def read(track):
        while True:
            frame = await track.recv()
            if track.kind == "video":
                got["video"].append((time.monotonic(), frame.width, frame.height))
            else:
                pcm = frame.to_ndarray().astype(np.float32) / 32768
                got["audio"].append((time.monotonic(), frame.samples / frame.sample_rate, float(np.abs(pcm).max())))

    readers = []
    pc.on("track", lambda track: readers.append(asyncio.ensure_future(read(track))))
    await pc.setLocalDescription(await pc.createOffer())
    answer = await calls.offer(pc.localDescription.sdp, "offer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await asyncio.sleep(seconds)
    for task in readers:
        task.cancel()
    await pc.close()
    video, audio = got["video"], got["audio"]
    loud = [t for t, _, peak in audio if peak > 0.05]
    fps = (len(video) - 1) / (video[-1][0] - video[0][0]) if len(video) > 1 else 0.0
    print(f"video: {len(video)} frames of {video[-1][1]}x{video[-1][2]} at {fps:.1f} fps" if video else "video: none")
    print(f"audio: {sum(d for _, d, _ in audio):.2f} s received, speech heard for "
          f"{(loud[-1] - loud[0]) if loud else 0:.2f} s")
    if not video or not loud:
        raise SystemExit("self-test failed: no video or no speech arrived")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--avatar", help="image or video file, or a prepared avatar id (default: the astronaut)")
    parser.add_argument("--backend", default="classic")
    parser.add_argument("--size", type=int, default=512, help="longest side of the video, px")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7862)
    parser.add_argument("--self-test", type=float, metavar="SECONDS",
                        help="no server: connect an aiortc peer, listen this long, print what arrived")
    args = parser.parse_args()
    calls = Calls(AvatarOptions(avatar=args.avatar, backend=args.backend, size=args.size, fps=args.fps,
                                sample_rate=RATE))
    if args.self_test:
        asyncio.run(self_test(calls, args.self_test))
        return
    import uvicorn

    uvicorn.run(make_app(calls), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
