"""The received microphone audio is handed on once the next packet arrives (aiortc's private
jitter buffer prefetch: a test that fails when aiortc renames it)."""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection

from facecast.transports.webrtc.receive import AUDIO_PREFETCH, RECEIVER_JITTER_BUFFER, hear_audio_at_once


def prefetch_of(pc) -> dict[str, int]:
    return {t.kind: getattr(t.receiver, RECEIVER_JITTER_BUFFER)._prefetch for t in pc.getTransceivers()}


def test_audio_receivers_prefetch_one_packet_and_video_is_left_alone():
    async def check():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
            before = prefetch_of(pc)
            assert before["audio"] == 4, before  # aiortc's own: 80 ms of Opus held back
            assert hear_audio_at_once(pc) == 1
            after = prefetch_of(pc)
            assert after == {"audio": AUDIO_PREFETCH, "video": before["video"]}, after
        finally:
            await pc.close()

    asyncio.run(check())


def test_an_answering_peer_changes_its_audio_receiver_after_the_offer():
    async def check():
        browser, server = (RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2))
        try:
            browser.addTransceiver("audio", direction="sendrecv")
            await browser.setLocalDescription(await browser.createOffer())
            await server.setRemoteDescription(browser.localDescription)
            assert hear_audio_at_once(server) == 1
            assert prefetch_of(server)["audio"] == AUDIO_PREFETCH
        finally:
            await browser.close()
            await server.close()

    asyncio.run(check())
