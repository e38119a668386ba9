"""Optional speed-ups of the full-decoder network, each one a named switch measured on and off
(benchmarks/bench_musetalk.py --speedups; numbers in docs/musetalk.md).

    lower-decode  approximate: the VAE decoder's high-resolution stages (from up block
                  LOWER_DECODE_STAGE, 128x128 and 256x256) run on the crop's lower rows only (rows
                  >= crops.MASK_TOP - LOWER_DECODE_HALO latent rows), the only ones the blend mask
                  ever uses; the stages before run whole. GroupNorm statistics of the cut stages come
                  from the rows they see, so the result differs slightly. H200, float16, batch 16,
                  reduce-overhead: 33.2 -> 26.4 ms per step, 36.9 dB PSNR in the used rows.
    fp8           Hopper or Ada (compute capability >= 8.9) and torchao: the UNet's linear layers in
                  float8 with dynamic activation scales (per row for bfloat16 models, per tensor for
                  float16 ones: torchao's per-row kernels take bfloat16 only). Eager only
                  (compile="none"): under CUDA graphs torchao 0.18 with torch 2.11 hit an illegal
                  memory access on the H200, and inductor had not compiled it after 150 s. Eager
                  float16, batch 16: 72 -> 103 ms per step (slower), 41 dB.

Tried and dropped (docs/musetalk.md): the decoder's "nearest 2x + 3x3 convolution" as one 2x2
convolution on the low-resolution grid (exact, but cuDNN ran it 3 % slower), and forcing the flash
attention kernel (it refuses the VAE's single 512-wide head).

`apply(net, names)` returns a LipsyncNet with the switches on; `SPEEDUPS` lists them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facecast.errors import InvalidArgument, MissingDependency

SPEEDUPS = ("lower-decode", "fp8")
EAGER_ONLY = ("fp8",)  # switches that fail under CUDA graphs (see above)
LOWER_DECODE_STAGE = 2  # decoder up block from which only the lower rows are computed (128x128 and up)
LOWER_DECODE_HALO = 2  # latent rows (x8 px) above the mask's top row computed as a margin
FP8_MIN_FEATURES = 128  # linear layers narrower than this stay in the model dtype


def parse(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """"lower-decode,fp8" (or a sequence, or None/"" / "none") -> checked names in SPEEDUPS order."""
    if value is None:
        return ()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in SPEEDUPS]
    if unknown:
        raise InvalidArgument(f"speedups: {', '.join(map(repr, unknown))} not among {', '.join(SPEEDUPS)}")
    return tuple(n for n in SPEEDUPS if n in names)


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
        if index == stage:
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


def apply(net: nn.Module, names: tuple[str, ...]) -> nn.Module:
    """A LipsyncNet running with `names` switched on; the networks it changes are copies, so `net`
    (and the backend's loaded models) stay as they were. No names: `net` itself."""
    if not names:
        return net
    import copy

    fast = copy.copy(net)  # a new module object sharing every submodule ...
    fast._modules = dict(net._modules)  # ... until one is replaced below
    if "fp8" in names:
        fast.unet = copy.deepcopy(net.unet)
        float8_linears(fast.unet)
    fast.speedups = names
    return fast
