"""The user's Stable Diffusion weights: a diffusers SD 1.x/2.x directory, checked before anything loads.

Layout (what `save_pretrained` writes, and what the Hugging Face SD 1.x/2.x repositories hold):
model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/ (safety_checker/ and
feature_extractor/ are optional). Weights may be *.safetensors or *.bin, plain or as an "fp16"
variant (diffusion_pytorch_model.fp16.safetensors).

A single-file checkpoint (one .safetensors/.ckpt) is refused: diffusers' from_single_file needs
the model's original configuration files, which it fetches from the Hugging Face Hub, so it does
not work offline; convert it once to a diffusers directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facecast.errors import InvalidArgument, ModelFilesMissing

# component -> (config file, weight file stems); weights: <stem>[.fp16].{safetensors,bin}
COMPONENTS = {
    "unet": ("config.json", "diffusion_pytorch_model"),
    "vae": ("config.json", "diffusion_pytorch_model"),
    "text_encoder": ("config.json", "model", "pytorch_model"),
    "scheduler": ("scheduler_config.json",),
}
TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))  # slow CLIP files, or a fast one
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")  # SD 1.x / 2.x, 4-channel UNet
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class SDFiles:
    """A checked Stable Diffusion directory. variant: "fp16" when only fp16-variant weights exist, else None."""

    root: Path
    variant: str | None
    has_safety_checker: bool


def locate(model_dir: str | Path | None) -> SDFiles:
    """Check `model_dir` holds a complete SD 1.x/2.x diffusers directory; reads configs only.

    Raises ModelFilesMissing (one line listing every missing file) or InvalidArgument (a single-file
    checkpoint, or a pipeline other than SD 1.x/2.x).
    """
    if model_dir is None:
        raise ModelFilesMissing("stylize needs --model-dir DIR: a Stable Diffusion 1.x/2.x folder in the diffusers "
                                "layout (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
    root = Path(model_dir).expanduser()
    if root.is_file():
        if root.suffix.lower() in SINGLE_FILE_SUFFIXES:
            raise InvalidArgument(
                f"--model-dir {str(root)!r}: single-file checkpoints are not supported (diffusers' from_single_file "
                "fetches the model's configuration from the Hugging Face Hub, so it does not work offline); convert "
                "it once to a diffusers folder (diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py) "
                "and pass that folder")
        raise ModelFilesMissing(f"--model-dir {str(root)!r} is a file, not a Stable Diffusion folder")
    if not root.is_dir():
        raise ModelFilesMissing(f"model directory {str(root)!r} does not exist")
    missing: list[str] = []
    index = _read_index(root, missing)
    variants: set[str] = set()
    for name, (config, *stems) in COMPONENTS.items():
        if not (root / name / config).is_file():
            missing.append(f"{name}/{config}")
        if stems:
            found = _weights(root / name, stems)
            if found is None:
                missing.append(f"{name}/{stems[0]}.safetensors (or .bin)")
            else:
                variants.add(found)
    if not any(all((root / "tokenizer" / f).is_file() for f in files) for files in TOKENIZER_FILES):
        missing.append("tokenizer/vocab.json + tokenizer/merges.txt (or tokenizer/tokenizer.json)")
    if missing:
        raise ModelFilesMissing(f"model directory {str(root)!r} is not a complete Stable Diffusion folder: "
                                f"missing {', '.join(missing)}")
    kind = index.get("_class_name", "")
    if kind not in PIPELINES:
        raise InvalidArgument(f"model directory {str(root)!r} holds a {kind or 'unnamed'} pipeline; stylize takes "
                              f"Stable Diffusion 1.x/2.x ({' or '.join(PIPELINES)})")
    unet = _read_json(root / "unet" / "config.json")
    if unet.get("in_channels", 4) != 4:
        raise InvalidArgument(f"model directory {str(root)!r}: its UNet takes {unet.get('in_channels')} input "
                              "channels (an inpainting model?); stylize needs a plain text-to-image/img2img model")
    variant = "fp16" if variants == {"fp16"} else None
    if len(variants) > 1:
        raise ModelFilesMissing(f"model directory {str(root)!r} mixes fp16-variant and plain weights; keep one kind")
    safety = index.get("safety_checker") or [None, None]
    return SDFiles(root, variant, safety[0] is not None and (root / "safety_checker").is_dir())


def _read_index(root: Path, missing: list[str]) -> dict:
    path = root / "model_index.json"
    if not path.is_file():
        missing.append("model_index.json")
        return {"_class_name": PIPELINES[0]}
    return _read_json(path)


def _read_json(path: Path) -> dict:
    """A JSON object from `path`; ModelFilesMissing naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFilesMissing(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFilesMissing(f"{path}: not a diffusers configuration (expected a JSON object)")
    return data


def _weights(folder: Path, stems: list[str]) -> str | None:
    """Which weights `folder` holds: "plain" (preferred when both exist), "fp16" (the variant only), or None."""
    for variant, infix in ((None, ""), ("fp16", ".fp16")):
        for stem in stems:
            for ext in ("safetensors", "bin"):
                name = f"{stem}{infix}.{ext}"
                if (folder / name).is_file() or (folder / f"{name}.index.json").is_file():  # whole or sharded
                    return variant or "plain"
    return None
