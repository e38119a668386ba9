"""A render that fails part-way leaves no file: neither the output nor the writer's temporary file."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import portrait

from facecast.audio.pcm import Audio
from facecast.avatar.prepare import prepare
from facecast.config import RenderSettings
from facecast.engine import Speech, render_to_file
from facecast.lipsync.classic import ClassicBackend


class FailingBackend(ClassicBackend):
    """The classic backend, failing on its `fail_at`-th render call, once frames were encoded."""

    def __init__(self, fail_at: int, encoded: threading.Event):
        super().__init__()
        self.calls, self.fail_at, self.encoded = 0, fail_at, encoded

    def render(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            assert self.encoded.wait(30), "the encoder never wrote the first batches"
            raise RuntimeError("backend broke mid-render")
        return super().render(*args, **kwargs)


def test_a_render_failing_part_way_leaves_no_file(tmp_path):
    avatar = prepare(portrait("man_glasses_01.jpg"))
    rate = 16000
    t = np.arange(2 * rate) / rate
    speech = Speech(Audio((0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32),
                          rate))
    encoded = threading.Event()
    written = []

    def progress(done: int, total: int) -> None:
        written.append(done)
        encoded.set()

    backend = FailingBackend(fail_at=3, encoded=encoded)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="mid-render"):
        render_to_file(avatar, speech, out, RenderSettings(preset="ultrafast"), backend=backend, progress=progress)
    assert backend.calls == 3 and written and 0 < written[-1] < speech.audio.frame_count(25), written
    assert list(tmp_path.iterdir()) == [], "no output and no temporary file is left"
