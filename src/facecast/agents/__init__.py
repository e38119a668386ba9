"""facecast as the face of a voice agent, in the agent's own process.

avatar.py   LiveAvatar: a live session fed with the agent's speech, read as frames + audio
pipecat.py  FacecastVideoService, a pipecat AIService (pip install "facecast[pipecat]")
livekit.py  a LiveKit Agents VideoGenerator and AvatarRunner helpers (pip install "facecast[livekit]")
"""
