"""What both tasks do around the training loop: check the settings, pick the device, the output
folder and the checkpoint file, load the teacher, and export the student with its distill.json.

Everything that can fail on bad input fails here before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facecast.distill.settings import TrainSettings
from facecast.distill.teacher import Teacher, in_process, load_teacher
from facecast.distill.trainer import Outcome, Status, train
from facecast.errors import InvalidArgument


@dataclass
class Result:
    """What a distillation produced.

    output: the exported folder (None when not exported); student: the trained module (float32,
    on the training device); config: its config (AutoencoderTiny or musetalk.json contents);
    steps, samples, seconds: optimiser steps, training samples and training seconds over all
    sessions; losses: one per step; evaluations: [{"step", "psnr", "psnr_mouth", ...}];
    final: the last evaluation; provenance: the contents of distill.json.
    """

    output: Path | None
    student: nn.Module
    config: dict
    steps: int
    samples: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


@dataclass
class Run:
    settings: TrainSettings
    device: torch.device
    teacher: Teacher
    output: Path | None
    checkpoint: Path | None


MARKER = "distill.json"  # what an earlier export holds: only such a folder may be replaced


def start(settings: TrainSettings, folder_name: str, teacher=None) -> Run:
    """Check everything, then load the teacher (unless given: a loading.Models or a Teacher).

    folder_name: the default export folder inside the model directory. An existing, non-empty output
    folder is replaced only when it holds an earlier export (its distill.json).
    """
    from facecast.lipsync.musetalk.loading import resolve_device, resolve_dtype

    settings.check()
    if teacher is None:
        from facecast.lipsync.musetalk.files import locate

        locate(settings.model_dir)  # a missing model directory or file is named before anything else
    _check_inputs(settings)
    output = _output(settings, folder_name)
    checkpoint = settings.checkpoint or (output.with_name(output.name + ".ckpt") if output is not None else None)
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise InvalidArgument(f"--checkpoint {str(checkpoint)!r} is a folder; give a file path")
    if settings.resume and (checkpoint is None or not Path(checkpoint).is_file()):
        raise InvalidArgument(f"--resume: no checkpoint at {checkpoint}" if checkpoint is not None else
                              "--resume: no checkpoint file (give --checkpoint or an output folder)")
    if teacher is None:
        device = resolve_device(settings.device)
        teacher = load_teacher(settings.model_dir, device, resolve_dtype(settings.teacher_dtype, device))
    elif not isinstance(teacher, Teacher):
        teacher = in_process(teacher)
    return Run(settings, teacher.device, teacher, output, Path(checkpoint) if checkpoint else None)


def _check_inputs(settings: TrainSettings) -> None:
    """Cheap checks of the named inputs before anything slow: avatar files or ids, image folders, speech files."""
    from facecast.avatar.resolve import avatar_file
    from facecast.distill.data import image_files

    for ref in settings.avatars:
        avatar_file(ref)
    for folder in settings.images:
        image_files(folder)
    for path in settings.audio:
        if not Path(path).is_file():
            raise InvalidArgument(f"--audio {str(path)!r}: no such file")


def _output(settings: TrainSettings, folder_name: str) -> Path | None:
    if settings.output is None and settings.model_dir is None:
        if settings.export:
            raise InvalidArgument("-o/--output: give the folder the student is written to")
        return None
    model_dir = Path(settings.model_dir).expanduser().resolve() if settings.model_dir is not None else None
    out = Path(settings.output).expanduser() if settings.output is not None else model_dir / folder_name
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"-o {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InvalidArgument(f"-o {str(out)!r} is a folder that holds no earlier export ({MARKER}); it would be "
                              "replaced as a whole, so give a new folder")
    if model_dir is not None and (out.resolve() == model_dir or out.resolve() in model_dir.parents):
        raise InvalidArgument(f"-o {str(out)!r} would replace the model directory; give a folder inside it "
                              "or elsewhere")
    return out


def train_task(run: Run, task, crops, speech, on_step: Callable[[Status], None] | None) -> tuple[Outcome, dict]:
    """Train `task` (a trainer.Task with .split and .prefetch) under a checkpoint fingerprint of the
    settings, the teacher and the pool sizes; its prefetch thread is closed however training ends.
    Returns the outcome and distill.json's data counts (speech: a SpeechPool or None)."""
    windows = len(speech) if speech is not None else 0
    fingerprint = {**run.settings.fingerprint(), "teacher": run.teacher.identity, "crops": len(crops),
                   "speech": windows}
    try:
        outcome = train(task, run.settings, run.device, run.checkpoint, fingerprint, on_step)
    finally:
        task.prefetch.close()
    data = {"crops": len(crops), "sources": list(crops.names[:50]), "held_out": task.split.held_out,
            "speech_windows": windows}
    return outcome, data


def provenance(run: Run, kind: str, outcome: Outcome, data: dict, extra: dict) -> dict:
    """distill.json: the teacher, the preset, the budget spent, the final evaluation, the seed."""
    from facecast import __version__

    s = run.settings
    return {"kind": kind, "preset": s.preset, "teacher": run.teacher.identity, "steps": outcome.step,
            "samples": outcome.samples, "seconds": round(outcome.seconds, 3), "seed": s.seed,
            "evaluation": outcome.final, "settings": s.fingerprint(), "data": data,
            "device": str(run.device), "teacher_dtype": str(run.teacher.dtype).removeprefix("torch."),
            "facecast": __version__, **extra}


def finish(run: Run, outcome: Outcome, student: nn.Module, config: dict, info: dict, save) -> Result:
    """Export (save(student, config, folder, info) when settings.export), drop the checkpoint unless
    kept, and return the Result."""
    output = None
    if run.settings.export and run.output is not None:
        output = save(student, config, run.output, info)
        if run.checkpoint is not None and not run.settings.keep_checkpoint:
            run.checkpoint.unlink(missing_ok=True)
    return Result(output, student, config, outcome.step, outcome.samples, outcome.seconds, outcome.losses,
                  outcome.evaluations, outcome.final, info)
