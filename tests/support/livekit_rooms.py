"""LiveKit rooms for tests, with no server: livekit-agents' own mock room (ipc.mock_room).

mock_room() is a fresh mock room (create_mock_room() itself is cached: one room per process)
that an AvatarRunner can publish into. link(agent, avatar) joins two of them like an agent and an
avatar worker in one room: each sees the other as a remote participant, byte streams one side
opens reach the other side's stream handler, and RPCs reach the other side's registered methods.
Speech for the agent's side comes from speech_frames().
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from types import SimpleNamespace
from typing import Any
from unittest.mock import create_autospec

import numpy as np
from livekit import rtc
from livekit.agents.ipc.mock_room import create_mock_room

RPC_TIMEOUT_S = 10.0  # s, as an RPC's response_timeout
_ids = itertools.count()


def mock_room(identity: str = "agent") -> Any:
    """A fresh mock room whose local participant is `identity`, with nobody else in it."""
    room = create_mock_room.__wrapped__()
    local = room.local_participant
    local.identity = identity
    local.publish_track.return_value = create_autospec(rtc.LocalTrackPublication, instance=True)
    local._rpc_handlers = {}
    local.register_rpc_method.side_effect = lambda method, handler: local._rpc_handlers.__setitem__(method, handler)
    room.byte_handlers = {}
    room.register_byte_stream_handler.side_effect = lambda topic, handler: room.byte_handlers.__setitem__(topic,
                                                                                                         handler)
    room.remote_participants = {}
    room.rpc_calls = []  # (method, payload) of every RPC this side performed, in order
    return room


def link(agent: Any, avatar: Any) -> None:
    """Put the two rooms' participants in one room: the agent (an agent participant) and the avatar."""
    for room, other, kind in ((agent, avatar, rtc.ParticipantKind.PARTICIPANT_KIND_AGENT),
                              (avatar, agent, rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)):
        peer = create_autospec(rtc.RemoteParticipant, instance=True)
        peer.identity = other.local_participant.identity
        peer.sid = f"PA_{peer.identity}"
        peer.kind = kind
        peer.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        room.remote_participants = {peer.sid: peer}
        room.local_participant.stream_bytes.side_effect = _stream_bytes(room, other)
        room.local_participant.perform_rpc.side_effect = _perform_rpc(room, other)


def speech_frames(seconds: float, rate: int = 24_000, frame_ms: int = 20, seed: int = 0) -> list[rtc.AudioFrame]:
    """Speech-like audio as a TTS gives it: int16 mono frames of `frame_ms` ms, `seconds` long
    (a voiced buzz whose loudness rises and falls like syllables, 4 per second)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    voice = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t) + 0.1 * rng.standard_normal(n)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    pcm = np.clip(voice * envelope * 0.3 * 32767, -32768, 32767).astype(np.int16)
    step = rate * frame_ms // 1000
    return [rtc.AudioFrame(pcm[i: i + step].tobytes(), rate, 1, len(pcm[i: i + step])) for i in range(0, n, step)]


# -- the data plane between two linked rooms ---------------------------------------------------------
class _Reader:
    """The receiving end of a byte stream (as rtc.ByteStreamReader: info, async iteration)."""

    def __init__(self, topic: str, attributes: dict):
        self.info = SimpleNamespace(stream_id=f"stream-{next(_ids)}", topic=topic, attributes=dict(attributes))
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.chunks.get()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _Writer:
    """The sending end (as rtc.ByteStreamWriter: write, aclose)."""

    def __init__(self, reader: _Reader):
        self.reader = reader

    async def write(self, data: bytes) -> None:
        self.reader.chunks.put_nowait(bytes(data))

    async def aclose(self, **_: Any) -> None:
        self.reader.chunks.put_nowait(None)


def _stream_bytes(room: Any, other: Any):
    async def stream_bytes(name: str, *, topic: str = "", destination_identities=None, attributes=None, **_: Any):
        reader = _Reader(topic, attributes or {})
        handler = other.byte_handlers.get(topic)
        if handler is not None:
            handler(reader, room.local_participant.identity)
        return _Writer(reader)

    return stream_bytes


def _perform_rpc(room: Any, other: Any):
    async def perform_rpc(*, destination_identity: str, method: str, payload: str, **_: Any) -> str:
        room.rpc_calls.append((method, payload))
        await asyncio.sleep(0)  # the call leaves this task, as over a network
        handler = other.local_participant._rpc_handlers.get(method)
        if handler is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, f"no method {method}")
        data = rtc.RpcInvocationData(f"req-{next(_ids)}", room.local_participant.identity, payload, RPC_TIMEOUT_S,
                                     method)
        result = handler(data)
        return await result if inspect.isawaitable(result) else result

    return perform_rpc
