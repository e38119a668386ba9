"""`facecast distill unet`: train a student UNet (student_unet presets, started from the teacher's
weights) to reproduce the teacher UNet's output latents.

Inputs: the UNet's 8-channel latents of augmented avatar face crops (masked + reference, as
LipsyncNet.encode_crops makes them) with a speech window from the users' audio files and offline
TTS sentences (the backend's whisper path). Target: the teacher UNet's output latents (B, 4, 32, 32).
Loss: latent MSE, + pixel_weight * L1 between the teacher-VAE decodes of student and teacher
latents on the mouth box.

    result = train_unet(UnetSettings(model_dir="models/", avatars=("me.mp4",), audio=("talk.wav",)))
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from facecast.distill import metrics
from facecast.distill.augment import view
from facecast.distill.data import CropPool, build_crops, split
from facecast.distill.prefetch import Prefetch
from facecast.distill.run import Result, finish, provenance, start, train_task
from facecast.distill.settings import UnetSettings
from facecast.distill.speech import SpeechPool, build_speech
from facecast.distill.teacher import Teacher
from facecast.distill.trainer import Status

TRAIN_STREAM, EVAL_STREAM, CROP_SPLIT, SPEECH_SPLIT = 1, 2, 3, 4  # seed tags of the random streams
LOWER_HALF = 16  # latent rows from which the decoded mouth box is taken (pixel rows 128..)


class UnetTask:
    """The UNet task over a crop pool and a speech pool."""

    def __init__(self, settings: UnetSettings, teacher: Teacher, crops: CropPool, speech: SpeechPool):
        from facecast.lipsync.musetalk.student_unet import make_student

        self.settings, self.teacher, self.crops, self.speech = settings, teacher, crops, speech
        student, self.config, self.counts = make_student(teacher.unet, settings.preset, settings.seed)
        self.student = student.float().to(teacher.device).requires_grad_(True)
        if teacher.device.type == "cuda":  # faster convolutions under autocast
            self.student.to(memory_format=torch.channels_last)
        self.split = split(crops.sources, settings.seed, settings.eval_fraction, CROP_SPLIT)
        self.speech_split = split(speech.sources, settings.seed, settings.eval_fraction, SPEECH_SPLIT)
        rng = np.random.default_rng([settings.seed, EVAL_STREAM])
        parts = [self._sample(rng, self.split.held, self.speech_split.held,
                              min(settings.batch_size, settings.eval_samples - lo))
                 for lo in range(0, settings.eval_samples, settings.batch_size)]
        self.eval_inputs = [p[:2] for p in parts]
        self.eval_targets = [p[2] for p in parts]
        with torch.no_grad():
            self.eval_images = [self._pixels(t) for t in self.eval_targets]
        self.prefetch = Prefetch(self._train_draw)

    def _draw(self, rng: np.random.Generator, items: np.ndarray, windows: np.ndarray,
              n: int) -> tuple[np.ndarray, np.ndarray]:
        """The host side: augmented crops (n, 256, 256, 3) uint8 and speech windows (n, 50, width) float16."""
        picks = rng.choice(items, n)
        views = np.stack([view(self.crops.contexts[i], rng if self.settings.augment else None) for i in picks])
        return views, self.speech.windows[rng.choice(windows, n)]

    @torch.no_grad()
    def _teach(self, draw: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latents (n, 8, 32, 32), audio (n, 50, width), target (n, 4, 32, 32)), float32 on the device."""
        views, windows = draw
        audio = torch.from_numpy(windows).to(self.teacher.device).float()
        latents = self.teacher.unet_input(self.teacher.images(views))
        return latents, audio, self.teacher.redraw(latents, audio)

    def _sample(self, rng: np.random.Generator, items: np.ndarray, windows: np.ndarray, n: int):
        return self._teach(self._draw(rng, items, windows, n))

    def _train_draw(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.settings.seed, TRAIN_STREAM, *key])
        return self._draw(rng, self.split.train, self.speech_split.train, self.settings.batch_size)

    def _student(self, latents: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        out = self.student(latents, self.teacher.models.net.timestep,
                           encoder_hidden_states=self.teacher.condition(audio), return_dict=False)[0]
        return out.float()

    def _pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """Teacher-VAE images in [0, 1] of latents (B, 4, 32, 32) -> (B, 3, 256, 256)."""
        return (self.teacher.decode(latents) * 0.5 + 0.5).clamp(0.0, 1.0)

    def micro_batch(self, step: int, micro: int):
        following = (step, micro + 1) if micro + 1 < self.settings.accumulate else (step + 1, 0)
        return self._teach(self.prefetch.get((step, micro), following))

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        latents, audio, target = batch
        out = self._student(latents, audio)
        mse = (out - target).pow(2).mean()
        parts = {"latent": mse.detach()}
        loss = mse
        if self.settings.pixel_weight > 0:  # decode the lower half only: the mouth box lies in it
            with torch.no_grad():
                want = self.teacher.decode(target[..., LOWER_HALF:, :])
            got = self.teacher.decode(out[..., LOWER_HALF:, :])
            y0, y1, x0, x1 = metrics.MOUTH_BOX
            top = LOWER_HALF * 8
            pixel = (got[..., y0 - top: y1 - top, x0:x1] - want[..., y0 - top: y1 - top, x0:x1]).abs().mean()
            parts["pixel"] = pixel.detach()
            loss = loss + self.settings.pixel_weight * pixel
        return loss, parts

    def evaluate(self) -> dict[str, float]:
        """Student vs teacher on the held-out set: latent MSE, and the mean per-image PSNR (dB) of
        their teacher-VAE decodes, overall and on the mouth box."""
        overall, mouth, mse = [], [], []
        for (latents, audio), target, images in zip(self.eval_inputs, self.eval_targets, self.eval_images):
            out = self._student(latents, audio)
            mse.append((out - target).pow(2).flatten(1).mean(1))
            a, b = metrics.psnr_pair(self._pixels(out), images)
            overall.append(a)
            mouth.append(b)
        return {"psnr": round(float(torch.cat(overall).mean()), 4),
                "psnr_mouth": round(float(torch.cat(mouth).mean()), 4),
                "latent_mse": float(torch.cat(mse).mean())}


def train_unet(settings: UnetSettings, teacher=None, *, crops: CropPool | None = None,
               speech: SpeechPool | None = None, on_step: Callable[[Status], None] | None = None,
               progress: Callable[[int, int], None] | None = None) -> Result:
    """Distil the teacher UNet into a student of settings.preset and export it.

    settings: what to train (UnetSettings documents each option)
    teacher: None (load settings.model_dir), or already-loaded networks (loading.Models or a
        distill.teacher.Teacher) on the device and dtype to use
    crops / speech: ready pools (benchmarks); None: built from settings.avatars / audio / TTS
    on_step: called with a trainer.Status after every optimiser step
    progress: avatar preparation progress (done, total)
    Returns the Result; the export goes to settings.output (default <model_dir>/musetalk-student),
    with a distill.json. Raises FacecastError subclasses (one-line messages) before writing anything.
    """
    from facecast.lipsync.musetalk.student_unet import STUDENT_DIR, parameter_count, save_student

    run = start(settings, STUDENT_DIR, teacher)
    if crops is None:
        crops = build_crops(settings.avatars, settings.images, settings.frames_per_avatar, settings.max_crops, progress)
    if speech is None:
        speech = build_speech(run.teacher.models.whisper, settings.audio, settings.tts_sentences, settings.voices,
                              settings.max_windows)
    task = UnetTask(settings, run.teacher, crops, speech)
    outcome, data = train_task(run, task, crops, speech, on_step)
    data["speech_sources"] = list(speech.names[:50])
    extra = {"parameters": parameter_count(task.student), "teacher_parameters": parameter_count(run.teacher.unet),
             "initialised": task.counts}
    info = provenance(run, "unet", outcome, data, extra)
    return finish(run, outcome, task.student, task.config, info, save_student)
