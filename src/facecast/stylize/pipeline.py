"""Stylise a portrait with the user's Stable Diffusion weights (img2img), keeping the face where it was.

How the face is protected (both steps use the feathered face mask m of stylize.face_mask):
1. Differential latent masking during denoising. Each latent pixel gets a share of the denoising
   steps, c = 1 - m * (1 - face_strength): the background (c = 1) is denoised from the first step,
   the face (c = face_strength) only during the last face_strength share of the steps; until a
   pixel's turn it is reset after every step to the photo's latent noised to the current level
   (scheduler.add_noise). The face thus changes as if img2img ran there with strength
   strength * face_strength, and the surroundings are painted to fit it.
2. With face_strength 0 the face is kept pixel for pixel: after decoding, the photo is blended
   back through m (exactly the photo inside the face oval, a soft band outside), since even an
   unchanged latent loses detail in the VAE.

The styled picture is resized back to the photo's size, so the face mesh lies where it was; the
face is then looked for again and must overlap the photo's (MIN_FACE_OVERLAP), else NoFaceFound.
torch, diffusers and transformers (the gpu extra) are imported only when a pipeline loads.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecast.config import PrepareSettings, check_seed
from facecast.errors import InvalidArgument, MissingDependency, NoFaceFound, UnsupportedMedia
from facecast.stylize.face_mask import face_mask
from facecast.stylize.model_files import SDFiles, locate
from facecast.types import Progress

REQUIRES = ("torch", "diffusers", "transformers")
INSTALL_HINT = 'pip install "facecast[gpu]"'
MIN_FACE_OVERLAP = 0.6  # intersection over union of the face-mesh boxes before and after
MAX_STEPS = 1000
MAX_SIZE = 4096
OUTPUT_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}


@dataclass(frozen=True)
class StylizeSettings:
    """What to paint and how far from the photo.

    strength: 0 < s <= 1, how far from the photo (img2img strength: the share of the denoising
        schedule run, from noise level s); face_strength: 0..1, the face's share of that
        (0 = the face is kept pixel for pixel, 1 = no protection); steps: denoising steps of the
        full schedule (int(steps * strength) run); guidance: classifier-free guidance scale
        (<= 1 turns it off); size: long side of the work resolution in px, a multiple of 8
        (None: the model's native size, sample_size x 8); device/dtype: None = cuda/float16 when a
        GPU is available, else cpu/float32; face: which face of several (None: the largest).
    """

    prompt: str
    negative_prompt: str = ""
    strength: float = 0.5
    face_strength: float = 0.3
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    size: int | None = None
    device: str | None = None
    dtype: str | None = None
    face: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidArgument("--prompt: give a description of the style, e.g. \"watercolour portrait\"")
        check_strength("--strength", self.strength, low_open=True)
        check_strength("--face-strength", self.face_strength, low_open=False)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise InvalidArgument(f"--steps {self.steps!r}: give a whole number from 1 to {MAX_STEPS}")
        if int(self.steps * self.strength) < 1:
            raise InvalidArgument(f"--steps {self.steps} with --strength {self.strength} runs no denoising step "
                                  f"(int(steps x strength) = 0); raise either")
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) or \
                not math.isfinite(self.guidance) or not 0 <= self.guidance <= 50:
            raise InvalidArgument(f"--guidance {self.guidance!r}: give a number from 0 to 50 (7.5 is usual; "
                                  f"<= 1 turns guidance off)")
        check_seed(self.seed)
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int)
                                      or not 64 <= self.size <= MAX_SIZE or self.size % 8):
            raise InvalidArgument(f"--size {self.size!r}: give a multiple of 8 from 64 to {MAX_SIZE} "
                                  f"(the long side of the work resolution in px)")
        PrepareSettings(face=self.face)  # the --face check


def check_strength(name: str, value, *, low_open: bool) -> float:
    """A number in (0, 1] (low_open) or [0, 1]; InvalidArgument naming `name` otherwise."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and \
        (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        raise InvalidArgument(f"{name} {value!r}: give a number {'above 0' if low_open else 'from 0'} up to 1")
    return float(value)


@dataclass(frozen=True)
class Stylized:
    """image: (H, W, 3) uint8 BGR at the photo's size; face_box / styled_face_box: (4,) float32 px
    x0, y0, x1, y1 of the face mesh in the photo and in the styled picture (None: no face found
    there); overlap: their intersection over union (0.0 when none was found)."""

    image: np.ndarray
    face_box: np.ndarray
    styled_face_box: np.ndarray | None
    overlap: float

    @property
    def face_kept(self) -> bool:
        return self.styled_face_box is not None and self.overlap >= MIN_FACE_OVERLAP


# ---------------------------------------------------------------------------------------------- files

def output_path(photo: Path, output: Path) -> tuple[Path, str]:
    """(output, encoder extension ".png"/".jpg") after the checks that need no work (facecast.outputs:
    a PNG or JPEG name in an existing writable folder, not a folder, never the photo). Raises InvalidArgument."""
    from facecast.outputs import check_output

    output = check_output(output, tuple(OUTPUT_FORMATS), "-o", inputs=[("PHOTO", photo)])
    return output, OUTPUT_FORMATS[output.suffix.lower()]


def read_photo(path: Path) -> np.ndarray:
    """The photo at `path`, upright: (H, W, 3) uint8 BGR at its full size. Raises UnsupportedMedia /
    CorruptMedia naming the file."""
    from facecast.media.probe import probe
    from facecast.media.reader import read_image

    info = probe(path, wanted="an image")
    if info.kind != "image":
        raise UnsupportedMedia(f"{path}: not an image: it is {'a video' if info.kind == 'video' else 'audio'}")
    return read_image(Path(path).read_bytes(), str(path), info.image)


def write_picture(image: np.ndarray, output: Path, ext: str) -> Path:
    """Encode (H, W, 3) uint8 BGR as PNG or JPEG (quality 95) and write it atomically."""
    from facecast.files import atomic_write

    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, image, params)
    if not ok:
        raise InvalidArgument(f"{output}: could not encode the picture as {ext}")
    return atomic_write(output, data.tobytes())


