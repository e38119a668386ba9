"""The musetalk speed-up switches: exact ones give the same numbers, approximate ones stay close
where it matters, bad names are refused, and switching one on never changes the loaded models."""

from __future__ import annotations

import copy

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


def upsample_then_conv(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


@pytest.fixture(scope="module")
def vae():
    return build("tiny", seed=3)[1].double().eval()


def test_parse_orders_checks_and_accepts_none():
    assert speedups.parse("fp8, fused-upsample") == ("fused-upsample", "fp8")
    assert speedups.parse(["lower-decode"]) == ("lower-decode",)
    assert speedups.parse(None) == speedups.parse("none") == speedups.parse("") == ()
    with pytest.raises(InvalidArgument, match="'fuse-upsample'.*fused-upsample"):
        speedups.parse("fuse-upsample")


@pytest.mark.parametrize("channels,size", [(3, 5), (16, 8)])
def test_fused_upsample_conv_is_the_same_sum(channels, size):
    torch.manual_seed(channels)
    conv = torch.nn.Conv2d(channels, 2 * channels, 3, padding=1).double()
    x = torch.randn(2, channels, size, size + 3, dtype=torch.float64)
    fused = speedups.FusedUpsampleConv(conv)
    assert torch.allclose(fused(x), upsample_then_conv(conv, x), atol=1e-12)
    assert fused.weight.numel() * 9 == conv.weight.numel() * 16  # 4 phases of 2x2 against one 3x3


def test_fused_upsampling_decodes_the_same(vae):
    z = torch.randn(2, 4, 32, 32, dtype=torch.float64)
    fused = copy.deepcopy(vae)
    assert speedups.fuse_upsampling(fused.decoder) == len(vae.decoder.up_blocks) - 1
    with torch.no_grad():
        assert torch.allclose(speedups.decode(fused, z), vae.decode(z).sample, atol=1e-10)


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


def test_apply_copies_what_it_changes(model_dir):
    backend = MuseTalkBackend(model_dir, device="cpu", batch_size=2)
    net = backend.models.net
    fast = speedups.apply(net, ("fused-upsample", "lower-decode"))
    assert fast is not net and fast.vae is not net.vae and fast.unet is net.unet
    assert fast.speedups == ("fused-upsample", "lower-decode") and net.speedups == ()
    assert not any(isinstance(m, speedups.FusedUpsampleConv) for m in net.modules())
    assert any(isinstance(m, speedups.FusedUpsampleConv) for m in fast.modules())
    assert speedups.apply(net, ()) is net


def test_backend_renders_with_exact_and_approximate_switches(model_dir, avatar, clip):
    plain = MuseTalkBackend(model_dir, device="cpu", batch_size=2)
    features = plain.audio_features(clip, 25)[:2]
    index = np.zeros(2, np.int64)
    reference = plain.render(avatar, features, index)
    fused = MuseTalkBackend(model_dir, device="cpu", batch_size=2, speedups="fused-upsample")
    assert np.abs(fused.render(avatar, features, index).astype(int) - reference).max() <= 1
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


def test_env_names_the_switches(model_dir, monkeypatch):
    monkeypatch.setenv("FACECAST_MUSETALK_SPEEDUPS", "lower-decode")
    assert MuseTalkBackend(model_dir, device="cpu").speedups == ("lower-decode",)
    monkeypatch.setenv("FACECAST_MUSETALK_SPEEDUPS", "turbo")
    with pytest.raises(InvalidArgument, match="turbo"):
        MuseTalkBackend(model_dir, device="cpu")


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_upsample_conv_on_cuda(dtype, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).cuda().to(dtype, memory_format=fmt)
    x = torch.randn(4, 64, 32, 32, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
    with torch.no_grad():
        want = upsample_then_conv(conv, x).float()
        got = speedups.FusedUpsampleConv(conv)(x).float()
    assert (got - want).abs().max().item() <= 2e-2 * want.abs().max().item()
