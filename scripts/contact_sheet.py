"""Make docs/demo.png: a contact sheet of frames from the offline demo (the public-domain
astronaut portrait from scikit-image, speaking synthesized text). Only this public-domain
avatar is ever published; never make sheets of the test media in ../shared/data.

Run: .venv/bin/python scripts/contact_sheet.py [--out docs/demo.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from facecast.avatar.prepare import prepare
from facecast.cli import DEMO_TEXT
from facecast.demo import demo_portrait
from facecast.engine import render_to_file, speech_from_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    parser.add_argument("--tiles", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = render_to_file(prepare(demo_portrait()), speech_from_text(DEMO_TEXT), Path(tmp) / "demo.mp4")
        with av.open(str(video)) as container:
            frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    picks = np.linspace(len(frames) * 0.1, len(frames) * 0.9, args.tiles).astype(int)
    tiles = []
    for i in picks:
        tile = cv2.resize(frames[i][40:360, 100:420], (240, 240), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"{i / 25:.2f}s", (6, 232), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = [np.hstack(tiles[r: r + 4]) for r in range(0, len(tiles), 4)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
