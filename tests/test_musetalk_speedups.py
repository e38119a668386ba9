"""The musetalk speed-up switches: exact ones give the same numbers, approximate ones stay close
where it matters, bad names are refused, and switching one on never changes the loaded models."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from support.musetalk import avatar, clip, model_dir  # noqa: E402,F401  (fixtures)

from facecast.errors import InvalidArgument  # noqa: E402
from facecast.lipsync.musetalk import speedups  # noqa: E402
from facecast.lipsync.musetalk.backend import MuseTalkBackend  # noqa: E402
from facecast.lipsync.musetalk.crops import MASK_TOP  # noqa: E402
from facecast.lipsync.musetalk.random_weights import build  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def vae():
    return build("tiny", seed=3)[1].double().eval()


def test_parse_orders_checks_and_accepts_none():
    assert speedups.parse("fp8, lower-decode") == ("lower-decode", "fp8")
    assert speedups.parse(["lower-decode"]) == ("lower-decode",)
    assert speedups.parse(None) == speedups.parse("none") == speedups.parse("") == ()
    with pytest.raises(InvalidArgument, match="'lower-decoder'.*lower-decode"):
        speedups.parse("lower-decoder")


def test_lower_decode_computes_only_the_rows_the_mask_uses(vae):
    z = torch.randn(2, 4, 32, 32, dtype=torch.float64)
    first_row = MASK_TOP // 8 - speedups.LOWER_DECODE_HALO
    with torch.no_grad():
        full = vae.decode(z).sample
        lower = speedups.decode(vae, z, first_row)
    assert lower.shape == full.shape
    assert not lower[:, :, : first_row * 8].any()  # never computed
    error = ((lower - full)[:, :, MASK_TOP:] / 2).pow(2).mean().item()
    assert -10 * np.log10(error) > 25  # dB, in the rows the blend uses (a row shift gives ~10)


def test_apply_shares_what_it_does_not_change(model_dir):
    backend = MuseTalkBackend(model_dir, device="cpu", batch_size=2)
    net = backend.models.net
    fast = speedups.apply(net, ("lower-decode",))
    assert fast is not net and fast.vae is net.vae and fast.unet is net.unet
    assert fast.speedups == ("lower-decode",) and net.speedups == ()
    assert speedups.apply(net, ()) is net


def test_backend_renders_with_lower_decode(model_dir, avatar, clip):
    plain = MuseTalkBackend(model_dir, device="cpu", batch_size=2)
    features = plain.audio_features(clip, 25)[:2]
    index = np.zeros(2, np.int64)
    reference = plain.render(avatar, features, index)
    lower = MuseTalkBackend(model_dir, device="cpu", batch_size=2, speedups="lower-decode").render(avatar, features, index)
    assert lower.shape == reference.shape
    changed = np.any(lower != avatar.frames[0], axis=-1)
    assert changed.any()
    assert np.abs(lower.astype(int) - reference).mean() < 2.0  # grey levels, over the whole frame


def test_fp8_needs_a_recent_gpu(model_dir):
    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9):
        pytest.skip("this machine has an fp8 GPU")
    backend = MuseTalkBackend(model_dir, device="cpu", batch_size=2, speedups="fp8")
    with pytest.raises(InvalidArgument, match="fp8.*compute capability"):
        backend.warmup()


@cuda
def test_fp8_refuses_cuda_graphs(model_dir):
    with pytest.raises(InvalidArgument, match="fp8.*compile='none'"):
        MuseTalkBackend(model_dir, device="cuda", compile="cudagraph", speedups="fp8")


def test_env_names_the_switches(model_dir, monkeypatch):
    monkeypatch.setenv("FACECAST_MUSETALK_SPEEDUPS", "lower-decode")
    assert MuseTalkBackend(model_dir, device="cpu").speedups == ("lower-decode",)
    monkeypatch.setenv("FACECAST_MUSETALK_SPEEDUPS", "turbo")
    with pytest.raises(InvalidArgument, match="turbo"):
        MuseTalkBackend(model_dir, device="cpu")