# ---------------------------------------------------------------------------------------------- faces

def face_mesher(face: int | None):
    """The face detector and mesh of avatar preparation, for still pictures (a context manager)."""
    from facecast.avatar.landmarks import FaceMesher

    return FaceMesher(static=True, min_confidence=PrepareSettings().min_detection_confidence, face=face)


def find_face(image: np.ndarray, face: int | None, mesher=None) -> np.ndarray | None:
    """Face mesh (478, 3) float32 px of the chosen face in `image` (H, W, 3) uint8 BGR, or None.
    mesher: a face_mesher() to reuse (default: a new one)."""
    if mesher is not None:
        return mesher.landmarks(image)
    with face_mesher(face) as own:
        return own.landmarks(image)


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (4,) x0, y0, x1, y1."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def work_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) with the long side `long_side`, the aspect kept, both multiples of 8 (at least 8)."""
    scale = long_side / max(width, height)
    return (max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8))


# ---------------------------------------------------------------------------------------------- model

def require_extra() -> None:
    """MissingDependency naming the gpu extra when torch, diffusers or transformers is absent."""
    for module in REQUIRES:
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(f"stylize needs {module}, which is not installed: {INSTALL_HINT}")


def resolve_target(device: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
    """(torch.device, torch.dtype) for the options: None -> cuda/float16 when a GPU is available, else
    cpu/float32. Raises InvalidArgument for an unknown device or dtype, or cuda without a GPU."""
    require_extra()
    import torch

    from facecast.lipsync.musetalk.loading import resolve_device, resolve_dtype

    dev = resolve_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    return dev, resolve_dtype(dtype, dev)


def load_pipeline(files: SDFiles, device: str | None = None, dtype: str | None = None) -> Any:
    """A diffusers StableDiffusionImg2ImgPipeline read from `files` (local files only, never a download)
    on `device` in `dtype` (resolve_target's defaults)."""
    dev, kind = resolve_target(device, dtype)
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # not "CLIPImageProcessor requires torchvision" (never used here)
    try:
        from diffusers import StableDiffusionImg2ImgPipeline
    finally:
        transformers_logging.set_verbosity(level)

    from facecast.lipsync.musetalk.loading import _quiet_loading

    extra = {} if files.has_safety_checker else {"safety_checker": None, "feature_extractor": None,
                                                  "requires_safety_checker": False}
    with _quiet_loading():
        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
            files.root, local_files_only=True, dtype=kind, variant=files.variant, **extra)
    pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------- styling

