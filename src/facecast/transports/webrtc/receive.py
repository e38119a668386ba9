"""Audio received over WebRTC (a browser's microphone), handed on as soon as it arrives.

aiortc's receiver for an audio track holds a packet until four more have arrived (its jitter
buffer's `prefetch`, 4 x 20 ms of Opus) before it decodes it: 80 ms added to everything the user
says, before a VAD even hears it (a barge-in, the end of a question). On the loopback and LAN paths
facecast serves, packets arrive in order; a packet that comes out of order is still placed (the
buffer waits for a missing one), only the 80 ms of slack to smooth a jittery path goes. This sets
the prefetch to 1 packet (the next one's arrival completes a frame), through aiortc's private
jitter buffer; a test fails if aiortc renames it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # aiortc 1.x: RTCRtpReceiver.__jitter_buffer
AUDIO_PREFETCH = 1  # packets after a frame before it is decoded (aiortc's default: 4)


def hear_audio_at_once(pc) -> int:
    """Make every audio receiver of `pc` (an aiortc RTCPeerConnection, after its audio transceivers
    exist: once the remote offer is set, or addTransceiver) hand out each packet once the next has
    arrived. Returns how many receivers changed; logs a warning and changes nothing when aiortc's
    internals are not the expected ones."""
    changed = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "audio":
            continue
        buffer = getattr(transceiver.receiver, RECEIVER_JITTER_BUFFER, None)
        if buffer is None or not isinstance(getattr(buffer, "_prefetch", None), int):
            log.warning("aiortc's audio jitter buffer is not where facecast expects it; received audio keeps "
                        "aiortc's 80 ms prefetch")
            return changed
        buffer._prefetch = AUDIO_PREFETCH
        changed += 1
    return changed
