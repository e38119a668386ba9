"""Throughput and latency of the musetalk backend on a CUDA GPU.

Full-size random weights are built here, on the GPU (nothing is downloaded); --model-dir uses real
ones instead. For each compile mode and batch size it times, with CUDA events after warm-up:

  bare   the network alone: UNet step + VAE decode, (B, 8, 32, 32) latents -> (B, 3, 256, 256)
  e2e    render_device: gather avatar latents + UNet + VAE decode + paste into the avatar's
         frames, features and frames already on the GPU -> (B, H, W, 3) uint8
  ttff   time to first frame of a stream: push the first 200 ms of audio (whisper on the GPU),
         render the frames it releases, copy them to the host (wall clock, median of 5)

    python benchmarks/bench_musetalk.py                                  # reduce-overhead + cudagraph, batches 4 16 48
    python benchmarks/bench_musetalk.py --modes reduce-overhead --batches 16
    python benchmarks/bench_musetalk.py --avatar portrait.jpg --json results.jsonl
    python benchmarks/bench_musetalk.py --speedups none lower-decode                  # each on and off
    python benchmarks/bench_musetalk.py --variants teacher/taesd base/taesd --batches 1 4 16   # small decoder, students

The avatar is --avatar (prepared on first use), else ../shared/data's 512x512 webcam portrait,
else the first avatar already prepared in FACECAST_CACHE_DIR.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facecast.lipsync.musetalk.backend import MuseTalkBackend
from facecast.lipsync.musetalk.crops import MASK_TOP
from facecast.lipsync.musetalk.loading import assemble, load_models, resolve_dtype
from facecast.lipsync.musetalk.network import LATENT

DEFAULT_PORTRAIT = Path(__file__).resolve().parents[2] / "shared/data/portraits/man_webcam_offcenter_01.jpg"
FEATURE_SETS = 4  # distinct inputs rotated through, so no run reads what the previous one cached
CHUNK_S = 0.200  # s: first audio chunk of a stream


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_musetalk: no CUDA GPU here (--device cpu --size tiny runs a smoke test)", file=sys.stderr)
        return 2
    dtype = resolve_dtype(args.dtype, device)
    torch.backends.cudnn.benchmark = True
    avatar = load_avatar(args.avatar)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows, references = [], {}
    for variant in args.variants:
        models = build_models(args.model_dir, args.size, device, dtype, variant)
        flops = frame_flops(models, dtype)
        print(f"device: {name}; torch {torch.__version__}; dtype {args.dtype}; avatar {avatar.size[0]}x{avatar.size[1]} "
              f"({avatar.frame_count} frame(s)); {variant}: {flops / 1e12:.3f} TFLOP per frame", flush=True)
        for mode in args.modes:
            for batch in args.batches:
                for switches in args.speedups:
                    row = bench(models, avatar, mode, batch, switches, args, references.setdefault(variant, {}),
                                ttff=batch in args.ttff_batches)
                    row.update(variant=variant, device=name, dtype=args.dtype, tflop_per_frame=round(flops / 1e12, 4),
                               e2e_tflops=round(row["e2e_fps"] * flops / 1e12, 1))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps(row) + "\n")
        del models
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print_table(rows)
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[4, 16, 48])
    p.add_argument("--modes", nargs="+", default=["reduce-overhead", "cudagraph"],
                   help="compile modes: none cudagraph default reduce-overhead max-autotune-no-cudagraphs ...")
    p.add_argument("--speedups", nargs="+", default=["none"],
                   help="speed-up sets to compare, each a row: none, or comma-joined names of "
                        "lower-decode fp8 (e.g. none lower-decode); fidelity is against the plain "
                        "eager network in the same dtype on the same inputs")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--steps", type=int, default=40, help="timed steps per row")
    p.add_argument("--ttff-batches", type=int, nargs="*", default=[16],
                   help="batch sizes whose rows also time a stream's first frame")
    p.add_argument("--variants", nargs="+", default=["teacher/full"],
                   help="networks, each UNET/DECODER: UNET teacher or a student preset (base small tiny "
                        "narrow), DECODER full or a small-decoder preset (taesd narrow tiny); random "
                        "weights (students made from the random teacher); with --model-dir: "
                        "teacher|student / full|small from its files")
    p.add_argument("--model-dir", type=Path, help="real MuseTalk weights instead of random ones")
    p.add_argument("--size", default="full", choices=["full", "tiny"], help="random-weight size (tiny: smoke test)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--avatar", type=Path, help="portrait or video (default: the 512x512 test portrait)")
    p.add_argument("--json", type=Path, help="append one JSON line per row here")
    return p.parse_args(argv)


def load_avatar(path: Path | None):
    source = path or (DEFAULT_PORTRAIT if DEFAULT_PORTRAIT.is_file() else None)
    if source is not None:
        from facecast.avatar.prepare import prepare

        return prepare(source)
    from facecast.avatar.cache import AvatarCache

    cache = AvatarCache()
    entries = cache.list()
    if not entries:
        raise SystemExit("bench_musetalk: no --avatar, no test portrait, and no prepared avatar in the cache")
    return cache.load(entries[0]["id"])


def build_models(model_dir: Path | None, size: str, device: torch.device, dtype: torch.dtype, variant: str):
    """The networks of `variant` ("UNET/DECODER", see --variants)."""
    unet_kind, _, decoder_kind = variant.partition("/")
    if model_dir is not None:
        from facecast.lipsync.musetalk.files import locate

        return load_models(locate(model_dir, unet_kind, decoder_kind or "full"), device, dtype)
    from facecast.lipsync.musetalk.random_weights import build
    from facecast.lipsync.musetalk.small_decoder import build_decoder, decoder_config
    from facecast.lipsync.musetalk.student_unet import make_student

    with torch.device(device):  # initialise the random weights on the GPU: seconds instead of a minute
        unet, vae, whisper, extractor = build(size, seed=0)
        if unet_kind != "teacher":
            unet = make_student(unet, unet_kind, seed=0)[0]
        decoder = None if decoder_kind in ("", "full") else build_decoder(decoder_config(decoder_kind))
    return assemble(unet, vae, whisper.get_encoder(), extractor.mel_filters, f"random-{size}", device, dtype,
                    decoder=decoder, unet_kind="teacher" if unet_kind == "teacher" else "student")


def frame_flops(models, dtype: torch.dtype) -> float:
    """Floating-point operations of the network for one frame (torch's flop counter, batch 1)."""
    from torch.utils.flop_counter import FlopCounterMode

    latents = torch.randn(1, 8, LATENT, LATENT, device=models.device, dtype=dtype)
    audio = torch.randn(1, 50, models.whisper.width, device=models.device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        models.net(latents, audio)
    return float(counter.get_total_flops())


def bench(models, avatar, mode: str, batch: int, switches: str, args, references: dict, ttff: bool) -> dict:
    """One row: setup, bare and e2e speed, and the fidelity of the output to the plain network's
    (eager, no speed-ups, same dtype and inputs; kept in references[batch])."""
    cuda = models.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    backend = MuseTalkBackend(models=models, batch_size=batch, compile=mode, speedups=switches)
    backend.prepare(avatar)
    start = time.perf_counter()
    backend.warmup()
    setup_s = time.perf_counter() - start
    rows, width = backend.condition_shape
    device = models.device
    g = torch.Generator(device=device).manual_seed(1)
    features = [torch.randn(batch, rows, width, device=device, generator=g).to(models.dtype)
                for _ in range(FEATURE_SETS)]
    latents = [torch.randn(batch, 8, LATENT, LATENT, device=device, generator=g).to(models.dtype)
               for _ in range(FEATURE_SETS)]
    index = torch.arange(batch, device=device) % avatar.frame_count

    def bare(i):
        return backend._call(latents[i % FEATURE_SETS], features[i % FEATURE_SETS])

    def e2e(i):
        return backend.render_device(avatar, features[i % FEATURE_SETS], index)

    bare_ms, sample = timed(bare, args.steps)
    finite = bool(torch.isfinite(sample).all())
    output = bare(0).float().clone()
    if batch not in references:  # the plain network, eager, in the model dtype, on the same inputs
        with torch.inference_mode():
            references[batch] = models.net(latents[0], features[0]).float()
    fidelity = crop_fidelity(output, references[batch])
    e2e_ms, frames = timed(e2e, args.steps)
    changed = float((frames[0] != torch.as_tensor(avatar.frames[0], device=device)).any(-1).float().mean())
    row = {"mode": mode, "batch": batch, "speedups": ",".join(backend.speedups) or "none",
           "setup_s": round(setup_s, 1), **fidelity,
           "bare_fps": round(batch * 1000 / bare_ms, 1), "bare_ms": round(bare_ms, 2),
           "e2e_fps": round(batch * 1000 / e2e_ms, 1), "e2e_ms": round(e2e_ms, 2),
           "finite": finite, "changed_share": round(changed, 4),
           "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else 0.0}
    if ttff:
        row.update(time_to_first_frame(backend, avatar))
    return row


def crop_fidelity(output: torch.Tensor, reference: torch.Tensor | None) -> dict:
    """PSNR (dB, peak 1) of redrawn crops (B, 3, 256, 256) in [0, 1] against the reference: whole
    crops, and their lower half (rows >= MASK_TOP, the only rows the blend mask uses)."""
    if reference is None:
        return {}
    error = (output - reference).pow(2)
    whole, lower = error.mean().item(), error[:, :, MASK_TOP:].mean().item()
    return {"psnr_db": round(psnr(whole), 1), "psnr_lower_db": round(psnr(lower), 1)}


def psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * np.log10(mse)


def timed(step, steps: int, warmup: int = 3) -> tuple[float, torch.Tensor]:
    """Mean ms per call of `steps` back-to-back calls between CUDA events, after `warmup` calls."""
    for i in range(warmup):
        out = step(i)
    if not torch.cuda.is_available():
        start = time.perf_counter()
        for i in range(steps):
            out = step(i)
        return (time.perf_counter() - start) * 1000 / steps, out.clone()
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for i in range(steps):
        out = step(i)
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / steps, out.clone()


def time_to_first_frame(backend, avatar, trials: int = 5) -> dict:
    """Push the first 200 ms of a fresh stream, render what it releases, copy to the host."""
    rng = np.random.default_rng(2)
    chunk = (0.1 * rng.standard_normal(int(CHUNK_S * 16000))).astype(np.float32)
    times, push_times, released = [], [], 0
    for trial in range(trials + 1):  # the first trial warms the whisper path
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        stream = backend.stream_features(16000, 25)
        features = stream.push(chunk)
        pushed = time.perf_counter()
        frames = backend.render(avatar, features, avatar.source_index(np.arange(len(features))))
        done = time.perf_counter()
        assert frames.shape[0] == len(features) > 0
        if trial:
            times.append((done - start) * 1000)
            push_times.append((pushed - start) * 1000)
        released = len(features)
    return {"ttff_ms": round(statistics.median(times), 1), "ttff_whisper_ms": round(statistics.median(push_times), 1),
            "ttff_frames": released}


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    print(f"\n{rows[0]['device']}, {rows[0]['dtype']}")
    print(f"{'variant':<16}{'mode':<18}{'speedups':<44}{'batch':>6}{'GF/frame':>9}{'bare f/s':>10}{'e2e f/s':>10}{'ms/step':>9}"
          f"{'TTFF ms':>9}{'PSNR dB':>9}{'lower dB':>9}{'setup s':>9}{'GiB':>6}")
    for r in rows:
        ttff = f"{r['ttff_ms']:.0f}" if "ttff_ms" in r else "-"
        whole, lower = (f"{r[k]:.1f}" if k in r else "-" for k in ("psnr_db", "psnr_lower_db"))
        print(f"{r['variant']:<16}{r['mode']:<18}{r['speedups']:<44}{r['batch']:>6}{r['tflop_per_frame'] * 1000:>9.0f}{r['bare_fps']:>10.0f}{r['e2e_fps']:>10.0f}"
              f"{r['e2e_ms']:>9.1f}{ttff:>9}{whole:>9}{lower:>9}{r['setup_s']:>9.1f}{r['peak_gib']:>6.1f}")


if __name__ == "__main__":
    sys.exit(main())
