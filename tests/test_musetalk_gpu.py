"""The musetalk backend on a CUDA GPU (fp16, CUDA graph) against the CPU float32 reference.

Skipped where torch or CUDA is missing. The avatar is support.musetalk's: the usual test portrait
when mediapipe and the test media are there, else any avatar already prepared in FACECAST_CACHE_DIR.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from support.musetalk import avatar  # noqa: E402,F401  (fixture: the test portrait, or a prepared avatar)

from facecast.lipsync.musetalk.backend import MuseTalkBackend  # noqa: E402
from facecast.lipsync.musetalk.random_weights import write_model_dir  # noqa: E402

ROWS, WIDTH = 50, 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("musetalk-gpu"), "tiny", "v1.5")


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, ROWS, WIDTH)).astype(np.float32)


def test_fp16_graph_matches_cpu_float32(model_dir, avatar, features):
    gpu = MuseTalkBackend(model_dir, batch_size=4, compile="cudagraph")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    cpu = MuseTalkBackend(model_dir, device="cpu", batch_size=4)
    index = np.zeros(6, np.int64)
    fast, slow = gpu.render(avatar, features, index), cpu.render(avatar, features, index)
    assert fast.shape == slow.shape == (6,) + avatar.frames.shape[1:]
    changed = np.any(slow != avatar.frames[0], axis=-1)
    assert changed.any()
    assert np.abs(fast.astype(int) - slow)[changed].mean() < 2.0


def test_graphs_replay_what_eager_computes(model_dir, avatar, features):
    graphed = MuseTalkBackend(model_dir, batch_size=4, compile="cudagraph")
    eager = MuseTalkBackend(model_dir, batch_size=4, compile="none")
    index = np.array([0, 0, 0, 0, 0], np.int64)
    a, b = graphed.render(avatar, features[:5], index), eager.render(avatar, features[:5], index)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_default_is_inductor_kernels_as_graphs(model_dir, avatar, features):
    compiled = MuseTalkBackend(model_dir, batch_size=4)
    assert compiled.compile == "reduce-overhead" and compiled.dtype == torch.float16
    eager = MuseTalkBackend(model_dir, batch_size=4, compile="none")
    index = np.zeros(5, np.int64)
    a, b = compiled.render(avatar, features[:5], index), eager.render(avatar, features[:5], index)
    assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 1.0


def test_device_batches_stay_on_the_device(model_dir, avatar, features):
    backend = MuseTalkBackend(model_dir, batch_size=4)
    frames = backend.render_device(avatar, torch.from_numpy(features[:3]).cuda(), torch.zeros(3, dtype=torch.long))
    assert frames.is_cuda and frames.dtype == torch.uint8 and frames.shape[0] == 3


def test_stream_on_the_gpu(model_dir):
    backend = MuseTalkBackend(model_dir)
    stream = backend.stream_features(16000, 25)
    speech = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1  # 1 s: 25 frames
    assert stream.push(speech).shape == (22, ROWS, WIDTH)  # 640 f + 2560 <= 16000
    assert stream.flush().shape == (3, ROWS, WIDTH)
