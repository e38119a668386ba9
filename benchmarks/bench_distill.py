"""Distillation fidelity after a fixed training budget: the small decoder against the full VAE
decoder, and student UNets against the teacher, PSNR (dB) overall and on the mouth region of
held-out face crops (facecast.distill's evaluation), with steps, samples/s and parameters.

Teachers are full-size random weights of the MuseTalk architecture built on the device (nothing
is downloaded), or the user's real weights with --model-dir. Training data: face crops of
portraits and talking clips, and speech in several languages. A GPU machine without mediapipe or
espeak gets them packed here first:

    python benchmarks/bench_distill.py pack --out .gpu-data              # here: crops + speech
    python benchmarks/bench_distill.py train --data .gpu-data --minutes 4 --tasks decoder:taesd unet:base
    python benchmarks/bench_distill.py train --model-dir models/ --avatars me.mp4 --audio talk.wav --minutes 15

Speed of the results (frames/s of students and small decoders) is bench_musetalk.py --variants.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared/data"
PORTRAITS = ("man_webcam_offcenter_01.jpg", "woman_frontal_slight_turn_01.jpg", "man_frontal_mouth_open_01.jpg",
             "man_glasses_01.jpg", "woman_face_near_left_edge_01.jpg", "man_face_fills_frame_01.jpg")
CLIPS = ("man_suit_6s.mp4", "man_map_background_5s.mp4", "woman_blue_background_7s.mp4", "woman_glasses_5s.mp4")
SPEECH = ("en_radio_address_01_8s.wav", "en_radio_address_02_8s.wav", "de_01_9s.wav", "fr_01_7s.wav",
          "ru_01_6s.wav", "ja_01_9s.wav", "zh_news_01_8s.wav")
SPEECH_RATE = 16000  # Hz: packed speech
JPEG_QUALITY = 95


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return pack(args) if args.command == "pack" else train(args)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("pack", help="face crops and speech into a folder a GPU machine can read without mediapipe")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--frames-per-clip", type=int, default=48)
    t = sub.add_parser("train", help="train each task for the budget, print the fidelity table")
    t.add_argument("--tasks", nargs="+", default=["decoder:taesd", "unet:base"],
                   help="decoder:PRESET (taesd narrow tiny) and unet:PRESET (base small tiny narrow)")
    t.add_argument("--minutes", type=float, default=4.0, help="training budget of each task")
    t.add_argument("--steps", type=int, help="a steps budget instead (reproducible)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--eval-every", type=int, default=200)
    t.add_argument("--data", type=Path, help="a folder made by `pack`")
    t.add_argument("--avatars", nargs="*", default=[], help="portraits/videos instead of --data (needs mediapipe)")
    t.add_argument("--audio", nargs="*", type=Path, default=[], help="speech files instead of --data")
    t.add_argument("--model-dir", type=Path, help="real MuseTalk weights instead of random full-size ones")
    t.add_argument("--size", default="full", choices=["full", "tiny"], help="random teacher size (tiny: smoke test)")
    t.add_argument("--device", default="cuda")
    t.add_argument("--dtype", default=None, help="teacher dtype (default float16 on a GPU)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", type=Path, help="append one JSON line per task here")
    return p.parse_args(argv)


# -- pack (on a machine with mediapipe) ------------------------------------------------------------
def pack(args) -> int:
    import cv2

    from facecast.audio.decode import load_audio
    from facecast.audio.resampling import resample
    from facecast.distill.data import build_crops

    sources = [DATA / "portraits" / n for n in PORTRAITS] + [DATA / "talking" / n for n in CLIPS]
    pool = build_crops([str(s) for s in sources if s.is_file()], [], args.frames_per_clip, 1000, None)
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(c, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
             for c in pool.contexts]
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "crops.npz", jpegs=np.array([j.tobytes() for j in jpegs], dtype=object),
             sources=pool.sources, names=np.array(pool.names))
    clips = []
    for name in SPEECH:
        audio = load_audio(DATA / "speech" / name)
        samples = audio.samples if audio.samples.ndim == 1 else audio.samples.mean(axis=-1)
        clips.append(resample(samples.astype(np.float32), audio.sample_rate, SPEECH_RATE).astype(np.float16))
    np.savez(args.out / "speech.npz", names=np.array(SPEECH), **{f"clip{i}": c for i, c in enumerate(clips)})
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 2**20
    print(f"packed {len(pool)} crops of {len(pool.names)} sources and {len(clips)} speech clips "
          f"({sum(map(len, clips)) / SPEECH_RATE:.0f} s) into {args.out} ({size:.1f} MiB)")
    return 0


def load_pack(folder: Path):
    """(CropPool, [(name, samples at 16 kHz float32)]) from a `pack` folder."""
    import cv2

    from facecast.distill.data import CropPool

    crops = np.load(folder / "crops.npz", allow_pickle=True)
    contexts = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                         for j in crops["jpegs"]])
    pool = CropPool(contexts, crops["sources"].astype(np.int64), [str(n) for n in crops["names"]])
    speech = np.load(folder / "speech.npz")
    clips = [(str(n), speech[f"clip{i}"].astype(np.float32)) for i, n in enumerate(speech["names"])]
    return pool, clips


# -- train (on the GPU) ----------------------------------------------------------------------------
def train(args) -> int:
    import torch

    from facecast.audio.pcm import Audio
    from facecast.distill.data import build_crops
    from facecast.distill.speech import SpeechPool
    from facecast.lipsync.musetalk.backend import MuseTalkBackend
    from facecast.lipsync.musetalk.loading import resolve_dtype

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_musetalk import build_models

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_distill: no CUDA GPU here (--device cpu --size tiny --steps 2 runs a smoke test)", file=sys.stderr)
        return 2
    dtype = resolve_dtype(args.dtype, device)
    models = build_models(args.model_dir, args.size, device, dtype, "teacher/full")
    if args.data is not None:
        crops, clips = load_pack(args.data)
    else:
        crops = build_crops(args.avatars, [], 48, 1000, None)
        from facecast.audio.decode import load_audio
        clips = [(str(p), load_audio(p)) for p in args.audio]
    backend = MuseTalkBackend(models=models, compile="none")
    windows, sources = [], []
    for i, (_, samples) in enumerate(clips):
        audio = samples if isinstance(samples, Audio) else Audio(samples, SPEECH_RATE)
        feats = backend.audio_features(audio, 25)
        windows.append(feats)
        sources.append(np.full(len(feats), i))
    speech = SpeechPool.from_windows(np.concatenate(windows), np.concatenate(sources))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; teacher {args.model_dir or 'random ' + args.size} "
          f"{str(dtype).removeprefix('torch.')}; {len(crops)} crops of {len(crops.names)} sources; "
          f"{len(speech)} speech windows of {len(clips)} clips", flush=True)
    rows = []
    for task in args.tasks:
        row = run_task(task, models, crops, speech, args)
        row.update(device=name, teacher=str(args.model_dir or f"random-{args.size}"))
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    print_table(rows, args)
    return 0


def run_task(task: str, models, crops, speech, args) -> dict:
    from facecast.distill.decoder_task import train_decoder
    from facecast.distill.settings import DecoderSettings, UnetSettings
    from facecast.distill.unet_task import train_unet

    kind, _, preset = task.partition(":")
    if kind not in ("decoder", "unet"):
        raise SystemExit(f"bench_distill: task {task!r} is not decoder:PRESET or unet:PRESET")
    settings_cls, fn = (DecoderSettings, train_decoder) if kind == "decoder" else (UnetSettings, train_unet)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_cls(
            output=Path(tmp) / kind, preset=preset or settings_cls.preset, steps=args.steps,
            minutes=None if args.steps else args.minutes, batch_size=args.batch_size, eval_every=args.eval_every,
            checkpoint_every=0, device=str(models.device), seed=args.seed, tts_sentences=0)
        start = time.perf_counter()
        result = fn(settings, models, crops=crops, speech=speech)
        wall = time.perf_counter() - start
    first = result.evaluations[0] if result.evaluations else {}
    return {"task": kind, "preset": settings.preset, "parameters": result.provenance.get("parameters"),
            "steps": result.steps, "samples": result.samples, "train_s": round(result.seconds, 1),
            "wall_s": round(wall, 1), "samples_per_s": round(result.samples / max(result.seconds, 1e-9), 1),
            "first_eval": first, "final": result.final, "loss_first": round(result.losses[0], 5),
            "loss_last": round(result.losses[-1], 5), "batch_size": settings.batch_size,
            "precision": settings.precision}


def print_table(rows: list[dict], args) -> None:
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min"
    print(f"\n{rows[0]['device']}, teacher {rows[0]['teacher']}, budget {budget} per task, held-out crops")
    print(f"{'student':<16}{'params M':>9}{'steps':>7}{'samples/s':>10}{'loss first':>11}{'loss last':>10}"
          f"{'PSNR dB':>9}{'mouth dB':>9}  first eval (step: PSNR/mouth)")
    for r in rows:
        final, first = r["final"], r["first_eval"]
        params = f"{r['parameters'] / 1e6:.2f}" if r.get("parameters") else "-"
        print(f"{r['task'] + ':' + r['preset']:<16}{params:>9}{r['steps']:>7}{r['samples_per_s']:>10.0f}"
              f"{r['loss_first']:>11.4f}{r['loss_last']:>10.4f}{final.get('psnr', float('nan')):>9.2f}"
              f"{final.get('psnr_mouth', float('nan')):>9.2f}"
              f"  {first.get('step', '-')}: {first.get('psnr', float('nan')):.2f}/{first.get('psnr_mouth', float('nan')):.2f}")


if __name__ == "__main__":
    sys.exit(main())
