"""Peak resident memory of facecast's main paths at 1x, 5x and 20x input length.

Each measurement runs in a fresh interpreter with its own empty avatar cache and reads that
process's VmHWM from /proc/<pid>/status (not ru_maxrss: Linux keeps a parent's ru_maxrss
across exec). Inputs are made here: a synthetic speech-like WAV (noise bursts at syllable
rate), text made of one repeated sentence, a panning video of a test portrait (video
avatar), a portrait sliding over a textured background (composite and plate).

    python benchmarks/bench_memory.py                 # every path, 1x 5x 20x (about 10 min, 2 cores)
    python benchmarks/bench_memory.py --paths composite,server --scales 1,20

Paths and what grows with the scale:
  render       image avatar, --audio of 3 s x scale
  text         image avatar, --text of 120 characters x scale
  video-avatar video avatar of 1.5 s x scale (512x512 or --avatar-side, prepared in the run), 3 s of audio
  composite    `video composite` of a 640x640 clip of 2 s x scale over an image
  plate        `video plate` of the same clips
  server       `facecast serve` on 127.0.0.1: POST /avatars with the video avatar of 1.5 s x
               scale, then POST /generate (3 s audio); the server process's peak
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # test support: synthetic media (write_wav)
PORTRAIT = REPO.parent / "shared" / "data" / "portraits" / "man_webcam_offcenter_01.jpg"
PERSON = REPO.parent / "shared" / "data" / "portraits" / "man_frontal_mouth_open_01.jpg"
SENTENCE = "The quick brown fox jumps over the lazy dog while the weather report says rain again tomorrow. "
PATHS = ("render", "text", "video-avatar", "composite", "plate", "server")

CHILD = """
import json, sys
from facecast.cli import main
code = main(json.loads(sys.argv[1]))
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"code": code, "hwm_kb": int(hwm.split()[1])}))
"""


# -- inputs ---------------------------------------------------------------------------------
def speech_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    """Noise bursts at 4 Hz (syllable-like loudness), mono 16-bit."""
    from support.media import write_wav

    t = np.arange(int(seconds * rate)) / rate
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return write_wav(path, np.random.default_rng(0).normal(0, 0.3, t.size) * env * 0.5, rate)


def write_video(path: Path, frames, size: tuple[int, int], fps: int = 25) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    return path


def face_clip(path: Path, seconds: float, side: int = 512) -> Path:
    """A portrait seen by a camera panning slowly back and forth."""
    import cv2

    image = cv2.resize(cv2.imread(str(PORTRAIT)), (side + 64, side + 64))
    n = int(seconds * 25)

    def frames():
        for k in range(n):
            dx = int(32 + 30 * np.sin(k / 20))
            yield np.ascontiguousarray(image[32:32 + side, dx:dx + side])

    return write_video(path, frames(), (side, side))


def person_clip(path: Path, seconds: float, side: int = 640) -> Path:
    """A portrait (the person) sliding over a fixed textured background."""
    import cv2

    rng = np.random.default_rng(1)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (side, side, 3), np.uint8), (0, 0), 4)
    person = cv2.resize(cv2.imread(str(PERSON)), (side // 2, int(side * 0.8)))
    n = int(seconds * 25)

    def frames():
        for k in range(n):
            x = int(side / 4 + side / 6 * np.sin(k / 25))
            frame = bg.copy()
            frame[side - person.shape[0]:, x:x + person.shape[1]] = person
            yield frame

    return write_video(path, frames(), (side, side))


# -- measurements -----------------------------------------------------------------------------
def child_env(cache: Path) -> dict:
    env = dict(os.environ, FACECAST_CACHE_DIR=str(cache), PYTHONWARNINGS="ignore")
    env.setdefault("PYTHONPATH", str(REPO / "src"))
    return env


def run_cli(argv: list[str], work: Path) -> float:
    """Peak RSS (MB) of `facecast <argv>` in a fresh interpreter with an empty cache."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv)], capture_output=True, text=True,
                          env=child_env(cache), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"facecast {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["hwm_kb"] / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            head = f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n' \
                   "Content-Type: application/octet-stream\r\n\r\n"
            body = value[1]
        else:
            head, body = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + body + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, fields: dict, timeout: float = 1200) -> bytes:
    body, ctype = multipart(fields)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def run_server(avatar: Path, audio: Path, work: Path) -> tuple[float, float]:
    """(peak RSS MB after start, after the upload + /generate) of a fresh server."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    port = free_port()
    env = child_env(cache)
    env.pop("FACECAST_API_TOKEN", None)
    env["FACECAST_SERVER_DIR"] = str(cache / "server")
    proc = subprocess.Popen([sys.executable, "-m", "facecast.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stderr.read()[-2000:]}") from None
                time.sleep(0.5)
        started = hwm_of(proc.pid)
        record = json.loads(post(base + "/avatars", {"file": (avatar.name, avatar.read_bytes())}))
        mp4 = post(base + "/generate", {"avatar_id": record["id"], "audio": (audio.name, audio.read_bytes())})
        assert mp4[4:8] == b"ftyp", "no MP4 from /generate"
        return started, hwm_of(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def hwm_of(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(l for l in fh if l.startswith("VmHWM:")).split()[1]) / 1024


AVATAR_SIDE = 512  # px: video avatar clips (--avatar-side)


def measure(path: str, scale: int, work: Path) -> tuple[str, float, str]:
    """(input description, peak MB, note) of one path at one scale."""
    audio3 = work / "speech_3s.wav"
    if not audio3.exists():
        speech_wav(audio3, 3.0)
    photo = work / "photo.png"
    if not photo.exists():
        import cv2

        cv2.imwrite(str(photo), cv2.resize(cv2.imread(str(PORTRAIT)), (512, 512)))
    out = work / f"{path}-{scale}.mp4"
    if path == "render":
        audio = speech_wav(work / f"speech_{scale}.wav", 3.0 * scale)
        return f"{3 * scale} s audio", run_cli(["render", "-a", str(photo), "--audio", str(audio), "-o", str(out)],
                                               work), ""
    if path == "text":
        text = (SENTENCE * (scale + 1))[: 120 * scale]
        return f"{len(text)} chars", run_cli(["render", "-a", str(photo), "--text", text, "-o", str(out)], work), ""
    if path in ("video-avatar", "server"):
        side = AVATAR_SIDE
        clip = work / f"face_{scale}_{side}.mp4"
        if not clip.exists():
            face_clip(clip, 1.5 * scale, side)
        if path == "server":
            started, peak = run_server(clip, audio3, work)
            return f"{1.5 * scale:g} s {side}x{side} upload", peak, f"{started:.0f} MB after start"
        return f"{1.5 * scale:g} s {side}x{side} avatar", run_cli(["render", "-a", str(clip), "--audio", str(audio3),
                                                              "-o", str(out)], work), ""
    clip = work / f"person_{scale}.mp4"
    if not clip.exists():
        person_clip(clip, 2.0 * scale)
    if path == "composite":
        bg = work / "bg.png"
        if not bg.exists():
            import cv2

            cv2.imwrite(str(bg), cv2.GaussianBlur(np.random.default_rng(2).integers(0, 255, (480, 640, 3), np.uint8),
                                                  (0, 0), 2))
        return f"{2 * scale} s 640x640", run_cli(["video", "composite", str(clip), "--background", str(bg),
                                                  "-o", str(out), "--quiet"], work), ""
    if path == "plate":
        return f"{2 * scale} s 640x640", run_cli(["video", "plate", str(clip), "-o", str(work / f"plate-{scale}.png"),
                                                  "--quiet"], work), ""
    raise ValueError(f"unknown path {path!r}; choose from {', '.join(PATHS)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, from {', '.join(PATHS)}")
    parser.add_argument("--scales", default="1,5,20", help="input length multiples (default 1,5,20)")
    parser.add_argument("--work", type=Path, default=None, help="folder for inputs and outputs (default: temporary)")
    parser.add_argument("--avatar-side", type=int, default=512, help="video avatar size in px (default 512)")
    args = parser.parse_args()
    globals()["AVATAR_SIDE"] = args.avatar_side
    scales = [int(s) for s in args.scales.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="facecast-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"peak resident memory (VmHWM, MB), fresh process per cell; inputs in {work}")
    header = f"| {'path':<13} | " + " | ".join(f"{f'{s}x':>28}" for s in scales) + f" | {'max/min':>7} | note"
    print(header)
    print("|" + "---|" * (len(scales) + 3))
    for path in args.paths.split(","):
        cells, peaks, notes = [], [], []
        for scale in scales:
            start = time.perf_counter()
            what, peak, note = measure(path, scale, work)
            peaks.append(peak)
            cells.append(f"{peak:6.0f} ({what})")
            notes.append(f"{scale}x {time.perf_counter() - start:.0f} s" + (f", {note}" if note else ""))
        print(f"| {path:<13} | " + " | ".join(f"{c:>28}" for c in cells)
              + f" | {max(peaks) / min(peaks):7.2f} | {'; '.join(notes)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
