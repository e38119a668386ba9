"""facecast: a real-time talking-avatar engine.

A portrait photo or short video becomes an avatar; speech (an audio file, live
PCM or text) drives it; the result is a lip-synced H.264/AAC video.
"""

__version__ = "0.1.0"
