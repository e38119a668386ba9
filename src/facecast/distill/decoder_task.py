"""`facecast distill decoder`: train a small decoder (small_decoder presets, diffusers' AutoencoderTiny
decoder layout) to reproduce the teacher's full VAE decoder.

Inputs: latents (B, 4, 32, 32) in the UNet's (scaled) space, of three kinds mixed per sample:
the VAE posterior mean of an augmented face crop (what the avatar's latents are), a draw from the
posterior (mean + std * noise), and the teacher UNet's output for the masked crop and a speech
window (what the decoder decodes at run time). Target: the full decoder's image of the same
latents, clamped to [-1, 1]. Loss: L1 over the image + mouth_weight * L1 on the mouth box +
edge_weight * Sobel edge L1 on the mouth box.

    result = train_decoder(DecoderSettings(model_dir="models/", avatars=("me.jpg",), steps=2000))
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
from facecast.distill.settings import DecoderSettings
from facecast.distill.speech import SpeechPool, build_speech
from facecast.distill.teacher import Teacher
from facecast.distill.trainer import Status
from facecast.errors import InvalidArgument

TRAIN_STREAM, EVAL_STREAM, CROP_SPLIT, SPEECH_SPLIT = 1, 2, 3, 4  # seed tags of the random streams


class DecoderTask:
    """The decoder task over a crop pool (and a speech pool when unet_fraction > 0)."""

    def __init__(self, settings: DecoderSettings, teacher: Teacher, crops: CropPool, speech: SpeechPool | None):
        from facecast.lipsync.musetalk.small_decoder import build_decoder, decoder_config

        self.settings, self.teacher, self.crops, self.speech = settings, teacher, crops, speech
        self.config = decoder_config(settings.preset, int(teacher.vae.config.latent_channels))
        torch.manual_seed(settings.seed)
        self.student = build_decoder(self.config).to(teacher.device)
        if teacher.device.type == "cuda":  # faster convolutions under autocast
            self.student.to(memory_format=torch.channels_last)
        self.split = split(crops.sources, settings.seed, settings.eval_fraction, CROP_SPLIT)
        self.speech_split = None
        if settings.unet_fraction > 0:
            if speech is None:
                raise InvalidArgument("--unet-fraction > 0 needs speech: give --audio FILE or --tts-sentences N")
            self.speech_split = split(speech.sources, settings.seed, settings.eval_fraction, SPEECH_SPLIT)
        rng = np.random.default_rng([settings.seed, EVAL_STREAM])
        held_windows = self.speech_split.held if self.speech_split is not None else None
        parts = [self._sample(rng, self.split.held, held_windows, min(settings.batch_size, settings.eval_samples - lo))
                 for lo in range(0, settings.eval_samples, settings.batch_size)]
        self.eval_latents = torch.cat([p[0] for p in parts])
        self.eval_images = torch.cat([p[1] for p in parts]) * 0.5 + 0.5  # (E, 3, 256, 256) in [0, 1]
        self.prefetch = Prefetch(self._train_draw)

    def _draw(self, rng: np.random.Generator, items: np.ndarray, windows: np.ndarray | None, n: int) -> dict:
        """The host side of a sample batch: augmented crops (n, 256, 256, 3) uint8, latent kinds, the
        noise seed and the speech windows of the UNet kind (all from `rng`, in a fixed order)."""
        s = self.settings
        picks = rng.choice(items, n)
        views = np.stack([view(self.crops.contexts[i], rng if s.augment else None) for i in picks])
        kinds = rng.choice(3, n, p=[1.0 - s.sample_fraction - s.unet_fraction, s.sample_fraction, s.unet_fraction])
        noise_seed = int(rng.integers(2 ** 62))
        redrawn = np.flatnonzero(kinds == 2)
        audio = self.speech.windows[rng.choice(windows, len(redrawn))] if len(redrawn) else None
        return {"views": views, "kinds": kinds, "noise_seed": noise_seed, "audio": audio}

    @torch.no_grad()
    def _teach(self, draw: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents (n, 4, 32, 32), target images (n, 3, 256, 256) in [-1, 1]), both float32."""
        teacher, kinds = self.teacher, draw["kinds"]
        images = teacher.images(draw["views"])
        mean, std = teacher.posterior(images)
        latents = mean.clone()
        drawn = torch.from_numpy(kinds == 1).to(latents.device)
        if bool(drawn.any()):
            noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(draw["noise_seed"]))
            noise = noise.to(latents.device)
            latents[drawn] = mean[drawn] + std[drawn] * noise[drawn]
        redrawn = np.flatnonzero(kinds == 2)
        if len(redrawn):
            index = torch.from_numpy(redrawn).to(latents.device)
            latents[index] = teacher.redraw(teacher.unet_input(images[index]), torch.from_numpy(draw["audio"]))
        return latents, teacher.decode(latents).clamp(-1.0, 1.0)

    def _sample(self, rng: np.random.Generator, items: np.ndarray, windows: np.ndarray | None,
                n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._teach(self._draw(rng, items, windows, n))

    def _train_draw(self, key: tuple[int, int]) -> dict:
        rng = np.random.default_rng([self.settings.seed, TRAIN_STREAM, *key])
        windows = self.speech_split.train if self.speech_split is not None else None
        return self._draw(rng, self.split.train, windows, self.settings.batch_size)

    def micro_batch(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        following = (step, micro + 1) if micro + 1 < self.settings.accumulate else (step + 1, 0)
        return self._teach(self.prefetch.get((step, micro), following))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        latents, target = batch
        out = self.student(latents).float()
        pixel = (out - target).abs().mean()
        mouth_out, mouth_target = metrics.mouth(out), metrics.mouth(target)
        mouth = (mouth_out - mouth_target).abs().mean()
        edge = metrics.edge_loss(mouth_out, mouth_target)
        loss = pixel + self.settings.mouth_weight * mouth + self.settings.edge_weight * edge
        return loss, {"pixel": pixel.detach(), "mouth": mouth.detach(), "edge": edge.detach()}

    def evaluate(self) -> dict[str, float]:
        """Small vs full decoder on the held-out latents: mean per-image PSNR (dB) overall and on the
        mouth box, of images in [0, 1] clamped as at run time."""
        overall, mouth = [], []
        for lo in range(0, len(self.eval_latents), self.settings.batch_size):
            out = (self.student(self.eval_latents[lo: lo + self.settings.batch_size]).float() * 0.5 + 0.5).clamp(0, 1)
            a, b = metrics.psnr_pair(out, self.eval_images[lo: lo + len(out)])
            overall.append(a)
            mouth.append(b)
        return {"psnr": round(float(torch.cat(overall).mean()), 4),
                "psnr_mouth": round(float(torch.cat(mouth).mean()), 4)}


def train_decoder(settings: DecoderSettings, teacher=None, *, crops: CropPool | None = None,
                  speech: SpeechPool | None = None, on_step: Callable[[Status], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Result:
    """Distil the teacher's VAE decoder into a small one and export it.

    settings: what to train (DecoderSettings documents each option)
    teacher: None (load settings.model_dir), or already-loaded networks (loading.Models or a
        distill.teacher.Teacher) on the device and dtype to use
    crops / speech: ready pools (benchmarks); None: built from settings.avatars / images / audio / TTS
    on_step: called with a trainer.Status after every optimiser step
    progress: avatar preparation progress (done, total)
    Returns the Result; the export goes to settings.output (default <model_dir>/small-decoder),
    with a distill.json. Raises FacecastError subclasses (one-line messages) before writing anything.
    """
    from facecast.lipsync.musetalk.small_decoder import SMALL_DECODER_DIR, save_decoder
    from facecast.lipsync.musetalk.student_unet import parameter_count

    run = start(settings, SMALL_DECODER_DIR, teacher)
    if crops is None:
        crops = build_crops(settings.avatars, settings.images, settings.frames_per_avatar, settings.max_crops, progress)
    if speech is None and settings.unet_fraction > 0:
        speech = build_speech(run.teacher.models.whisper, settings.audio, settings.tts_sentences, settings.voices,
                              settings.max_windows)
    task = DecoderTask(settings, run.teacher, crops, speech)
    outcome, data = train_task(run, task, crops, speech, on_step)
    info = provenance(run, "decoder", outcome, data, {"parameters": parameter_count(task.student)})
    return finish(run, outcome, task.student, task.config, info, save_decoder)
