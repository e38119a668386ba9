"""Write MP4 files (H.264 + AAC) in-process with PyAV, atomically and fast-start.

The file appears under its final name only when it is complete; on any error the
temporary file is removed, so a failed render never leaves a partial output. The movie
header (moov) is written before the media data (mdat), so a browser can start playing
before the whole file has arrived.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from facecast.media.probe import aac_rate

if TYPE_CHECKING:  # media sits below audio: audio/decode asks media/probe what a file is
    from facecast.audio.pcm import Audio

AAC_BITRATE = 128_000  # bit/s, mono; stereo gets twice this
MUXER_OPTIONS = {"movflags": "+faststart"}  # moov before mdat
LAYOUTS = {1: "mono", 2: "stereo"}  # channel count -> FFmpeg layout name


def bgr_to_video_frame(frame: np.ndarray) -> av.VideoFrame:
    """(H, W, 3) uint8 BGR with even H, W -> a yuv420p VideoFrame."""
    yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


class Mp4Writer:
    """Encode BGR frames and audio to an MP4 file.

    size: (width, height), both even; fps: frames per second; audio: the whole
    soundtrack (interleaved with the video as frames arrive) or None; written with the
    input's channels (audio.output_channels: stereo stays stereo) as AAC.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: int, audio: Audio | None = None,
                 *, crf: int = 23, preset: str = "ultrafast"):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.part")
        self.fps = fps
        self.frames_written = 0
        self._audio = audio
        self._audio_sent = 0
        self._container = av.open(str(self.tmp), mode="w", format="mp4", options=MUXER_OPTIONS)
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = Fraction(1, fps)
        self._video.options = {"crf": str(crf), "preset": preset}
        self._astream = None
        if audio is not None:
            self._planes = audio.output_channels
            self._layout = LAYOUTS[len(self._planes)]
            self._rate = aac_rate(audio.sample_rate)
            self._astream = self._container.add_stream("aac", rate=self._rate)
            self._astream.bit_rate = AAC_BITRATE * len(self._planes)
            self._astream.layout = self._layout
            self._resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=self._rate)

    def write(self, frames: np.ndarray) -> None:
        """frames: (B, H, W, 3) or (H, W, 3) uint8 BGR."""
        if frames.ndim == 3:
            frames = frames[None]
        for frame in frames:
            vf = bgr_to_video_frame(frame)
            vf.pts = self.frames_written
            self._container.mux(self._video.encode(vf))
            self.frames_written += 1
        self._send_audio(self.frames_written / self.fps)

    def _send_audio(self, until_s: float | None) -> None:
        """Encode the soundtrack up to `until_s` seconds (None: all of it)."""
        if self._audio is None:
            return
        sr = self._audio.sample_rate
        total = self._planes.shape[1]
        stop = total if until_s is None else min(total, int(until_s * sr))
        if stop <= self._audio_sent:
            return
        chunk = np.ascontiguousarray(self._planes[:, self._audio_sent: stop], dtype=np.float32)
        af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._layout)
        af.sample_rate = sr
        af.pts = self._audio_sent
        af.time_base = Fraction(1, sr)
        for resampled in self._resampler.resample(af):
            self._container.mux(self._astream.encode(resampled))
        self._audio_sent = stop

    def close(self) -> Path:
        """Flush the encoders and move the file to its final name."""
        self._send_audio(None)
        self._container.mux(self._video.encode(None))
        if self._astream is not None:
            for resampled in self._resampler.resample(None):
                self._container.mux(self._astream.encode(resampled))
            self._container.mux(self._astream.encode(None))
        self._container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; no file is left behind."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may already be broken
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
