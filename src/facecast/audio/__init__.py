"""Audio: decode any common format to mono PCM, speech synthesis, per-frame mouth motion."""

from facecast.audio.decode import load_audio
from facecast.audio.mouth import MouthStream, mouth_track
from facecast.audio.pcm import Audio
from facecast.audio.resampling import StreamResampler, resample
from facecast.audio.tts import PhonemeEvent, Speech, synthesize
from facecast.audio.visemes import mouth_target, phonemes_to_track

__all__ = [
    "Audio",
    "MouthStream",
    "PhonemeEvent",
    "Speech",
    "StreamResampler",
    "load_audio",
    "mouth_target",
    "mouth_track",
    "phonemes_to_track",
    "resample",
    "synthesize",
]
