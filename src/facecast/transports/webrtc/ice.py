"""ICE servers for WebRTC peers, from FACECAST_ICE_SERVERS.

None by default: on one machine or a LAN, host candidates connect, and aiortc's own default
(a public STUN server) would send traffic off the network unasked. For peers behind NAT, give
STUN/TURN servers in the browser's RTCIceServer form, as JSON:

    FACECAST_ICE_SERVERS='[{"urls": "stun:stun.example.org:3478"},
                           {"urls": ["turn:turn.example.org:3478?transport=udp"],
                            "username": "u", "credential": "p"}]'

The same list is served to the web client (GET /webrtc/ice-servers), so both ends use them.
"""

from __future__ import annotations

import json

from facecast.errors import InvalidArgument

KEYS = {"urls", "username", "credential"}
SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def parse_ice_servers(text: str | None) -> tuple[dict, ...]:
    """The checked ICE server list in `text` (JSON), () when unset; InvalidArgument naming the fault."""
    if text is None or not text.strip():
        return ()
    try:
        servers = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"FACECAST_ICE_SERVERS is not JSON ({exc.msg} at character {exc.pos}); expected "
                              'e.g. [{"urls": "stun:stun.example.org:3478"}]') from None
    if isinstance(servers, dict):
        servers = [servers]
    if not isinstance(servers, list):
        raise InvalidArgument("FACECAST_ICE_SERVERS must be a JSON list of {\"urls\": ..., \"username\": ..., "
                              "\"credential\": ...} objects")
    return tuple(_server(i, s) for i, s in enumerate(servers))


def _server(i: int, server) -> dict:
    where = f"FACECAST_ICE_SERVERS[{i}]"
    if not isinstance(server, dict) or "urls" not in server:
        raise InvalidArgument(f"{where} must be an object with \"urls\"")
    unknown = set(server) - KEYS
    if unknown:
        raise InvalidArgument(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")
    urls = [server["urls"]] if isinstance(server["urls"], str) else server["urls"]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u.startswith(SCHEMES) for u in urls):
        raise InvalidArgument(f"{where}.urls must be a URL or a list of URLs starting with one of {SCHEMES}")
    if any(u.startswith(("turn:", "turns:")) for u in urls) and not ("username" in server and "credential" in server):
        raise InvalidArgument(f"{where}: a TURN server needs \"username\" and \"credential\"")
    return {"urls": urls, **{k: str(server[k]) for k in ("username", "credential") if k in server}}


def rtc_ice_servers(servers: tuple[dict, ...]) -> list:
    """aiortc RTCIceServer objects for the checked list."""
    from aiortc import RTCIceServer

    return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in servers]
