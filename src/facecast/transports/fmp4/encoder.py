"""Encode BGR frames and mono PCM to fragmented MP4 (H.264 + AAC) segments, cut on demand.

x264 runs with tune=zerolatency (one packet out per frame in, no B-frames) and a fixed GOP, so a
segment can leave as soon as its frames are encoded. A segment never spans a keyframe: each
keyframe opens a new segment, which is where late readers may join the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from facecast.media import fmp4
from facecast.media.probe import AAC_SAMPLE_RATES
from facecast.media.writer import bgr_to_video_frame

AAC_FRAME = 1024  # samples per AAC frame
AAC_BITRATE = 64_000  # bit/s, mono speech
AAC_RATES = tuple(sorted(r for r in AAC_SAMPLE_RATES if 8000 <= r <= 48000))  # Hz, what fmp4 takes
VIDEO_TICKS_PER_FRAME = 1000  # video timescale = fps * this


@dataclass
class Fmp4Segment:
    """One media segment (moof + mdat) of a stream.

    seq: 1, 2, ... in stream order; keyframe: starts with an IDR frame (a join point);
    first_frame, frames: the output frames it holds; data: the bytes to send.
    """

    seq: int
    keyframe: bool
    first_frame: int
    frames: int
    data: bytes
    meta: dict = field(default_factory=dict)


def output_rate(rate: int) -> int:
    """The AAC rate (Hz) a stream of `rate` Hz audio is encoded at: the nearest AAC rate."""
    return min(AAC_RATES, key=lambda r: abs(r - rate))


class StreamEncoder:
    """(B, H, W, 3) uint8 BGR frames + (n,) float32 mono PCM -> init segment and Fmp4Segments.

    size: (width, height), even; fps: frames per second; sample_rate: one of AAC_RATES (Hz);
    keyint: frames between keyframes; max_frames: frames per segment at most.
    """

    def __init__(self, size: tuple[int, int], fps: int, sample_rate: int, *, keyint: int,
                 max_frames: int, preset: str = "ultrafast", crf: int = 23, threads: int = 1):
        if sample_rate not in AAC_RATES:
            raise ValueError(f"sample_rate={sample_rate!r} must be one of {AAC_RATES}")
        self.size, self.fps, self.sample_rate = size, fps, sample_rate
        self.keyint, self.max_frames = keyint, max_frames
        self.init: bytes | None = None
        self.codecs: str | None = None
        self.frames_in = 0
        self._video = _video_codec(size, fps, keyint, preset, crf, threads)
        self._audio = _audio_codec(sample_rate)
        self._pcm = np.zeros(0, np.float32)  # samples not yet handed to the AAC encoder
        self._pcm_fed = 0
        self._vsamples: list[fmp4.Sample] = []
        self._asamples: list[fmp4.Sample] = []
        self._vstart = 0  # decode time of the first pending video sample, in video ticks
        self._astart = 0  # decode time of the first pending audio sample, in samples
        self._seq = 0
        self._track: fmp4.VideoTrack | None = None

    def encode(self, frames: np.ndarray, pcm: np.ndarray) -> list[Fmp4Segment]:
        """Encode frames (B, H, W, 3) uint8 BGR and the audio that goes with them, (n,) float32.

        Returns the segments completed, the last one holding the frames just given.
        """
        out: list[Fmp4Segment] = []
        self._encode_audio(pcm)
        for frame in frames:
            for packet in self._video.encode(self._to_video_frame(frame)):
                if packet.is_keyframe and self._vsamples or len(self._vsamples) >= self.max_frames:
                    out.append(self._cut())
                self._add_video(packet)
        if self._vsamples:
            out.append(self._cut())
        return out

    def finish(self) -> list[Fmp4Segment]:
        """Flush both encoders (the stream ends); returns the last segments."""
        for packet in self._video.encode(None):
            self._add_video(packet)
        if len(self._pcm):
            self._pcm = np.concatenate([self._pcm, np.zeros(AAC_FRAME - len(self._pcm), np.float32)])
            self._encode_audio(np.zeros(0, np.float32))
        self._add_audio(self._audio.encode(None))
        return [self._cut(final=True)] if self._vsamples or self._asamples else []

    # -- internals ----------------------------------------------------------------------------
    def _to_video_frame(self, frame: np.ndarray) -> av.VideoFrame:
        vf = bgr_to_video_frame(frame)
        vf.pts = self.frames_in
        self.frames_in += 1
        return vf

    def _encode_audio(self, pcm: np.ndarray) -> None:
        """Append PCM and encode every whole AAC frame of it."""
        self._pcm = np.concatenate([self._pcm, np.asarray(pcm, np.float32).reshape(-1)])
        whole = len(self._pcm) // AAC_FRAME * AAC_FRAME
        for lo in range(0, whole, AAC_FRAME):
            frame = av.AudioFrame.from_ndarray(self._pcm[None, lo:lo + AAC_FRAME], format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self._pcm_fed
            frame.time_base = Fraction(1, self.sample_rate)
            self._pcm_fed += AAC_FRAME
            self._add_audio(self._audio.encode(frame))
        self._pcm = self._pcm[whole:]

    def _add_audio(self, packets) -> None:
        """Keep AAC packets; the encoder's priming packet (pts < 0) is dropped so audio starts at 0."""
        for packet in packets:
            if packet.pts is None or packet.pts < 0:
                continue
            if not self._asamples:
                self._astart = int(packet.pts)
            self._asamples.append(fmp4.Sample(bytes(packet), AAC_FRAME, True))

    def _add_video(self, packet) -> None:
        data, params = fmp4.split_access_unit(bytes(packet))
        if self._track is None:
            self._start_stream(params)
        if not self._vsamples:
            self._vstart = int(packet.pts) * VIDEO_TICKS_PER_FRAME
        self._vsamples.append(fmp4.Sample(data, VIDEO_TICKS_PER_FRAME, bool(packet.is_keyframe)))

    def _start_stream(self, params: dict[int, bytes]) -> None:
        """Build the init segment from the first keyframe's parameter sets."""
        if fmp4.NAL_SPS not in params or fmp4.NAL_PPS not in params:
            raise RuntimeError("the first H.264 packet carries no SPS/PPS")
        width, height = self.size
        self._track = fmp4.VideoTrack(width, height, self.fps * VIDEO_TICKS_PER_FRAME,
                                      params[fmp4.NAL_SPS], params[fmp4.NAL_PPS])
        audio = fmp4.AudioTrack(self.sample_rate)
        self.init = fmp4.init_segment(self._track, audio)
        self.codecs = f"{self._track.codec}, {audio.codec}"

    def _cut(self, final: bool = False) -> Fmp4Segment:
        """Pending samples -> one Fmp4Segment. Audio that would reach past the next keyframe's time
        waits for the keyframe's segment, so a reader joining there gets audio from that time on
        (its first AAC frame starts at most one frame, 1024 samples, before the keyframe)."""
        self._seq += 1
        held = [] if final else self._audio_past_next_keyframe()
        audio = self._asamples[:len(self._asamples) - len(held)]
        runs = [fmp4.TrackRun(fmp4.VIDEO_TRACK_ID, self._vstart, self._vsamples),
                fmp4.TrackRun(fmp4.AUDIO_TRACK_ID, self._astart, audio)]
        data = fmp4.media_segment(self._seq, runs)
        first = self._vstart // VIDEO_TICKS_PER_FRAME
        keyframe = bool(self._vsamples and self._vsamples[0].keyframe)
        segment = Fmp4Segment(self._seq, keyframe, first, len(self._vsamples), data)
        self._astart += AAC_FRAME * len(audio)
        self._vstart += VIDEO_TICKS_PER_FRAME * len(self._vsamples)
        self._vsamples, self._asamples = [], held
        return segment

    def _audio_past_next_keyframe(self) -> list[fmp4.Sample]:
        """The pending AAC frames that end after the time of the keyframe following these frames."""
        end_frame = self._vstart // VIDEO_TICKS_PER_FRAME + len(self._vsamples)
        next_key = -(-end_frame // self.keyint) * self.keyint
        limit = next_key * self.sample_rate / self.fps  # samples
        keep = sum(1 for i in range(len(self._asamples)) if self._astart + (i + 1) * AAC_FRAME <= limit)
        return self._asamples[keep:]

    @property
    def mime(self) -> str | None:
        """The MSE type of the stream, known once the first frame is encoded."""
        return None if self.codecs is None else f'video/mp4; codecs="{self.codecs}"'


def _video_codec(size, fps, keyint, preset, crf, threads) -> av.CodecContext:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = size
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps)
    codec.options = {"preset": preset, "tune": "zerolatency", "crf": str(crf),
                     "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:threads={threads}"}
    codec.open()
    return codec


def _audio_codec(rate: int) -> av.CodecContext:
    codec = av.CodecContext.create("aac", "w")
    codec.sample_rate = rate
    codec.layout = "mono"
    codec.format = "fltp"
    codec.bit_rate = AAC_BITRATE
    codec.time_base = Fraction(1, rate)
    codec.open()
    return codec
