"""`facecast stylize PHOTO --model-dir sd/ --prompt "..." -o styled.png` (registered by facecast.cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """the model: a Stable Diffusion 1.x/2.x folder in the diffusers layout (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/), read from local files only; needs pip install "facecast[gpu]".
the face is found first and kept where it was, so the styled picture prepares and animates like the photo.

examples:
  facecast stylize me.jpg --model-dir sd15/ --prompt "watercolour portrait, soft light" -o me-watercolour.png
  facecast stylize me.jpg --model-dir sd15/ --prompt "comic book art" --strength 0.7 --face-strength 0 -o comic.png
  facecast render --avatar comic.png --text "Hello" -o hello.mp4
(docs/stylize.md)"""


def _number(convert, name: str):
    def parse(text: str):
        try:
            return convert(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None

    parse.__name__ = name
    return parse


def add_commands(sub) -> None:
    from facecast.cli import add_face_argument, seed_arg

    p = sub.add_parser("stylize", help="restyle a portrait with local Stable Diffusion weights (img2img)",
                       description="Repaint a portrait in a style described by --prompt with the user's Stable "
                                   "Diffusion weights (img2img), keeping the face where it was (it is changed less, "
                                   "or not at all) so the result works as an avatar.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", type=Path, help="the portrait (JPEG, PNG, ...); never overwritten")
    p.add_argument("--model-dir", type=Path, required=True, metavar="DIR",
                   help="Stable Diffusion 1.x/2.x folder in the diffusers layout")
    p.add_argument("--prompt", required=True, help="the style, e.g. \"oil painting, warm light\"")
    p.add_argument("--negative-prompt", default="", metavar="TEXT", help="what to avoid, e.g. \"blurry, deformed\"")
    p.add_argument("-o", "--output", type=Path, required=True, help="the styled picture (.png, .jpg or .jpeg)")
    p.add_argument("--strength", type=_number(float, "strength"), default=0.5, metavar="S",
                   help="how far from the photo, above 0 up to 1 (default 0.5; 1 ignores the photo outside the face)")
    p.add_argument("--face-strength", type=_number(float, "face_strength"), default=0.3, metavar="F",
                   help="the face's share of --strength, 0..1 (default 0.3): 0 keeps the face pixel for pixel, "
                        "1 protects it not at all")
    p.add_argument("--steps", type=_number(int, "steps"), default=30, metavar="N",
                   help="denoising steps of the full schedule; int(N x strength) are run (default 30)")
    p.add_argument("--guidance", type=_number(float, "guidance"), default=7.5, metavar="G",
                   help="classifier-free guidance scale: how closely to follow the prompt (default 7.5)")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed; the same seed gives the same picture "
                                                            "(default 0)")
    p.add_argument("--size", type=_number(int, "size"), default=None, metavar="PX",
                   help="long side of the work resolution, a multiple of 8 (default: the model's, 512 for SD 1.x); "
                        "the result is resized back to the photo's size")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"],
                   help="weights' precision (default: float16 on a GPU, float32 on the CPU)")
    p.add_argument("--force", action="store_true",
                   help="write the picture even when its face is no longer found where the photo's was")
    add_face_argument(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=run_stylize)


def run_stylize(args) -> int:
    from facecast.progress_bar import ProgressBar
    from facecast.stylize.pipeline import StylizeSettings, stylize_file

    settings = StylizeSettings(prompt=args.prompt, negative_prompt=args.negative_prompt, strength=args.strength,
                               face_strength=args.face_strength, steps=args.steps, guidance=args.guidance,
                               seed=args.seed, size=args.size, device=args.device, dtype=args.dtype, face=args.face)
    with ProgressBar("denoising", args.quiet, unit="step") as progress:
        result = stylize_file(args.photo, args.output, args.model_dir, settings, force=args.force, progress=progress)
    note = "" if result.face_kept else " (written with --force: the face was not found where it was)"
    print(f"{args.output}{note}")
    return 0
