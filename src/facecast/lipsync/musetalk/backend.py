"""The `musetalk` lip-sync backend: MuseTalk-compatible checkpoints on a GPU (or, slowly, a CPU).

Per avatar (once, cached): face crops -> VAE latents, blend masks, crop maps, all stacked on the
device. Per frame: one UNet step + the VAE decode + a paste on the device, in fixed-shape batches
of `batch_size` (the last batch padded, then sliced), so CUDA graphs and torch.compile apply.
"""

from __future__ import annotations

import threading
from math import gcd
from pathlib import Path

import numpy as np
import torch

from facecast.audio.pcm import Audio
from facecast.avatar.model import Avatar
from facecast.config import env
from facecast.errors import InvalidArgument
from facecast.lipsync.base import FeatureStream, LipsyncBackend
from facecast.lipsync.musetalk import cache, crops
from facecast.lipsync.musetalk import speedups as speedup_switches
from facecast.lipsync.musetalk.compositor import AvatarPlanes, blend
from facecast.lipsync.musetalk.files import DECODERS, UNETS, default_model_dir, locate
from facecast.lipsync.musetalk.loading import Models, load_models, resolve_device, resolve_dtype
from facecast.lipsync.musetalk.network import LATENT, Graphed
from facecast.lipsync.musetalk.stream import WhisperFeatureStream
from facecast.lipsync.musetalk.windows import WHISPER_RATE, WINDOW, gather_windows, window_starts
from facecast.lru import LRU

DEFAULT_BATCH = 16  # frames per network call
MAX_BATCH = 256
AVATARS_ON_DEVICE = 4  # prepared avatars kept on the device, least recently used dropped first
# compile option -> torch.compile mode (None: eager kernels). On a GPU every mode but "none" runs
# each batch as CUDA graphs captured here (the network, and the paste per avatar), so inductor
# never needs its own: "reduce-overhead" is inductor's default kernels plus those graphs.
COMPILE_MODES = {"none": None, "cudagraph": None, "default": "default", "reduce-overhead": "default",
                 "max-autotune": "max-autotune-no-cudagraphs",
                 "max-autotune-no-cudagraphs": "max-autotune-no-cudagraphs"}
GPU_COMPILE = "reduce-overhead"  # the GPU default: inductor kernels as CUDA graphs (about 1 min to compile)
ENCODE_CHUNK = 64  # avatar frames cropped and encoded at a time during preparation


