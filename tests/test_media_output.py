"""MP4 files facecast writes: fast-start (moov before mdat) and the input's stereo kept as stereo
AAC, while the mouth moves from the mono mix. Media made here."""

from __future__ import annotations

import av
import numpy as np
import pytest

from conftest import portrait
from facecast.audio.mouth import mouth_track
from facecast.audio.pcm import Audio
from facecast.avatar.cache import AvatarCache
from facecast.avatar.prepare import prepare
from facecast.config import PrepareSettings, RenderSettings
from facecast.engine import render_to_file, speech_from_file
from support.media import stereo_wav, top_level_boxes


@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    cache = AvatarCache(tmp_path_factory.mktemp("cache"))
    return prepare(portrait("man_glasses_01.jpg"), PrepareSettings(max_long_side=256), cache=cache)


def test_rendered_mp4_is_fast_start_and_keeps_stereo(tmp_path, avatar):
    speech = speech_from_file(stereo_wav(tmp_path / "stereo.wav", seconds=1.0))
    assert speech.audio.channels.shape == (2, 16000)
    out = render_to_file(avatar, speech, tmp_path / "out.mp4", RenderSettings(fps=25))
    boxes = top_level_boxes(out.read_bytes())
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.channels == 2 and stream.codec_context.layout.name == "stereo"
        planes = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
    assert np.abs(planes[0]).max() > 0.3 and np.abs(planes[1]).max() < 0.05  # left tone, right silent


def test_mouth_motion_comes_from_the_mono_mix(tmp_path):
    stereo = speech_from_file(stereo_wav(tmp_path / "stereo.wav", seconds=1.0)).audio
    mono = Audio(stereo.channels.mean(axis=0).astype(np.float32), stereo.sample_rate)
    np.testing.assert_allclose(stereo.samples, mono.samples, atol=1e-6)
    np.testing.assert_allclose(mouth_track(stereo, 25), mouth_track(mono, 25), atol=1e-5)
