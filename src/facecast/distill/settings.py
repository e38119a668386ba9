"""The options of a distillation run, as frozen dataclasses (the CLI builds them from its arguments).

Every number is checked by `check()`; a bad value raises InvalidArgument naming the option.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from facecast.errors import InvalidArgument

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
SCHEDULES = ("cosine", "constant")
DEFAULT_VOICES = ("en", "de", "fr", "es", "it")


@dataclass(frozen=True)
class TrainSettings:
    """Options shared by both tasks.

    model_dir: the teacher, a musetalk model directory (not read when a teacher is passed in-process)
    output: export folder; None: <model_dir>/small-decoder or <model_dir>/musetalk-student
    avatars: image/video files or prepared avatar ids whose face crops are the training images
    images: folders of other images (decoder; each image's centre square is used)
    audio: speech files (any format facecast decodes) for the UNet's conditions
    tts_sentences: offline text-to-speech sentences added to the speech (0: none), cycling through `voices`
    steps / minutes: the budget; training stops at whichever comes first (one of them is needed).
        A minutes budget depends on the machine's speed, so only a steps budget is reproducible.
    batch_size: samples per micro-batch; accumulate: micro-batches per optimiser step
    lr, weight_decay, grad_clip (0: none): AdamW and gradient clipping
    schedule: "cosine" (linear warm-up over warmup_steps, then cosine decay to lr / 10 at the end of
        the budget: the larger of steps done / steps and seconds / minutes) or "constant"
    precision: "auto" (bfloat16 autocast on CUDA where supported, else float16; float32 on a CPU),
        "float32", "bfloat16" or "float16" (autocast with a GradScaler)
    device: "cuda", "cuda:1", "cpu"; None: cuda when available
    teacher_dtype: the teacher's dtype (None: float16 on a GPU, float32 on a CPU)
    seed: every random choice (initialisation, held-out split, batches, augmentation) derives from it
    checkpoint: the checkpoint file; None: <output>.ckpt beside the export folder
    checkpoint_every: optimiser steps between checkpoints (0: only at the end)
    resume: continue from `checkpoint` (the settings that shape training must be the same)
    keep_checkpoint: keep the checkpoint after the export (default: removed)
    eval_every: optimiser steps between evaluations on the held-out set (0: only at the end)
    eval_samples: size of the held-out set; eval_fraction: share of the sources held out
    max_crops: cap on face crops / images kept in memory (320x320x3 uint8 each, ~0.3 MB)
    frames_per_avatar: cap on the frames taken from one video avatar (evenly spaced)
    max_windows: cap on speech windows kept in memory
    augment: colour jitter, scale, rotation, shifts and mirroring of the crops (seeded)
    export: write the student when training ends
    """

    model_dir: Path | None = None
    output: Path | None = None
    preset: str = ""
    avatars: tuple[str, ...] = ()
    images: tuple[Path, ...] = ()
    audio: tuple[Path, ...] = ()
    tts_sentences: int = 6
    voices: tuple[str, ...] = DEFAULT_VOICES
    steps: int | None = 2000
    minutes: float | None = None
    batch_size: int = 16
    accumulate: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    schedule: str = "cosine"
    warmup_steps: int = 100
    precision: str = "auto"
    device: str | None = None
    teacher_dtype: str | None = None
    seed: int = 0
    checkpoint: Path | None = None
    checkpoint_every: int = 200
    resume: bool = False
    keep_checkpoint: bool = False
    eval_every: int = 200
    eval_samples: int = 32
    eval_fraction: float = 0.1
    max_crops: int = 1000
    frames_per_avatar: int = 64
    max_windows: int = 4096
    augment: bool = True
    export: bool = True

    def check(self) -> "TrainSettings":
        """self, or InvalidArgument naming the first bad option."""
        if self.steps is None and self.minutes is None:
            raise InvalidArgument("give a budget: --steps N and/or --minutes M")
        _positive_int("steps", self.steps, allow_none=True)
        if self.minutes is not None and not (_finite(self.minutes) and self.minutes > 0):
            raise InvalidArgument(f"--minutes {self.minutes!r} must be a positive number")
        for name in ("batch_size", "accumulate", "eval_samples", "max_crops", "frames_per_avatar", "max_windows"):
            _positive_int(name, getattr(self, name))
        if self.schedule not in SCHEDULES:
            raise InvalidArgument(f"--schedule {self.schedule!r} is not one of {list(SCHEDULES)}")
        for name in ("checkpoint_every", "eval_every", "tts_sentences", "seed", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"--{_flag(name)} {value!r} must be a whole number >= 0")
        if not (_finite(self.lr) and self.lr > 0):
            raise InvalidArgument(f"--lr {self.lr!r} must be a positive number")
        for name in ("weight_decay", "grad_clip"):
            if not (_finite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InvalidArgument(f"--{_flag(name)} {getattr(self, name)!r} must be a number >= 0")
        if not (_finite(self.eval_fraction) and 0 <= self.eval_fraction < 1):
            raise InvalidArgument(f"--eval-fraction {self.eval_fraction!r} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            raise InvalidArgument(f"--precision {self.precision!r} is not one of {list(PRECISIONS)}")
        if self.tts_sentences and not self.voices:
            raise InvalidArgument("--voices: give at least one voice for the text-to-speech sentences")
        return self

    def fingerprint(self) -> dict:
        """The options that shape the trained weights (a resumed run must match them); the budget,
        the schedule of checkpoints and evaluations, and where files go are left out."""
        skip = {"model_dir", "output", "steps", "minutes", "checkpoint", "checkpoint_every", "resume",
                "keep_checkpoint", "eval_every", "export", "device", "max_crops", "max_windows"}
        return {k: _plain(v) for k, v in asdict(self).items() if k not in skip}


@dataclass(frozen=True)
class DecoderSettings(TrainSettings):
    """`facecast distill decoder`: a DecoderTiny (small_decoder preset) from the teacher's VAE decoder.

    sample_fraction: share of latents drawn from the VAE posterior (mean + std * noise) instead of its mean
    unet_fraction: share of latents that are the teacher UNet's output (mouth redrawn for a speech
        window), what the decoder sees at run time; needs speech (TTS sentences or --audio)
    mouth_weight: weight of the extra pixel L1 on the mouth region (metrics.MOUTH_BOX)
    edge_weight: weight of the Sobel edge L1 on the mouth region
    """

    preset: str = "taesd"
    lr: float = 1e-3
    sample_fraction: float = 0.25
    unet_fraction: float = 0.25
    mouth_weight: float = 1.0
    edge_weight: float = 0.5

    def check(self) -> "DecoderSettings":
        from facecast.lipsync.musetalk.small_decoder import PRESETS

        if self.preset not in PRESETS:
            raise InvalidArgument(f"--preset {self.preset!r} is not one of {sorted(PRESETS)}")
        for name in ("sample_fraction", "unet_fraction"):
            if not (_finite(getattr(self, name)) and 0 <= getattr(self, name) <= 1):
                raise InvalidArgument(f"--{_flag(name)} {getattr(self, name)!r} must be in [0, 1]")
        if self.sample_fraction + self.unet_fraction > 1:
            raise InvalidArgument(f"--sample-fraction {self.sample_fraction} + --unet-fraction {self.unet_fraction} "
                                  "must not exceed 1")
        for name in ("mouth_weight", "edge_weight"):
            if not (_finite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InvalidArgument(f"--{_flag(name)} {getattr(self, name)!r} must be a number >= 0")
        return super().check()


@dataclass(frozen=True)
class UnetSettings(TrainSettings):
    """`facecast distill unet`: a student UNet (student_unet preset) started from the teacher's weights.

    pixel_weight: weight of an L1 between the teacher-VAE decodes of student and teacher latents on
        the mouth region (0: latent MSE only; costs a VAE decode with gradients per step)
    """

    preset: str = "base"
    lr: float = 5e-5
    pixel_weight: float = 0.0

    def check(self) -> "UnetSettings":
        from facecast.lipsync.musetalk.student_unet import PRESETS

        if self.preset not in PRESETS:
            raise InvalidArgument(f"--preset {self.preset!r} is not one of {list(PRESETS)}")
        if not (_finite(self.pixel_weight) and self.pixel_weight >= 0):
            raise InvalidArgument(f"--pixel-weight {self.pixel_weight!r} must be a number >= 0")
        return super().check()


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"--{_flag(name)} {value!r} must be a whole number >= 1")


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value

