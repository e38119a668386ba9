"""WebRTC viewers of a session: an SDP offer in, the answer out (JSON, or WHEP's application/sdp),
and hanging up. Live audio, /say and interrupt stay what they are for any session."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from facecast.errors import InvalidArgument, StreamGone, UnsupportedMedia, Unavailable
from facecast.server.deps import ERRORS, get_runtime
from facecast.server.models import DeletedOut, IceServersOut, WebRtcAnswerOut, WebRtcOfferIn
from facecast.server.runtime import Runtime
from facecast.streaming.lifecycle import ENDED

router = APIRouter(tags=["webrtc"])

SDP = "application/sdp"
OFFER_DOC = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": WebRtcOfferIn.model_json_schema()},
        SDP: {"schema": {"type": "string"}, "example": "v=0\r\no=- ... (a WHEP player's offer)"}}},
}


@router.post("/sessions/{session_id}/webrtc", status_code=201, response_model=WebRtcAnswerOut, openapi_extra=OFFER_DOC,
             responses={**ERRORS, 201: {"content": {SDP: {}}, "description": "The answer: JSON for a JSON offer, "
                                                                            "SDP (WHEP) for an application/sdp one."},
                        410: {"description": "The session has ended."},
                        503: {"description": "The session has FACECAST_MAX_PEERS viewers already."}},
             summary="Watch a session over WebRTC")
async def offer(session_id: str, request: Request, rt: Runtime = Depends(get_runtime)):
    """Send an SDP offer that receives video (and audio); get the answer. With
    `Content-Type: application/json` ({"sdp", "type": "offer"}, what browser code sends) the answer is
    JSON; with `Content-Type: application/sdp` (WHEP) it is the SDP itself, 201 with a `Location`
    to DELETE. Gather ICE candidates before offering (no trickle ICE). Video: H.264 (else VP8) at
    the session's frame rate; audio: Opus 48 kHz; both on the stream's clock."""
    session, sink = rt.sessions.webrtc(session_id)
    whep, sdp = await _read_offer(request)
    if session.state in ENDED and not sink.readers:
        raise StreamGone(f"session {session_id!r} has ended ({session.state}); start a new one")
    if sink.readers >= rt.settings.max_peers:
        raise Unavailable(f"session {session_id!r} has {sink.readers} WebRTC viewers, the limit is "
                          f"{rt.settings.max_peers} (FACECAST_MAX_PEERS)")
    peer = await sink.connect(sdp)
    location = f"/sessions/{session_id}/webrtc/{peer.id}"
    answer = peer.pc.localDescription
    if whep:
        return Response(answer.sdp, status_code=201, media_type=SDP, headers={"Location": location})
    return JSONResponse({"sdp": answer.sdp, "type": answer.type, "peer_id": peer.id, "location": location},
                        status_code=201, headers={"Location": location})


async def _read_offer(request: Request) -> tuple[bool, str]:
    """(WHEP?, the offer's SDP) from the body; 400/415 naming what is wrong."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if kind == SDP:
        return True, body.decode("utf-8", "replace")
    if kind != "application/json":
        raise UnsupportedMedia(f"Content-Type {kind or 'none'!r}: send the offer as application/json "
                               '({"sdp": ..., "type": "offer"}) or as application/sdp (WHEP)')
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidArgument('the body is not JSON; send {"sdp": "<offer>", "type": "offer"}') from None
    if not isinstance(data, dict) or not isinstance(data.get("sdp"), str):
        raise InvalidArgument('the body needs "sdp": the offer\'s SDP text (and "type": "offer")')
    if data.get("type", "offer") != "offer":
        raise InvalidArgument(f'"type" is {data.get("type")!r}: post an offer (type "offer"); the server answers')
    return False, data["sdp"]


@router.delete("/sessions/{session_id}/webrtc/{peer_id}", response_model=DeletedOut, responses=ERRORS,
               summary="Hang up a WebRTC viewer")
async def hang_up(session_id: str, peer_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    """Close one viewer's connection (the WHEP resource); the session goes on."""
    _, sink = rt.sessions.webrtc(session_id)
    await sink.peer(peer_id).close()
    return {"deleted": peer_id}


@router.get("/webrtc/ice-servers", response_model=IceServersOut, summary="ICE servers for browsers")
async def ice_servers(rt: Runtime = Depends(get_runtime)) -> dict:
    """The STUN/TURN servers to give RTCPeerConnection (FACECAST_ICE_SERVERS; none by default)."""
    return {"iceServers": list(rt.settings.ice_servers)}
