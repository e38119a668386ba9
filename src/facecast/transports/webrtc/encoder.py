"""Encode a session's output once for all of its WebRTC peers: video (H.264 or VP8) and Opus audio.

aiortc encodes every peer's frames separately when a track returns raw frames; a track that
returns encoded `av.Packet`s is only packetised. So each session encodes its frames once per
codec its peers negotiated, and its audio once, and every peer sends the same packets. Video
keyframes come every `keyint` frames, and at once when a peer joins or reports a lost picture
(`request_keyframe`).

Timestamps: a video packet's pts is its output frame number (time_base 1/fps); an audio packet's
pts is its first sample at 48 kHz on the stream's clock (time_base 1/48000). aiortc turns both
into RTP timestamps, so a peer's two tracks share the stream's clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from facecast.media.writer import bgr_to_video_frame

OPUS_RATE = 48_000  # Hz: WebRTC's Opus clock
OPUS_FRAME = 960  # samples per Opus packet (20 ms)
OPUS_BITRATE = 48_000  # bit/s, mono speech
VIDEO_BITRATE = 1_500_000  # bit/s: plenty for a 512x512 face at 25 fps on a local network
CODECS = ("h264", "vp8")  # what a session can encode, in order of preference


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded video frame: `index` is its output frame number (time index / fps s)."""

    index: int
    packet: av.Packet
    keyframe: bool


@dataclass(frozen=True)
class EncodedAudio:
    """One 20 ms Opus packet; `sample` (its pts) is its first sample at 48 kHz on the stream's clock,
    the encoder's delay (312 samples) taken off, so it starts slightly before 0."""

    sample: int
    packet: av.Packet


class VideoEncoder:
    """(H, W, 3) uint8 BGR frames -> EncodedFrames in one codec ("h264" or "vp8").

    size: (width, height), even; fps: frame rate; keyint: frames between keyframes at most.
    H.264 is constrained baseline with x264's zerolatency tuning (one packet per frame, no
    B-frames), Annex B, which is what browsers decode over WebRTC. Thread-safe
    request_keyframe(); encode() on one thread.
    """

    def __init__(self, codec: str, size: tuple[int, int], fps: int, *, keyint: int,
                 bitrate: int = VIDEO_BITRATE):
        if codec not in CODECS:
            raise ValueError(f"codec={codec!r}: must be one of {CODECS}")
        self.name, self.size, self.fps = codec, size, fps
        self.time_base = Fraction(1, fps)
        self._codec = _x264(size, fps, keyint, bitrate) if codec == "h264" else _vp8(size, fps, keyint, bitrate)
        self._keyframe = threading.Event()
        self._keyframe.set()  # the first frame is one anyway
        self.encoded = 0

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe (a peer joined or lost a picture)."""
        self._keyframe.set()

    def encode(self, frames: np.ndarray, first_index: int) -> list[EncodedFrame]:
        """Encode frames (B, H, W, 3) uint8 BGR, output frames first_index .. first_index+B-1."""
        out: list[EncodedFrame] = []
        for i, frame in enumerate(frames):
            video = bgr_to_video_frame(frame)
            video.pts, video.time_base = first_index + i, self.time_base
            if self._keyframe.is_set():
                self._keyframe.clear()
                video.pict_type = av.video.frame.PictureType.I
            for packet in self._codec.encode(video):
                out.append(self._frame(packet))
            self.encoded += 1
        return out

    def _frame(self, packet: av.Packet) -> EncodedFrame:
        packet.time_base = self.time_base
        return EncodedFrame(int(packet.pts), packet, bool(packet.is_keyframe))


class AudioEncoder:
    """(n,) float32 mono PCM at `rate` Hz, in stream order -> 20 ms Opus packets at 48 kHz.

    Resamples (keeping the resampler's state across calls, so chunk edges are seamless) and
    cuts 960-sample frames. A packet's `sample` is on the stream's clock: input sample k is at
    k * 48000 / rate. When the input skips ahead (batches nobody watched), encoding restarts
    at the new position.
    """

    def __init__(self, rate: int):
        self.rate = rate
        self._restart(0)

    def _restart(self, first_sample: int) -> None:
        """A fresh resampler and Opus encoder from input sample `first_sample` on."""
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate = OPUS_RATE
        self._codec.layout = "mono"
        self._codec.format = "s16"
        self._codec.bit_rate = OPUS_BITRATE
        self._codec.time_base = Fraction(1, OPUS_RATE)
        self._codec.options = {"application": "voip", "frame_duration": "20"}
        self._codec.open()
        self._resampler = None if self.rate == OPUS_RATE else av.AudioResampler(format="s16", layout="mono",
                                                                                 rate=OPUS_RATE)
        self._pending = np.zeros(0, np.int16)  # 48 kHz samples not yet a whole frame
        self._next_sample = int(round(first_sample * OPUS_RATE / self.rate))  # 48 kHz position of _pending[0]
        self._fed = first_sample  # input position (samples at `rate`) of the next input sample

    def encode(self, pcm: np.ndarray, first_sample: int) -> list[EncodedAudio]:
        """Encode `pcm` (n,) float32 in [-1, 1], input samples first_sample .. first_sample+n-1;
        returns the packets completed."""
        if first_sample != self._fed:
            self._restart(first_sample)
        samples = self._to_48k(pcm)
        if len(samples):
            self._pending = np.concatenate([self._pending, samples])
        out: list[EncodedAudio] = []
        while len(self._pending) >= OPUS_FRAME:
            chunk, self._pending = self._pending[:OPUS_FRAME], self._pending[OPUS_FRAME:]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = OPUS_RATE, self._next_sample, Fraction(1, OPUS_RATE)
            for packet in self._codec.encode(frame):
                packet.time_base = Fraction(1, OPUS_RATE)  # pts: its first sample, less Opus's delay
                out.append(EncodedAudio(int(packet.pts), packet))
            self._next_sample += OPUS_FRAME
        return out

    def _to_48k(self, pcm: np.ndarray) -> np.ndarray:
        s16 = (np.clip(np.asarray(pcm, np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)
        start, self._fed = self._fed, self._fed + len(s16)
        if self._resampler is None or not len(s16):
            return s16
        frame = av.AudioFrame.from_ndarray(s16[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, start, Fraction(1, self.rate)
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)


def _x264(size: tuple[int, int], fps: int, keyint: int, bitrate: int) -> av.CodecContext:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = size
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps)
    codec.bit_rate = bitrate
    codec.profile = "Baseline"
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "level": "31", "forced-idr": "1",
                     "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:threads=1:repeat-headers=1:"
                                    "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m:range=tv:"
                                    f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 2000}"}
    codec.open()
    return codec


def _vp8(size: tuple[int, int], fps: int, keyint: int, bitrate: int) -> av.CodecContext:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = size
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps)
    codec.bit_rate = bitrate
    codec.gop_size = keyint
    codec.thread_count = 1
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1",
                     "static-thresh": "0", "max-intra-rate": "300"}
    codec.open()
    return codec
