"""Sessions: typed commands in, rendered batches out, on a worker thread (one shape for all).

commands.py   the commands transports send (Say, PcmChunk, EndOfUtterance, Interrupt, CameraFrame, ...)
lifecycle.py  WorkerSession: start / stop / join, the worker thread, telemetry passed in
session.py    the speech session (clip or live) and its StreamSettings
speech.py     speech waiting to be shown (utterances of features and their audio)
clock.py      LiveClock: live pacing, due frames, re-sync after a stall
output.py     SessionOutput: MediaBatch (frames + PCM with timestamps) to sinks and raw subscribers
queues.py     LatestQueue (thread -> worker) and Channel (thread -> event loop)
telemetry.py  latency windows, rates, counters, live-portrait session records (no globals)
Transports (fMP4 over HTTP: facecast.transports.fmp4) subscribe to a session's output.
"""
