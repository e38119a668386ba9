"""Make docs/mouth.png: a before/after contact sheet of the synthesized inner mouth on the
public-domain astronaut portrait (scikit-image; the demo avatar), upscaled so the face is
large (the mouth crops are judged at face widths over 300 px), at a few openings. Rows:
before; after (the astronaut smiles with her teeth showing: they are kept); after with
every tooth painted (as for a closed-mouth portrait).

"before" is lipsync/inner_mouth.py as of git revision --before (default: the revision
before the inner-mouth rework), loaded from git for the sheet only; "after" is the working
tree's. Only this public-domain avatar is ever published; never make sheets of the test
media in ../shared/data.

Run: .venv/bin/python scripts/mouth_sheet.py [--out docs/mouth.png] [--before REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from facecast.avatar.prepare import prepare
from facecast.config import PrepareSettings
from facecast.demo import demo_portrait
from facecast.lipsync import classic
from facecast.lipsync.classic import ClassicBackend

REPO = Path(__file__).resolve().parents[1]
OPENINGS = (0.25, 0.5, 0.75, 1.0)
SIZE = 1024  # px: the astronaut (512 px) upscaled, face about 420 px wide
TILE = 300  # px: each mouth crop's width on the sheet


def old_inner_mouth(rev: str):
    """The inner_mouth module as of git revision `rev`, imported under another name."""
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:src/facecast/lipsync/inner_mouth.py"],
                          check=True, capture_output=True, text=True).stdout
    text = text.replace("from facecast.warp import", "from facecast.face.warp import")  # moved since
    path = Path(tempfile.mkdtemp()) / "inner_mouth_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("inner_mouth_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def mouth_row(avatar, painter=None) -> list[np.ndarray]:
    """Mouth crops (TILE x TILE*0.6) at OPENINGS, painted by `painter` (an inner_mouth module) or the current one."""
    saved = classic.paint_mouth, classic.MouthColors
    if painter is not None:
        classic.paint_mouth, classic.MouthColors = painter.paint_mouth, painter.MouthColors
    try:
        backend = ClassicBackend()
        rows = np.array([[o, 0.0, 0.0] for o in OPENINGS], np.float32)
        frames = backend.render(avatar, rows, np.zeros(len(rows), int))
    finally:
        classic.paint_mouth, classic.MouthColors = saved
    lm = avatar.landmarks[0][:, :2]
    cx, cy = lm[[13, 14]].mean(0)
    half = 0.5 * np.linalg.norm(lm[33] - lm[263])  # half the outer eye-corner distance
    x0, x1 = int(cx - 1.1 * half), int(cx + 1.1 * half)
    y0, y1 = int(cy - 0.45 * half), int(cy + 0.9 * half)
    h = int(round(TILE * (y1 - y0) / (x1 - x0)))
    return [cv2.resize(f[y0:y1, x0:x1], (TILE, h), interpolation=cv2.INTER_AREA) for f in frames]


class PaintedOnly:
    """The current painter, told that the source shows no teeth of its own (how a
    closed-mouth portrait is painted)."""

    from facecast.face.inner_mouth import paint_mouth

    paint_mouth = staticmethod(paint_mouth)

    class MouthColors:
        @staticmethod
        def sample(frame, landmarks):
            from dataclasses import replace

            from facecast.face.inner_mouth import MouthColors

            colors = MouthColors.sample(frame, landmarks)
            return replace(colors, own_teeth=0.0)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/mouth.png"))
    parser.add_argument("--before", default="7a85a28", help="git revision of the 'before' inner mouth")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = cv2.resize(cv2.imread(str(demo_portrait())), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        path = Path(tmp) / "astronaut_1024.png"
        cv2.imwrite(str(path), big)
        avatar = prepare(path, PrepareSettings(max_long_side=SIZE))
    before = mouth_row(avatar, old_inner_mouth(args.before))
    after = mouth_row(avatar)
    painted = mouth_row(avatar, PaintedOnly)
    rows = [np.hstack([label(t, f"before, open {o:g}") for t, o in zip(before, OPENINGS)]),
            np.hstack([label(t, f"after, open {o:g}") for t, o in zip(after, OPENINGS)]),
            np.hstack([label(t, f"after, all painted, open {o:g}") for t, o in zip(painted, OPENINGS)])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
