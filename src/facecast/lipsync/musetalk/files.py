"""Where the weights of a MuseTalk-compatible model live on disk, and a cheap identity for them.

A model directory is laid out like the MuseTalk release:

    <model_dir>/musetalkV15/{musetalk.json, unet.pth}            (v1.5; preferred when present)
    <model_dir>/musetalk/{musetalk.json, pytorch_model.bin}      (v1)
    <model_dir>/sd-vae/{config.json, diffusion_pytorch_model.{safetensors,bin}}
    <model_dir>/whisper/{config.json, model.safetensors | pytorch_model.bin, [preprocessor_config.json]}

and, for the distilled variants (backend options unet="student", decoder="small"):

    <model_dir>/musetalk-student/{musetalk.json, unet.pth}      (student_unet.py; replaces the UNet)
    <model_dir>/small-decoder/{config.json, diffusion_pytorch_model.safetensors}   (small_decoder.py)

Nothing here imports torch for the release layout, so a missing file is reported before any heavy
import (asking for a variant imports its module, and torch, to find its folder).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from facecast.config import env
from facecast.errors import InvalidArgument, ModelFilesMissing

UNET_LAYOUTS = (  # (folder, weights file), in order of preference
    ("musetalkV15", "unet.pth"),
    ("musetalk", "pytorch_model.bin"),
)
UNET_CONFIG = "musetalk.json"
VAE_DIR, VAE_CONFIG = "sd-vae", "config.json"
VAE_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
WHISPER_DIR, WHISPER_CONFIG = "whisper", "config.json"
WHISPER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
WHISPER_PREPROCESSOR = "preprocessor_config.json"
UNETS = ("teacher", "student")  # backend option unet: the release's UNet, or <model_dir>/musetalk-student
DECODERS = ("full", "small")  # backend option decoder: the VAE's, or <model_dir>/small-decoder
IDENTITY_SAMPLE = 1 << 20  # bytes read from each end of a weights file for its identity


@dataclass(frozen=True)
class ModelFiles:
    """The files of one model directory, all known to exist (preprocessor may be None).

    unet: "teacher" (unet_config/unet_weights are the release's) or "student" (they are the
    student's); small_decoder_dir: the small decoder's folder, None for the VAE's decoder.
    """

    root: Path
    unet_config: Path
    unet_weights: Path
    vae_dir: Path
    vae_weights: Path
    whisper_dir: Path
    whisper_weights: Path
    whisper_preprocessor: Path | None
    unet: str = "teacher"
    small_decoder_dir: Path | None = None

    @property
    def version(self) -> str:
        """"v1.5" or "v1", from the UNet folder name; "student" for a student UNet."""
        if self.unet == "student":
            return "student"
        return "v1.5" if self.unet_config.parent.name == "musetalkV15" else "v1"

    @property
    def decoder(self) -> str:
        """"small" or "full"."""
        return "full" if self.small_decoder_dir is None else "small"

    def unet_settings(self) -> dict:
        """The UNet's constructor arguments from musetalk.json (keys starting with '_' dropped)."""
        config = json.loads(self.unet_config.read_text())
        return {k: v for k, v in config.items() if not k.startswith("_")}

    def vae_identity(self) -> str:
        """16 hex digits naming the VAE's config and weights, cheap to compute (no full read)."""
        return _identity([self.vae_dir / VAE_CONFIG], [self.vae_weights])


def default_model_dir() -> Path | None:
    """FACECAST_MUSETALK_DIR, else FACECAST_MODEL_DIR, else None."""
    value = env("MUSETALK_DIR") or env("MODEL_DIR")
    return Path(value).expanduser() if value else None


def locate(model_dir: str | Path | None, unet: str = "teacher", decoder: str = "full") -> ModelFiles:
    """Find every file the backend needs under `model_dir`.

    unet: "teacher" (the release's UNet) or "student" (<model_dir>/musetalk-student instead; the
    teacher's files are then not needed); decoder: "full" or "small" (<model_dir>/small-decoder too;
    the VAE is needed either way, it encodes the avatars). Raises ModelFilesMissing listing each
    missing path (all of them, not just the first) and how to make a missing variant.
    """
    if unet not in UNETS:
        raise InvalidArgument(f"unet={unet!r} is not one of {list(UNETS)}")
    if decoder not in DECODERS:
        raise InvalidArgument(f"decoder={decoder!r} is not one of {list(DECODERS)}")
    if model_dir is None:
        raise ModelFilesMissing(
            "backend 'musetalk' needs a model directory: pass --model-dir DIR (or set FACECAST_MUSETALK_DIR) "
            "to a folder laid out like the MuseTalk release: musetalkV15/ (or musetalk/), sd-vae/, whisper/")
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        raise ModelFilesMissing(f"model directory {str(root)!r} does not exist")
    missing: list[str] = []
    if unet == "student":
        from facecast.lipsync.musetalk import student_unet

        folder = _variant(student_unet.locate_student, root, missing)
        unet_config, unet_weights = folder / student_unet.CONFIG, folder / student_unet.WEIGHTS
    else:
        unet_config, unet_weights = _find_unet(root, missing)
    small_decoder_dir = None
    if decoder == "small":
        from facecast.lipsync.musetalk.small_decoder import locate_small_decoder

        small_decoder_dir = _variant(locate_small_decoder, root, missing)
    vae_dir = root / VAE_DIR
    _need(vae_dir / VAE_CONFIG, missing)
    vae_weights = _first_of(vae_dir, VAE_WEIGHTS, missing)
    whisper_dir = root / WHISPER_DIR
    _need(whisper_dir / WHISPER_CONFIG, missing)
    whisper_weights = _first_of(whisper_dir, WHISPER_WEIGHTS, missing)
    if missing:
        listed = "\n  ".join(missing)
        raise ModelFilesMissing(f"model directory {str(root)!r} lacks what {_wanted(unet, decoder)} needs "
                                f"({len(missing)} missing):\n  {listed}")
    preprocessor = whisper_dir / WHISPER_PREPROCESSOR
    return ModelFiles(root, unet_config, unet_weights, vae_dir, vae_weights, whisper_dir, whisper_weights,
                      preprocessor if preprocessor.is_file() else None, unet, small_decoder_dir)


def _wanted(unet: str, decoder: str) -> str:
    """'the backend' with its variant options: "the backend (unet='student', decoder='small')"."""
    chosen = [f"{name}={value!r}" for name, value, default in (("unet", unet, "teacher"), ("decoder", decoder, "full"))
              if value != default]
    return f"the backend ({', '.join(chosen)})" if chosen else "the backend"


def _variant(locator, root: Path, missing: list[str]) -> Path:
    """locator(root)'s folder, or root with locator's message (what is missing, how to make it) in `missing`."""
    try:
        return locator(root)
    except ModelFilesMissing as exc:
        missing.append(str(exc))
        return root


def variant_folder(root: Path, name: str, config: str, weights: str) -> Path | None:
    """<root>/<name>, else root itself, whichever holds both `config` and `weights`; None if neither
    does (where the distilled variants - small-decoder/, musetalk-student/ - are looked for)."""
    for folder in (root / name, root):
        if (folder / config).is_file() and (folder / weights).is_file():
            return folder
    return None


def _find_unet(root: Path, missing: list[str]) -> tuple[Path, Path]:
    for folder, weights in UNET_LAYOUTS:
        if (root / folder).is_dir():
            _need(root / folder / UNET_CONFIG, missing)
            _need(root / folder / weights, missing)
            return root / folder / UNET_CONFIG, root / folder / weights
    choices = " or ".join(f"{folder}/{UNET_CONFIG} + {folder}/{weights}" for folder, weights in UNET_LAYOUTS)
    missing.append(f"{root}/{choices}")
    return root, root


def _first_of(folder: Path, names: tuple[str, ...], missing: list[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    missing.append(str(folder / " or ".join(names)))
    return folder / names[0]


def _need(path: Path, missing: list[str]) -> None:
    if not path.is_file():
        missing.append(str(path))


def _identity(small_files: list[Path], large_files: list[Path]) -> str:
    """Hash of small files' bytes plus each large file's size and first and last IDENTITY_SAMPLE bytes."""
    h = hashlib.sha256()
    for path in small_files:
        h.update(path.read_bytes())
    for path in large_files:
        size = path.stat().st_size
        h.update(str(size).encode())
        with open(path, "rb") as f:
            h.update(f.read(IDENTITY_SAMPLE))
            f.seek(max(0, size - IDENTITY_SAMPLE))
            h.update(f.read(IDENTITY_SAMPLE))
    return h.hexdigest()[:16]
