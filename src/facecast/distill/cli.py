"""`facecast distill decoder` and `facecast distill unet` (registered by facecast.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMON_EPILOG = """data:
  --avatar FILE|ID   portraits or short videos (prepared on first use through the avatar cache, like
                     `facecast prepare`), or prepared avatar ids; their 256x256 face crops (the musetalk
                     crop layout) are the training images, augmented (colour, scale, rotation, shifts,
                     mirroring; seeded). Repeatable.
  held out           a seeded share of the sources (--eval-fraction; one source: its last frames) is
                     kept for evaluation and never trained on.
budget:
  --steps N and/or --minutes M (training time, evaluation excluded): whichever comes first.
  Checkpoints go to --checkpoint (default: <output>.ckpt beside the output folder) every
  --checkpoint-every steps; after a kill, the same command with --resume continues and ends with
  the same weights as a run that never stopped (bitwise on a CPU).
numbers:
  every --eval-every steps: PSNR in dB of the student's images against the teacher's on the held-out
  set, over the whole 256x256 crop and over the mouth box (rows 152-240, columns 56-200). Higher is
  closer; above ~35 dB differences are hard to see.
"""

DECODER_EPILOG = COMMON_EPILOG + """targets:
  inputs are latents of augmented crops (the VAE posterior mean; --sample-fraction of them drawn from
  the posterior; --unet-fraction of them the teacher UNet's output for the masked crop and a speech
  window, what the decoder sees at run time); the target is the full VAE decoder's image of the same
  latents. Loss: pixel L1 + --mouth-weight x L1 on the mouth box + --edge-weight x Sobel-edge L1 on it.
output:
  <model-dir>/small-decoder/ (or -o DIR): an AutoencoderTiny folder (config.json,
  diffusion_pytorch_model.safetensors with the decoder only) and distill.json (teacher, preset, steps,
  final PSNR, seed); the musetalk backend's small-decoder option loads it.
examples:
  facecast distill decoder --model-dir models/ --avatar me.jpg --avatar me.mp4 --images photos/ --minutes 15
  facecast distill decoder --model-dir models/ --avatar me.jpg --steps 4000 --resume
"""

UNET_EPILOG = COMMON_EPILOG + """speech:
  --audio FILE (repeatable) plus --tts-sentences N offline text-to-speech sentences in --voices
  (default en,de,fr,es,it), turned into whisper windows by the model's own whisper encoder.
targets:
  inputs are the UNet's 8-channel latents of augmented crops (lower half masked + reference) and a
  speech window; the target is the teacher UNet's output latents. Loss: latent MSE (+ --pixel-weight
  x L1 of the decoded mouth box).