def stylize_image(pipe: Any, image: np.ndarray, landmarks: np.ndarray, settings: StylizeSettings,
                  progress: Progress | None = None) -> np.ndarray:
    """Stylise `image` (H, W, 3) uint8 BGR whose face mesh is `landmarks` (478, 2+) px.

    Returns (H, W, 3) uint8 BGR at the same size (see the module for how the face is kept).
    Reproducible: the same settings, weights, device and dtype give the same picture.
    """
    import torch

    h, w = image.shape[:2]
    vae_scale = int(pipe.vae_scale_factor)  # px per latent pixel (8 for SD 1.x/2.x)
    long_side = settings.size or int(pipe.unet.config.sample_size) * vae_scale
    ww, wh = work_size(w, h, long_side)
    mask = face_mask(landmarks, (h, w))  # (H, W) float32
    work = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA if ww < w else cv2.INTER_CUBIC)
    latent_mask = cv2.resize(mask, (ww // vae_scale, wh // vae_scale), interpolation=cv2.INTER_AREA)
    share = 1.0 - latent_mask * (1.0 - settings.face_strength)  # (h/8, w/8): share of the steps each pixel runs

    device, dtype = pipe.unet.device, pipe.unet.dtype
    rgb = torch.from_numpy(np.ascontiguousarray(work[:, :, ::-1])).permute(2, 0, 1)[None]
    pixels = (rgb.to(torch.float32) / 127.5 - 1.0).to(device=device, dtype=pipe.vae.dtype)
    with torch.no_grad():
        photo = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    photo = photo.to(dtype)
    noise = torch.randn(photo.shape, generator=torch.Generator("cpu").manual_seed(settings.seed + 1),
                        dtype=torch.float32).to(device=device, dtype=dtype)
    share_t = torch.from_numpy(share).to(device=device, dtype=torch.float32)[None, None]

    def keep_face(p, i: int, t, tensors: dict) -> dict:
        """After step i of n: latent pixels whose turn has not come are reset to the photo's latent,
        noised to the level of the next step (the photo's latent itself after the last)."""
        n = p._num_timesteps
        latents = tensors["latents"]
        waiting = (share_t <= 1.0 - (i + 1) / n).to(latents.dtype)
        if bool(waiting.any()):
            if i + 1 < n:
                level = p.scheduler.timesteps[-n:][i + 1:i + 2]
                target = p.scheduler.add_noise(photo, noise, level.to(device))
            else:
                target = photo
            latents = waiting * target + (1 - waiting) * latents
        if progress:
            progress(i + 1, n)
        return {"latents": latents}

    generator = torch.Generator("cpu").manual_seed(settings.seed)
    with torch.no_grad():
        result = pipe(prompt=settings.prompt, negative_prompt=settings.negative_prompt or None, image=photo,
                      strength=settings.strength, num_inference_steps=settings.steps,
                      guidance_scale=float(settings.guidance), generator=generator, output_type="np",
                      callback_on_step_end=keep_face, callback_on_step_end_tensor_inputs=["latents"])
    if (getattr(result, "nsfw_content_detected", None) or [False])[0]:
        raise InvalidArgument("the model's safety checker flagged the styled picture (and blanked it); "
                              "try another --prompt or --seed; nothing was written")
    out = result.images[0]
    styled = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)[:, :, ::-1]
    styled = cv2.resize(styled, (w, h), interpolation=cv2.INTER_CUBIC if ww < w else cv2.INTER_AREA)
    if settings.face_strength == 0:
        weight = mask[:, :, None]
        styled = (weight * image + (1.0 - weight) * styled + 0.5).astype(np.uint8)
    return np.ascontiguousarray(styled)


def stylize_file(photo: str | Path, output: str | Path, model_dir: str | Path | None, settings: StylizeSettings, *,
                 force: bool = False, progress: Progress | None = None, pipe: Any = None) -> Stylized:
    """Stylise the photo at `photo` into `output` (.png/.jpg, written atomically, never the photo itself).

    Cheap checks come first (output name, model folder, device, the photo, its face), then the model
    loads (`pipe`: an already loaded pipeline instead) and runs. Unless `force`, the styled picture
    must show the face where the photo did, else NoFaceFound and nothing is written.
    Raises InvalidArgument, ModelFilesMissing, MissingDependency, UnsupportedMedia, CorruptMedia, NoFaceFound.
    """
    from facecast.avatar.landmarks import box_of

    photo = Path(photo)
    output, ext = output_path(photo, Path(output))
    if pipe is None:
        files = locate(model_dir)
        resolve_target(settings.device, settings.dtype)
    image = read_photo(photo)
    with face_mesher(settings.face) as mesher:
        landmarks = find_face(image, settings.face, mesher)
        if landmarks is None:
            raise NoFaceFound(f"{photo}: no face found; stylize needs a portrait")
        if pipe is None:
            pipe = load_pipeline(files, settings.device, settings.dtype)
        styled = stylize_image(pipe, image, landmarks, settings, progress)
        after_mesh = find_face(styled, settings.face, mesher)
    before = box_of(landmarks)
    after = None if after_mesh is None else box_of(after_mesh)
    result = Stylized(styled, before, after, 0.0 if after is None else box_overlap(before, after))
    if not result.face_kept and not force:
        hint = (f"try a lower --strength (now {settings.strength:g}) or --face-strength (now "
                f"{settings.face_strength:g}; 0 keeps the face as it is), or --force to write it anyway; "
                f"nothing was written")
        if after is None:
            raise NoFaceFound(f"no face found in the styled picture; {hint}")
        raise NoFaceFound(f"the styled picture's face moved (overlap {result.overlap:.2f} with the photo's, "
                          f"needs {MIN_FACE_OVERLAP}); {hint}")
    write_picture(styled, output, ext)
    return result
