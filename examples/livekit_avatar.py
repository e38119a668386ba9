"""A LiveKit agent with a facecast face (pip install "facecast[livekit]").

Three ways to run it:

  python examples/livekit_avatar.py mock
      No server: livekit-agents' mock room. The avatar runs in this process, the "agent" says a
      greeting (espeak-ng) and is interrupted, and the playback events the agent gets are printed.
      This is the path that runs on a machine without LiveKit (as where facecast is developed).

  python examples/livekit_avatar.py dev                      (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)
      A real LiveKit agent worker (livekit-agents' CLI): each room it joins gets an AgentSession whose
      speech the avatar shows, in the agent's process (QueueAudioOutput); its video and audio are
      published as the agent's tracks. FACECAST_AVATAR_MODE=worker sends the speech to a separate
      avatar worker instead (below).

  python examples/livekit_avatar.py avatar-worker ROOM       (same environment)
      The avatar as its own participant ("facecast-avatar") in ROOM: it receives the agent's speech
      as a data stream and answers lk.clear_buffer / lk.playback_finished RPCs.

The agent here only greets, with facecast's own text-to-speech, so it needs no STT, LLM or TTS
plugin; put yours into AgentSession(...) as usual and the avatar shows whatever it says.
"""

from __future__ import annotations

import asyncio
import os
import sys

from livekit import rtc

from facecast.agents.avatar import AvatarOptions
from facecast.agents.livekit import AVATAR_IDENTITY, espeak_frames, start_in_process, start_worker, use_avatar_worker

OPTIONS = AvatarOptions(avatar=os.environ.get("FACECAST_AVATAR"), size=512, fps=25, sample_rate=24_000)
GREETING = "Hello! I am a facecast avatar, running on this machine."


# -- without a server ------------------------------------------------------------------------------------
async def mock() -> None:
    from unittest.mock import create_autospec

    from livekit.agents.ipc.mock_room import create_mock_room

    room = create_mock_room()  # a mock of rtc.Room: connected, publishing goes nowhere
    room.local_participant.publish_track.return_value = create_autospec(rtc.LocalTrackPublication, instance=True)
    avatar = await start_in_process(room, options=OPTIONS)
    output = avatar.audio  # what AgentSession.output.audio would be
    try:
        async for frame in espeak_frames(GREETING):
            await output.capture_frame(frame)
        output.flush()
        print("playback:", await output.wait_for_playout())
        async for frame in espeak_frames("This sentence is interrupted half way through, like a barge in."):
            await output.capture_frame(frame)
        output.flush()
        await asyncio.sleep(1.5)
        output.clear_buffer()
        print("playback:", await output.wait_for_playout())
    finally:
        await avatar.aclose()


# -- with a LiveKit server -----------------------------------------------------------------------------
async def entrypoint(ctx) -> None:
    """One room: an agent that greets, with the avatar in this process or in an avatar worker."""
    from livekit.agents import Agent, AgentSession

    await ctx.connect()
    session = AgentSession()  # add stt=, llm=, tts=, vad= for a real conversation
    if os.environ.get("FACECAST_AVATAR_MODE") == "worker":
        use_avatar_worker(ctx.room, session, avatar_identity=AVATAR_IDENTITY)
        avatar = None
    else:
        avatar = await start_in_process(ctx.room, session, options=OPTIONS)
        ctx.add_shutdown_callback(avatar.aclose)
    await session.start(agent=Agent(instructions="You are a friendly assistant."), room=ctx.room)
    session.say(GREETING, audio=espeak_frames(GREETING))


async def avatar_worker(room_name: str) -> None:
    """Join `room_name` as the avatar participant and show what the agent there says, until stopped."""
    from livekit import api

    token = (api.AccessToken().with_identity(AVATAR_IDENTITY).with_name("facecast")
             .with_grants(api.VideoGrants(room_join=True, room=room_name)).to_jwt())
    room = rtc.Room()
    await room.connect(os.environ["LIVEKIT_URL"], token)
    avatar = await start_worker(room, options=OPTIONS)  # waits for the agent participant
    try:
        await avatar.runner.wait_for_complete()
    finally:
        await avatar.aclose()
        await room.disconnect()


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "mock"
    if command == "mock":
        asyncio.run(mock())
    elif command == "avatar-worker":
        asyncio.run(avatar_worker(sys.argv[2]))
    else:  # the livekit-agents CLI: dev, start, console, ...
        from livekit.agents import WorkerOptions, cli

        cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))


if __name__ == "__main__":
    main()