output:
  <model-dir>/musetalk-student/ (or -o DIR): musetalk.json, unet.pth and distill.json; it loads with
  the same --model-dir (the musetalk backend's student option).
examples:
  facecast distill unet --model-dir models/ --avatar me.mp4 --audio talk.wav --preset small --minutes 30
"""


def add_commands(sub) -> None:
    p = sub.add_parser("distill", help="train a small decoder or a student UNet from musetalk weights",
                       description="Distil the musetalk backend's networks into smaller, faster ones, "
                                   "trained on your avatars and speech with your model's outputs as targets.")
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    d = tasks.add_parser("decoder", help="a small VAE decoder (AutoencoderTiny layout), ~1/100 of the FLOPs",
                         description="Train a small decoder (diffusers' AutoencoderTiny decoder layout) to "
                                     "reproduce the full VAE decoder of --model-dir on your avatars' face crops "
                                     "and images.",
                         epilog=DECODER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(d, ["taesd", "narrow", "tiny"], "taesd", 1e-3)
    d.add_argument("--images", type=Path, action="append", default=[], metavar="DIR",
                   help="folder of other images (centre square of each); repeatable")
    d.add_argument("--sample-fraction", type=float, default=0.25, metavar="F",
                   help="share of latents drawn from the VAE posterior (default 0.25)")
    d.add_argument("--unet-fraction", type=float, default=0.25, metavar="F",
                   help="share of latents that are the teacher UNet's output (default 0.25; needs speech)")
    d.add_argument("--mouth-weight", type=float, default=1.0, help="weight of the mouth-box L1 (default 1)")
    d.add_argument("--edge-weight", type=float, default=0.5, help="weight of the mouth-box edge loss (default 0.5)")
    d.set_defaults(run=run_decoder)
    u = tasks.add_parser("unet", help="a student UNet (fewer blocks / narrower), started from the teacher",
                         description="Train a student UNet (a preset of the teacher's architecture with blocks "
                                     "removed or narrowed, started from its weights) to reproduce the teacher "
                                     "UNet's output latents on your avatars and speech.",
                         epilog=UNET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(u, ["base", "small", "tiny", "narrow"], "base", 5e-5)
    u.add_argument("--pixel-weight", type=float, default=0.0,
                   help="weight of an L1 on the decoded mouth box (default 0: latent MSE only)")
    u.set_defaults(run=run_unet, images=[])


def _common(p, presets: list[str], preset: str, lr: float) -> None:
    p.add_argument("--model-dir", type=Path, help="the teacher: a musetalk model directory (musetalkV15/ or "
                                                  "musetalk/, sd-vae/, whisper/); default FACECAST_MUSETALK_DIR")
    p.add_argument("-o", "--output", type=Path, help="export folder (default: inside --model-dir)")
    p.add_argument("--preset", choices=presets, default=preset, help=f"student size (default {preset})")
    p.add_argument("--avatar", "-a", action="append", default=[], metavar="FILE|ID",
                   help="portrait, video or prepared avatar id; repeatable")
    p.add_argument("--audio", type=Path, action="append", default=[], metavar="FILE", help="speech file; repeatable")
    p.add_argument("--tts-sentences", type=int, default=6, metavar="N",
                   help="offline TTS sentences added to the speech (default 6; 0: none)")
    p.add_argument("--voices", default="en,de,fr,es,it", help="TTS voices, comma-separated (default en,de,fr,es,it)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 2000 when --minutes is not given)")
    p.add_argument("--minutes", type=float, default=None, help="training minutes (evaluation excluded)")
    p.add_argument("--batch-size", type=int, default=16, help="samples per micro-batch (default 16)")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per optimiser step (default 1)")
    p.add_argument("--lr", type=float, default=lr, help=f"AdamW learning rate (default {lr:g})")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning rate: cosine (warm-up, then decay to lr/10 over the budget; default) or constant")
    p.add_argument("--warmup-steps", type=int, default=100, metavar="N", help="warm-up steps of cosine (default 100)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip (default 1; 0: none)")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="autocast of the student: auto = bfloat16 on CUDA, float32 on a CPU")
    p.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when available)")
    p.add_argument("--teacher-dtype", help="float16, bfloat16 or float32 (default float16 on a GPU, float32 on a CPU)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    p.add_argument("--checkpoint", type=Path, metavar="FILE", help="checkpoint file (default <output>.ckpt)")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N",
                   help="steps between checkpoints (default 200)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint after the export")
    p.add_argument("--eval-every", type=int, default=200, metavar="N", help="steps between evaluations (default 200)")
    p.add_argument("--eval-samples", type=int, default=32, metavar="N", help="held-out samples (default 32)")
    p.add_argument("--eval-fraction", type=float, default=0.1, metavar="F",
                   help="share of the sources held out (default 0.1)")
    p.add_argument("--max-crops", type=int, default=1000, metavar="N", help="crops kept in memory (default 1000)")
    p.add_argument("--frames-per-avatar", type=int, default=64, metavar="N",
                   help="frames taken from a video avatar (default 64)")
    p.add_argument("--max-windows", type=int, default=4096, metavar="N", help="speech windows kept (default 4096)")
    p.add_argument("--no-augment", action="store_true", help="train on the plain crops")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _settings(cls, args, **extra):
    from facecast.lipsync.musetalk.files import default_model_dir

    voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    return cls(model_dir=args.model_dir or default_model_dir(), output=args.output, preset=args.preset,
               avatars=tuple(args.avatar), images=tuple(args.images), audio=tuple(args.audio),
               tts_sentences=args.tts_sentences, voices=voices,
               steps=args.steps if args.steps is not None or args.minutes is not None else 2000, minutes=args.minutes,
               batch_size=args.batch_size, accumulate=args.accumulate, lr=args.lr, weight_decay=args.weight_decay,
               grad_clip=args.grad_clip, schedule=args.schedule, warmup_steps=args.warmup_steps, precision=args.precision, device=args.device, teacher_dtype=args.teacher_dtype,
               seed=args.seed, checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
               keep_checkpoint=args.keep_checkpoint, eval_every=args.eval_every, eval_samples=args.eval_samples,
               eval_fraction=args.eval_fraction, max_crops=args.max_crops, frames_per_avatar=args.frames_per_avatar,
               max_windows=args.max_windows, augment=not args.no_augment, **extra)


def run_decoder(args) -> int:
    from facecast.distill.decoder_task import train_decoder
    from facecast.distill.settings import DecoderSettings

    settings = _settings(DecoderSettings, args, sample_fraction=args.sample_fraction, unet_fraction=args.unet_fraction,
                         mouth_weight=args.mouth_weight, edge_weight=args.edge_weight)
    return _train(train_decoder, settings.check(), args.quiet, "decoder", "the full decoder")


def run_unet(args) -> int:
    from facecast.distill.settings import UnetSettings
    from facecast.distill.unet_task import train_unet

    settings = _settings(UnetSettings, args, pixel_weight=args.pixel_weight)
    return _train(train_unet, settings.check(), args.quiet, "unet", "the teacher UNet")


def _train(fn, settings, quiet: bool, kind: str, versus: str) -> int:
    from facecast.progress_bar import ProgressBar

    bar = ProgressBar(f"distilling {kind}", quiet, unit="step")

    def on_step(status) -> None:
        if bar.quiet:
            return
        bar.update(status.step, status.steps or 0)
        bar.bar.set_postfix_str(f"loss {status.loss:.4f}, {status.samples_per_s:.1f} samples/s", refresh=False)
        if status.evaluation:
            e = status.evaluation
            bar.bar.write(f"step {status.step}: held-out PSNR {e['psnr']:.2f} dB, mouth {e['psnr_mouth']:.2f} dB",
                          file=sys.stderr)

    with ProgressBar("preparing", quiet) as progress, bar:
        result = fn(settings, on_step=on_step, progress=progress)
    final = result.final
    where = f"wrote {result.output}" if result.output else "trained (not exported)"
    millions = result.provenance.get("parameters", 0) / 1e6
    print(f"{where}: {kind} preset {settings.preset} ({millions:.2f} M parameters), "
          f"{result.steps} steps, {result.samples} samples in {result.seconds:.0f} s; held-out PSNR vs {versus} "
          f"{final.get('psnr', float('nan')):.2f} dB (mouth {final.get('psnr_mouth', float('nan')):.2f} dB)")
    return 0
