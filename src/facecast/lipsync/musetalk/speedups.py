"""Optional speed-ups of the full-decoder network, each one a named switch measured on and off.

    fused-upsample   exact: every "nearest 2x, then 3x3 convolution" of the VAE decoder runs as one
                     2x2 convolution on the low-resolution grid (4 output phases) and an interleave:
                     the same sums in another order, 16/36 of the multiply-adds of those layers.
    lower-decode     approximate: the decoder's high-resolution stages run on the crop's lower rows
                     only (rows >= crops.MASK_TOP - halo), the only ones the blend mask ever uses; the
                     stages before run whole. GroupNorm statistics of the cut stages come from the
                     rows they see, so the result differs slightly (its fidelity is in the benchmark).
    fp8              Hopper (compute capability >= 8.9) and torchao: the UNet's linear layers in
                     float8 with dynamic activation scales (per row for bfloat16 models, per tensor
                     for float16 ones: torchao's per-row kernels take bfloat16 only).
    flash-attention  every scaled-dot-product attention through the flash kernel (else PyTorch picks).

Each is applied to an assembled LipsyncNet by `apply(net, names)`; `SPEEDUPS` lists them.
Convolutions have no float8 kernel in PyTorch, so "fp8" reaches the UNet's projections only.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from facecast.errors import InvalidArgument, MissingDependency

SPEEDUPS = ("fused-upsample", "lower-decode", "fp8", "flash-attention")
LOWER_DECODE_STAGE = 2  # decoder up block from which only the lower rows are computed (128x128 and up)
LOWER_DECODE_HALO = 2  # latent rows (x8 px) above the mask's top row computed as a margin
FP8_MIN_FEATURES = 128  # linear layers narrower than this stay in the model dtype
_PHASE_ROWS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],   # output phase 0 reads rows (i-1, i)
                            [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # output phase 1 reads rows (i, i+1)


def parse(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """"fused-upsample,fp8" (or a sequence, or None/"" / "none") -> checked names in SPEEDUPS order."""
    if value is None:
        return ()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in SPEEDUPS]
    if unknown:
        raise InvalidArgument(f"speedups: {', '.join(map(repr, unknown))} not among {', '.join(SPEEDUPS)}")
    return tuple(n for n in SPEEDUPS if n in names)


class FusedUpsampleConv(nn.Module):
    """Nearest 2x upsampling followed by a 3x3 convolution (padding 1), on the low-resolution grid.

    For output pixel (2i + a, 2j + b) the 3x3 kernel only ever reads 2x2 input pixels, so one 2x2
    convolution of the zero-padded input with 4 x C_out channels (phase-major: a, b) computes all
    four phases; an interleave puts them in place. (B, C_in, H, W) -> (B, C_out, 2H, 2W).
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ValueError(f"FusedUpsampleConv needs a 3x3, padding 1, stride 1 convolution; got {conv}")
        w = conv.weight.detach().double()  # (O, I, 3, 3)
        rows = _PHASE_ROWS.to(w)
        kernel = torch.einsum("apr,oirc,bqc->aboipq", rows, w, rows)  # (2, 2, O, I, 2, 2)
        out_ch = w.shape[0]
        self.out_channels = out_ch
        self.weight = nn.Parameter(kernel.reshape(4 * out_ch, w.shape[1], 2, 2).to(conv.weight.dtype),
                                   requires_grad=False)
        bias = conv.bias.detach().repeat(4) if conv.bias is not None else None
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor, output_size=None, *args, **kwargs) -> torch.Tensor:
        b, _, h, w = x.shape
        out = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias)  # (B, 4 O, H + 1, W + 1)
        out = out.view(b, 2, 2, self.out_channels, h + 1, w + 1)
        top = torch.stack([out[:, 0, 0, :, :h, :w], out[:, 0, 1, :, :h, 1:]], dim=-1)  # (B, O, H, W, 2)
        bottom = torch.stack([out[:, 1, 0, :, 1:, :w], out[:, 1, 1, :, 1:, 1:]], dim=-1)
        y = torch.stack([top, bottom], dim=-3)  # (B, O, H, 2, W, 2)
        return y.reshape(b, self.out_channels, 2 * h, 2 * w).contiguous(memory_format=torch.channels_last)


