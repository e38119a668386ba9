"""Student UNets: smaller UNet2DConditionModels with the teacher's inputs and outputs, made from it.

Every preset is a function of the teacher's config (so it applies to the tiny test teacher and to
MuseTalk's 320-640-1280-1280 alike), BK-SDM style: blocks are removed, never rearranged, so the
kept ones start from the teacher's weights.

    preset    what is removed from the teacher                         MuseTalk-size params
    base      the mid block, and one layer in every down and up block  ~0.5x
    small     base, and the innermost (attention-free) stage           ~0.35x
    tiny      small, at half the width (weights: the teacher's leading channels)
    narrow    nothing removed, half the width

A student directory holds the same files as the teacher's UNet folder, plus how it was made:

    <model_dir>/musetalk-student/{musetalk.json, unet.pth, distill.json}
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from facecast.errors import InvalidArgument, ModelFilesMissing

STUDENT_DIR = "musetalk-student"
CONFIG, WEIGHTS = "musetalk.json", "unet.pth"
PRESETS = ("base", "small", "tiny", "narrow")


def student_config(teacher: dict, preset: str) -> dict:
    """The student's UNet2DConditionModel config (musetalk.json contents) for `preset` of `teacher`."""
    if preset not in PRESETS:
        raise InvalidArgument(f"student preset={preset!r} is not one of {list(PRESETS)}")
    config = dict(teacher)
    down, up = list(teacher["down_block_types"]), list(teacher["up_block_types"])
    widths = list(teacher["block_out_channels"])
    if preset in ("base", "small", "tiny"):
        config["mid_block_type"] = None
        config["layers_per_block"] = 1
    if preset in ("small", "tiny") and len(widths) > 2 and "CrossAttn" not in down[-1]:
        down, up, widths = down[:-1], up[1:], widths[:-1]
    if preset in ("tiny", "narrow"):
        groups = int(teacher.get("norm_num_groups", 32))
        widths = [max(groups, (w // 2) // groups * groups) for w in widths]
    config.update(down_block_types=down, up_block_types=up, block_out_channels=widths)
    return config


def build_unet(config: dict) -> nn.Module:
    """A fresh UNet2DConditionModel from a musetalk.json-style config (keys starting with '_' ignored)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})


def make_student(teacher: nn.Module, preset: str, seed: int = 0) -> tuple[nn.Module, dict, dict]:
    """(student, its config, counts) for `preset`, started from the teacher's weights.

    Each student tensor takes the teacher tensor of the same role (the stage map drops the removed
    innermost stage; layer 0 of a block stays layer 0); same shape: copied; smaller in every
    dimension: the teacher's leading slice; else (a new shape) it keeps its seeded random start.
    counts: {"copied": n, "sliced": n, "fresh": n} tensors.
    """
    config = student_config(dict(teacher.config), preset)
    torch.manual_seed(seed)
    student = build_unet(config)
    shift = len(teacher.config.block_out_channels) - len(config["block_out_channels"])
    source = teacher.state_dict()
    counts = {"copied": 0, "sliced": 0, "fresh": 0}
    state = student.state_dict()
    for name, tensor in state.items():
        given = source.get(_teacher_name(name, shift))
        if given is None or given.dim() != tensor.dim():
            counts["fresh"] += 1
        elif given.shape == tensor.shape:
            tensor.copy_(given)
            counts["copied"] += 1
        elif all(g >= t for g, t in zip(given.shape, tensor.shape)):
            tensor.copy_(given[tuple(slice(0, t) for t in tensor.shape)])
            counts["sliced"] += 1
        else:
            counts["fresh"] += 1
    return student, config, counts


def _teacher_name(name: str, shift: int) -> str:
    """The teacher's name for a student tensor: up block i of a student short by `shift` stages is
    the teacher's up block i + shift (down blocks keep their index)."""
    if shift and name.startswith("up_blocks."):
        _, index, rest = name.split(".", 2)
        return f"up_blocks.{int(index) + shift}.{rest}"
    return name


def locate_student(model_dir: str | Path) -> Path:
    """<model_dir>/musetalk-student (or model_dir itself when it holds the files); ModelFilesMissing if absent."""
    from facecast.lipsync.musetalk.files import variant_folder

    root = Path(model_dir).expanduser()
    folder = variant_folder(root, STUDENT_DIR, CONFIG, WEIGHTS)
    if folder is not None:
        return folder
    raise ModelFilesMissing(f"no student UNet in {str(root)!r}: expected {root / STUDENT_DIR / CONFIG} and {WEIGHTS} "
                            f"beside it (make one with `facecast distill unet --model-dir {root}`)")


def save_student(unet: nn.Module, config: dict, folder: str | Path, provenance: dict | None = None) -> Path:
    """Write a student as <folder>/{musetalk.json, unet.pth[, distill.json]}, replacing the folder atomically."""
    from facecast.files import atomic_dir

    state = {k: v.detach().float().cpu().contiguous() for k, v in unet.state_dict().items()}
    with atomic_dir(Path(folder)) as tmp:
        torch.save(state, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps({"_class_name": "UNet2DConditionModel", **config}, indent=2))
        if provenance is not None:
            (tmp / "distill.json").write_text(json.dumps(provenance, indent=2))
    return Path(folder)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