class MuseTalkBackend(LipsyncBackend):
    """Neural lip-sync with MuseTalk weights (v1 or v1.5 layout), loaded from local files only.

    Every option left out falls back to an environment variable, then to the default:
    model_dir: folder laid out like the MuseTalk release (files.py); FACECAST_MUSETALK_DIR
    device: "cuda", "cuda:1", "cpu"; FACECAST_MUSETALK_DEVICE, else cuda when available
    dtype: "float16" (GPU default), "bfloat16", "float32" (CPU default); FACECAST_MUSETALK_DTYPE
    batch_size: frames per network call, every call runs at exactly this batch; FACECAST_MUSETALK_BATCH
    compile: "none" (eager; CPU default), "cudagraph" (eager kernels replayed as CUDA graphs; ready
             at once, half the speed), or a torch.compile mode ("reduce-overhead", the GPU default,
             "max-autotune", ...): inductor kernels, also replayed as CUDA graphs; compiling takes
             about a minute per batch size; FACECAST_MUSETALK_COMPILE
    speedups: names from speedups.SPEEDUPS ("lower-decode", "fp8", both comma-joined, a list, or
              "none"; speedups.py says what each does and costs); FACECAST_MUSETALK_SPEEDUPS
    decoder: "full" (the VAE's decoder) or "small" (<model_dir>/small-decoder, a distilled or TAESD
             AutoencoderTiny decoder: TAESD's size has 1/18 of the FLOPs); FACECAST_MUSETALK_DECODER
    unet: "teacher" (the release's UNet) or "student" (<model_dir>/musetalk-student, made by
          `facecast distill unet`); FACECAST_MUSETALK_UNET
    models: already loaded networks (tests, benchmarks); model_dir is then not read, and decoder /
            unet, when given, must name what models holds
    """

    name = "musetalk"

    def __init__(self, model_dir: str | Path | None = None, *, device: str | None = None,
                 dtype: str | None = None, batch_size: int | None = None, compile: str | None = None,
                 decoder: str | None = None, unet: str | None = None,
                 speedups: str | tuple[str, ...] | None = None, models: Models | None = None):
        if models is not None:
            _check_held(models, decoder=decoder, unet=unet)
            decoder, unet = models.decoder, models.unet
        decoder = _choice("decoder", decoder, "MUSETALK_DECODER", DECODERS)
        unet = _choice("unet", unet, "MUSETALK_UNET", UNETS)
        device = device or env("MUSETALK_DEVICE")
        dtype = dtype or env("MUSETALK_DTYPE")
        compile = compile or env("MUSETALK_COMPILE")
        self.speedups = speedup_switches.parse(speedups if speedups is not None else env("MUSETALK_SPEEDUPS"))
        if batch_size is None:
            batch_size = _int_or_text(env("MUSETALK_BATCH", str(DEFAULT_BATCH)))
        self.decoder, self.unet = decoder, unet
        self.files = None if models is not None else locate(model_dir if model_dir is not None
                                                            else default_model_dir(), unet, decoder)
        self.device = models.device if models is not None else resolve_device(device)
        self.dtype = models.dtype if models is not None else resolve_dtype(dtype, self.device)
        if not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= MAX_BATCH:
            raise InvalidArgument(f"batch_size={batch_size!r} must be an integer in 1..{MAX_BATCH}")
        self.batch_size = int(batch_size)
        mode = compile or (GPU_COMPILE if self.device.type == "cuda" else "none")
        if mode not in COMPILE_MODES:
            raise InvalidArgument(f"compile={compile!r} is not one of {list(COMPILE_MODES)}")
        if mode != "none" and self.device.type != "cuda":
            raise InvalidArgument(f"compile={compile!r} needs a CUDA device; device is {self.device}")
        self.compile = mode
        self.graphs = mode != "none"
        eager_only = [name for name in self.speedups if name in speedup_switches.EAGER_ONLY]
        if eager_only and self.graphs:
            raise InvalidArgument(f"speedup {eager_only[0]!r} runs only with compile='none' (it fails under CUDA "
                                  f"graphs; docs/musetalk.md); compile is {mode!r}")
        self._models = models
        self._run = None
        self._planes: LRU[str, AvatarPlanes] = LRU(AVATARS_ON_DEVICE, lambda dropped, _: self._blends.pop(dropped, None))
        self._blends: dict[str, Graphed] = {}  # per avatar: the paste as a CUDA graph
        self._silence: np.ndarray | None = None
        self._lock = threading.RLock()

    # -- models --------------------------------------------------------------------
    @property
    def models(self) -> Models:
        """The networks, loaded on first use."""
        with self._lock:
            if self._models is None:
                if self.device.type == "cuda":
                    torch.backends.cudnn.benchmark = True
                self._models = load_models(self.files, self.device, self.dtype)
            return self._models

    @property
    def condition_shape(self) -> tuple[int, int]:
        """(rows, width) of one frame's features: (50, 384) for whisper-tiny."""
        whisper = self.models.whisper
        return WINDOW * whisper.depth, whisper.width

    def warmup(self) -> None:
        """Load, compile or capture the fixed-batch network now instead of at the first render."""
        self._runner()

    def _runner(self):
        with self._lock:
            if self._run is None:
                net = speedup_switches.apply(self.models.net, self.speedups)
                inductor = COMPILE_MODES[self.compile]
                if inductor is not None:
                    net = torch.compile(net, mode=inductor, dynamic=False)
                self._run = Graphed(net, *self._dummy_inputs()) if self.graphs else net
            return self._run

    def _dummy_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator(device="cpu").manual_seed(0)
        rows, width = self.condition_shape
        latents = torch.randn(self.batch_size, 8, LATENT, LATENT, generator=g)
        audio = torch.randn(self.batch_size, rows, width, generator=g)
        return latents.to(self.device, self.dtype), audio.to(self.device, self.dtype)

    @torch.inference_mode()
    def _call(self, latents: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """The network at the fixed batch: (B, 8, 32, 32), (B, 50, 384) -> (B, 3, 256, 256) in [0, 1]."""
        return self._runner()(latents, audio)

    def _paste(self, avatar: Avatar, planes: AvatarPlanes, crops: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if not self.graphs:
            return blend(planes, crops, index)
        graph = self._blends.get(avatar.id)
        if graph is None:
            graph = self._blends[avatar.id] = Graphed(lambda i: blend(planes, crops, i), index)
        return graph(index)

    # -- features ----------------------------------------------------------------------
    def audio_features(self, audio: Audio, fps: int) -> np.ndarray:
        """Whisper windows of a clip: (audio.frame_count(fps), 50, 384) float32 for whisper-tiny."""
        samples = _to_whisper_rate(audio)
        with self._lock:
            states = self.models.whisper.clip_states(samples)
        return gather_windows(states, window_starts(audio.frame_count(fps), fps))

    def stream_features(self, sample_rate: int, fps: int) -> FeatureStream:
        return WhisperFeatureStream(self.models.whisper, sample_rate, fps)

    def silence_features(self, n_frames: int) -> np.ndarray:
        """Windows of silent audio (not zeros: what whisper makes of silence), (n_frames, 50, 384) float32."""
        if self._silence is None:
            quiet = Audio(np.zeros(WHISPER_RATE, np.float32), WHISPER_RATE)
            self._silence = self.audio_features(quiet, 25)[12]
        return np.repeat(self._silence[None], n_frames, axis=0)

    # -- avatars -----------------------------------------------------------------------
    def prepare(self, avatar: Avatar) -> None:
        """Latents (from avatar.cache_dir/musetalk when cached), masks and frames onto the device."""
        self._planes_of(avatar)

    def _planes_of(self, avatar: Avatar) -> AvatarPlanes:
        with self._lock:
            planes = self._planes.get(avatar.id)
            if planes is not None:
                return planes
            layout = crops.layout(avatar.landmarks, avatar.size)
            masks = np.stack([crops.blend_mask(lm, box) for lm, box in zip(avatar.landmarks, layout.boxes)])
            planes = AvatarPlanes.build(avatar.frames, layout, self._latents(avatar, layout), masks)
            self._planes.put(avatar.id, planes)
            return planes

    def _latents(self, avatar: Avatar, layout: crops.CropLayout) -> torch.Tensor:
        models = self.models
        store_dtype = np.float16 if self.dtype == torch.float16 else np.float32
        path = cache.latents_path(avatar.cache_dir, cache.latents_key(models.identity, str(self.dtype)))
        cached = cache.load_latents(path, avatar.frame_count)
        if cached is not None:
            return torch.from_numpy(cached).to(self.device, self.dtype)
        parts = []
        for lo in range(0, avatar.frame_count, ENCODE_CHUNK):
            hi = min(lo + ENCODE_CHUNK, avatar.frame_count)
            batch = np.stack([crops.face_crop(avatar.frames[i], layout.boxes[i]) for i in range(lo, hi)])
            parts.append(models.net.encode_crops(batch))
        latents = torch.cat(parts)
        cache.store_latents(path, latents.float().cpu().numpy().astype(store_dtype))
        return latents

    # -- rendering -----------------------------------------------------------------------
    def render(self, avatar: Avatar, features: np.ndarray, source_indices: np.ndarray, *,
               idle: np.ndarray | None = None) -> np.ndarray:
        """features: (B, 50, 384) float32 rows of audio_features; source_indices: (B,) int source
        frames; idle: ignored (the model redraws the mouth only). Returns (B, H, W, 3) uint8 BGR."""
        frame_indices = np.asarray(source_indices, np.int64)
        width, height = avatar.size
        out = np.empty((len(frame_indices), height, width, 3), np.uint8)
        for lo in range(0, len(frame_indices), self.batch_size):
            hi = min(lo + self.batch_size, len(frame_indices))
            with self._lock:  # the next batch reuses the device buffers
                frames = self.render_device(avatar, features[lo:hi], frame_indices[lo:hi]).cpu().numpy()
            if frames.shape[1:3] == (height, width):
                out[lo:hi] = frames
            else:  # only the window came back: the source frames live on the host
                x0, y0, x1, y1 = self._planes_of(avatar).window
                out[lo:hi] = avatar.frames[frame_indices[lo:hi]]
                out[lo:hi, y0:y1, x0:x1] = frames
        return out

    @torch.inference_mode()
    def render_device(self, avatar: Avatar, features: np.ndarray | torch.Tensor,
                      frame_indices: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Render up to batch_size frames, leaving them on the device.

        features: (B, 50, 384) float (numpy or a device tensor); frame_indices: (B,) int in [0, F).
        returns (B, H, W, 3) uint8 BGR on the device (only the paste window, (B, Wh, Ww, 3), for
        avatars whose frames stay on the host). With CUDA graphs it is a buffer that the next call
        overwrites: copy it before the next call (render() does, under the backend's lock).
        """
        n = len(frame_indices)
        if not 1 <= n <= self.batch_size:
            raise InvalidArgument(f"frame_indices: {n} frames; render_device takes 1..{self.batch_size}")
        rows, width = self.condition_shape
        if tuple(features.shape) != (n, rows, width):
            raise InvalidArgument(f"features: shape {tuple(features.shape)}, expected {(n, rows, width)}")
        with self._lock:
            planes = self._planes_of(avatar)
            if not torch.is_tensor(frame_indices):  # device tensors are trusted: checking them would sync
                frame_indices = np.asarray(frame_indices, np.int64)
                if frame_indices.min() < 0 or frame_indices.max() >= planes.frame_count:
                    raise InvalidArgument(f"frame_indices: values must be in 0..{planes.frame_count - 1}")
            index = torch.as_tensor(frame_indices, dtype=torch.int64).to(self.device)
            audio = torch.as_tensor(features).to(self.device, self.dtype)
            pad = self.batch_size - n
            if pad:
                index = torch.cat([index, index[-1:].expand(pad)])
                audio = torch.cat([audio, audio.new_zeros(pad, rows, width)])
            redrawn = self._call(planes.latents[index], audio)
            return self._paste(avatar, planes, redrawn, index)[:n]


def _choice(name: str, value: str | None, variable: str, choices: tuple[str, ...]) -> str:
    """`value`, else FACECAST_<variable>, else choices[0]; InvalidArgument naming a bad value and its source."""
    source = name
    if value is None:
        value = env(variable) or None
        source = f"FACECAST_{variable}"
    if value is None:
        return choices[0]
    if value not in choices:
        raise InvalidArgument(f"{source}={value!r} is not one of {list(choices)}")
    return value


def _check_held(models: Models, **given: str | None) -> None:
    """decoder= / unet= given beside models must name what the models hold."""
    for name, value in given.items():
        if value is not None and value != getattr(models, name):
            raise InvalidArgument(f"{name}={value!r}, but the given models hold {name} {getattr(models, name)!r}")


def _int_or_text(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def _to_whisper_rate(audio: Audio) -> np.ndarray:
    """audio.samples at 16 kHz, float32."""
    samples = np.asarray(audio.samples, np.float32)
    if audio.sample_rate == WHISPER_RATE:
        return samples
    from scipy.signal import resample_poly

    g = gcd(int(audio.sample_rate), WHISPER_RATE)
    return resample_poly(samples, WHISPER_RATE // g, int(audio.sample_rate) // g).astype(np.float32)
