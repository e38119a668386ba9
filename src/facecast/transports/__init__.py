"""Transports: how a session's output leaves the process. Each subscribes to a session's output
(streaming.output) and sends it commands; none reaches into a session's worker.

fmp4/  fragmented MP4 (H.264 + AAC) over HTTP: an encoder sink, the segment fan-out, the response body.
"""
