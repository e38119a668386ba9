"""The training loop both tasks share: AdamW, mixed precision, gradient accumulation, budgets,
periodic evaluation and checkpoints, and resumption that repeats an uninterrupted run exactly.

A task supplies the student, the micro-batches (a pure function of the step and the micro-batch
index, so the data position is the step) and the loss and evaluation. On the CPU a run resumed
from a checkpoint ends bitwise equal to one that never stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from facecast.distill import checkpoint as ckpt
from facecast.distill.settings import TrainSettings
from facecast.errors import InvalidArgument


class Task(Protocol):
    student: nn.Module

    def micro_batch(self, step: int, micro: int) -> Any:
        """The inputs and targets of micro-batch `micro` of optimiser step `step` (deterministic)."""

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(scalar float32 loss, {part: detached scalar}) of the student on `batch` (autocast is on)."""

    def evaluate(self) -> dict[str, float]:
        """Student vs teacher on the held-out set: {"psnr": dB, "psnr_mouth": dB, ...}."""


@dataclass
class Status:
    """What on_step callbacks see after each optimiser step.

    loss: mean over the step's micro-batches; parts: its components; samples_per_s: this session's
    throughput; elapsed: training seconds over all sessions; evaluation: the metrics when this step
    evaluated, else None.
    """

    step: int
    steps: int | None
    loss: float
    parts: dict[str, float]
    samples_per_s: float
    elapsed: float
    evaluation: dict | None = None


@dataclass
class Outcome:
    """step: optimiser steps done; samples: training samples seen; seconds: training time over all
    sessions; losses: one per step; evaluations: [{"step": n, **metrics}] in step order."""

    step: int
    samples: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.evaluations[-1] if self.evaluations else {}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None: plain float32)."""
    if precision == "float32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "float16" and device.type != "cuda":
        raise InvalidArgument(f"--precision float16 needs a CUDA device; device is {device} (use bfloat16 or float32)")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def lr_factor(settings: TrainSettings, step: int, seconds: float) -> float:
    """The learning-rate multiplier of optimiser step `step` (0-based) after `seconds` of training."""
    if settings.schedule == "constant":
        return 1.0
    warm = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
    done = max(step / settings.steps if settings.steps else 0.0,
               seconds / (settings.minutes * 60) if settings.minutes else 0.0)
    return warm * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, done))))


def train(task: Task, settings: TrainSettings, device: torch.device, checkpoint_path: Path | None,
          fingerprint: dict, on_step: Callable[[Status], None] | None = None) -> Outcome:
    """Train `task.student` until the budget (settings.steps / settings.minutes) is spent.

    checkpoint_path: where checkpoints go (None: none are written and --resume is refused).
    fingerprint: the settings a resumed checkpoint must match.
    """
    student = task.student
    amp = autocast_dtype(settings.precision, device)
    params = [p for p in student.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay,
                                  fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    outcome = Outcome(0, 0, 0.0)
    if settings.resume:
        if checkpoint_path is None:
            raise InvalidArgument("--resume: no checkpoint file (give --checkpoint or an output folder)")
        state = ckpt.load(checkpoint_path, fingerprint)
        student.load_state_dict(state["student"])
        optimiser.load_state_dict(state["optimiser"])
        scaler.load_state_dict(state["scaler"])
        outcome = Outcome(int(state["step"]), int(state["samples"]), float(state["seconds"]),
                          list(state["losses"]), list(state["evaluations"]))

    def save() -> None:
        if checkpoint_path is not None:
            ckpt.save(checkpoint_path, {"student": student.state_dict(), "optimiser": optimiser.state_dict(),
                                        "scaler": scaler.state_dict(), "step": outcome.step,
                                        "samples": outcome.samples, "seconds": outcome.seconds,
                                        "losses": outcome.losses, "evaluations": outcome.evaluations,
                                        "fingerprint": fingerprint})

    def evaluate() -> dict:
        student.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            metrics = {"step": outcome.step, **task.evaluate()}
        student.train()
        outcome.evaluations.append(metrics)
        return metrics

    def spent() -> bool:
        if settings.steps is not None and outcome.step >= settings.steps:
            return True
        return settings.minutes is not None and outcome.seconds >= settings.minutes * 60

    student.train()
    session_start, session_samples = time.perf_counter(), 0
    while not spent():
        began = time.perf_counter()
        for group in optimiser.param_groups:
            group["lr"] = settings.lr * lr_factor(settings, outcome.step, outcome.seconds)
        optimiser.zero_grad(set_to_none=True)
        total, parts = torch.zeros((), device=device), {}
        for micro in range(settings.accumulate):
            batch = task.micro_batch(outcome.step, micro)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss, pieces = task.loss(batch)
            scaler.scale(loss / settings.accumulate).backward()
            total += loss.detach() / settings.accumulate
            for name, value in pieces.items():
                parts[name] = parts.get(name, 0.0) + value.detach() / settings.accumulate
        if settings.grad_clip > 0:
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        scaler.step(optimiser)
        scaler.update()
        loss_value = float(total)  # one host sync per step
        if loss_value != loss_value:
            raise InvalidArgument(f"training diverged at step {outcome.step + 1} (loss is NaN); lower --lr")
        outcome.step += 1
        outcome.samples += settings.batch_size * settings.accumulate
        session_samples += settings.batch_size * settings.accumulate
        outcome.seconds += time.perf_counter() - began
        outcome.losses.append(loss_value)
        evaluation = None
        if (settings.eval_every and outcome.step % settings.eval_every == 0) or spent():
            evaluation = evaluate()
        if spent() or (settings.checkpoint_every and outcome.step % settings.checkpoint_every == 0):
            save()
        if on_step is not None:
            rate = session_samples / max(time.perf_counter() - session_start, 1e-9)
            on_step(Status(outcome.step, settings.steps, loss_value, {k: float(v) for k, v in parts.items()},
                           rate, outcome.seconds, evaluation))
    if not outcome.evaluations or outcome.evaluations[-1]["step"] != outcome.step:
        evaluate()  # a resumed run whose budget was already spent
    return outcome