def fuse_upsampling(decoder: nn.Module) -> int:
    """Replace each interpolating Upsample2D of a diffusers VAE Decoder by FusedUpsampleConv; returns how many."""
    count = 0
    for block in decoder.up_blocks:
        samplers = getattr(block, "upsamplers", None) or []
        for i, sampler in enumerate(samplers):
            conv = getattr(sampler, "conv", None)
            if (getattr(sampler, "interpolate", False) and getattr(sampler, "use_conv", False)
                    and not getattr(sampler, "use_conv_transpose", False) and getattr(sampler, "norm", None) is None
                    and isinstance(conv, nn.Conv2d)):
                samplers[i] = FusedUpsampleConv(conv)
                count += 1
    return count


def decode(vae: nn.Module, z: torch.Tensor, first_row: int | None = None,
           stage: int = LOWER_DECODE_STAGE) -> torch.Tensor:
    """The VAE decode of scaled-back latents z (B, 4, h, w) -> (B, 3, 8h, 8w) in [-1, 1].

    first_row: None decodes everything (what vae.decode does). Else, from up block `stage` on, only
    feature rows at or below latent row `first_row` (scaled to the stage's resolution) are computed;
    the rows above come back as zeros.
    """
    if vae.post_quant_conv is not None:
        z = vae.post_quant_conv(z)
    dec = vae.decoder
    if first_row is None:
        return dec(z)
    x = dec.conv_in(z)
    x = dec.mid_block(x, None)
    cut = 0
    for index, block in enumerate(dec.up_blocks):
        if first_row is not None and index == stage:
            cut = first_row * x.shape[-2] // z.shape[-2]
            x = x[:, :, cut:]
        x = block(x, None)
    x = dec.conv_out(dec.conv_act(dec.conv_norm_out(x)))
    if cut:
        x = F.pad(x, (0, 0, z.shape[-2] * 8 - x.shape[-2], 0))
    return x


def float8_linears(module: nn.Module) -> int:
    """Quantise `module`'s linear layers (both sides >= FP8_MIN_FEATURES, multiples of 16) to float8
    with torchao (dynamic activation scales: per row in bfloat16, per tensor otherwise). Returns how
    many layers were converted."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        raise InvalidArgument("speedup 'fp8' needs a CUDA GPU of compute capability 8.9 or newer (Ada, Hopper)")
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_
    except ImportError as exc:
        raise MissingDependency(f"speedup 'fp8' needs torchao (pip install torchao): {exc}") from None

    def eligible(layer: nn.Module, _name: str) -> bool:
        return (isinstance(layer, nn.Linear) and min(layer.in_features, layer.out_features) >= FP8_MIN_FEATURES
                and layer.in_features % 16 == 0 and layer.out_features % 16 == 0)

    count = sum(eligible(m, n) for n, m in module.named_modules())
    bf16 = next(module.parameters()).dtype == torch.bfloat16
    config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow() if bf16 else PerTensor())
    quantize_(module, config, filter_fn=eligible)
    return count


def attention_context(names: tuple[str, ...]):
    """The context every network call runs in: the flash kernel for attention when asked."""
    if "flash-attention" not in names:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def apply(net: nn.Module, names: tuple[str, ...]) -> nn.Module:
    """A LipsyncNet running with `names` switched on; the networks it changes are copies, so `net`
    (and the backend's loaded models) stay as they were. No names: `net` itself."""
    if not names:
        return net
    import copy

    fast = copy.copy(net)  # a new module object sharing every submodule ...
    fast._modules = dict(net._modules)  # ... until one is replaced below
    if "fused-upsample" in names:
        fast.vae = copy.deepcopy(net.vae)
        fuse_upsampling(fast.vae.decoder)
    if "fp8" in names:
        fast.unet = copy.deepcopy(net.unet)
        float8_linears(fast.unet)
    fast.speedups = names
    return fast
