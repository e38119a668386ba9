"""`facecast chat`: talk to the avatar, offline, as a pipecat pipeline (pip install "facecast[pipecat]").

pipeline.py   the pipeline (VAD, STT, reply, TTS, avatar) and how to swap its services
responder.py  the default reply: a few rules instead of a language model
timeline.py   where each turn's time goes
app.py        the page at /chat and one pipeline per WebRTC call
cli.py        the command
"""
