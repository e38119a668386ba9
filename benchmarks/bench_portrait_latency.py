"""Live-portrait latency on this machine: one WebSocket client sends camera frames at a steady rate
to a real `facecast serve` (child process) and the server's own telemetry gives the per-loop
(receive -> send) and per-stage latency; the client counts the frames delivered per second.

The client sends 640x480 JPEG frames (q80, like the web page) made from the talking clips, at
--fps without waiting for answers, for --seconds; answers are read on another thread.

usage: python benchmarks/bench_portrait_latency.py [--fps 30] [--seconds 30] [--avatar default|FILE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import httpx
from websockets.sync.client import connect

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAMERA = (640, 480)  # px: what the page sends


def camera_frames(limit_per_clip: int = 150) -> list[bytes]:
    """Talking-clip frames as a webcam would show them: 4:3, 640x480, JPEG q80."""
    out = []
    for clip in sorted((DATA / "talking").glob("*.mp4")):
        with av.open(str(clip)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                img = frame.to_ndarray(format="bgr24")
                h, w = img.shape[:2]
                crop = img[:, (w - h * 4 // 3) // 2:][:, : h * 4 // 3] if w >= h * 4 // 3 else img
                padded = cv2.copyMakeBorder(img, 0, 0, h // 6, h // 6, cv2.BORDER_REPLICATE) if crop is img else crop
                small = cv2.resize(padded, CAMERA, interpolation=cv2.INTER_AREA)
                out.append(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
                if i + 1 >= limit_per_clip:
                    break
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def upload(server, path: Path) -> str:
    r = httpx.post(server.url + "/avatars", files={"file": (path.name, path.read_bytes())}, timeout=300)
    r.raise_for_status()
    return r.json()["id"]


def run_client(server, frames: list[bytes], fps: float, seconds: float, avatar: str | None) -> dict:
    """Send frames at `fps` for `seconds`; returns client-side counts and delivered frames/s."""
    url = server.url.replace("http", "ws") + "/ws/live" + (f"?avatar={avatar}" if avatar else "")
    received: list[float] = []
    messages: list[dict] = []
    with connect(url, max_size=2 ** 24, open_timeout=60) as ws:
        while json.loads(ws.recv(timeout=120))["type"] != "ready":
            pass
        reader = threading.Thread(target=_read, args=(ws, received, messages), daemon=True)
        reader.start()
        start = time.perf_counter()
        sent = 0
        while time.perf_counter() - start < seconds:
            ws.send(frames[sent % len(frames)])
            sent += 1
            time.sleep(max(0.0, start + sent / fps - time.perf_counter()))
        time.sleep(0.5)  # the last answers
        session = httpx.get(server.url + "/live/stats", timeout=10).json()["sessions"][0]  # still connected
    span = (received[-1] - received[0]) if len(received) > 1 else 1.0
    return {"sent_fps": sent / seconds, "received": len(received), "delivered_fps": (len(received) - 1) / span,
            "session": session, "warnings": [m for m in messages if m.get("type") in ("warning", "error")]}


def _read(ws, received: list, messages: list) -> None:
    try:
        while True:
            item = ws.recv()
            if isinstance(item, bytes):
                received.append(time.perf_counter())
            else:
                messages.append(json.loads(item))
    except Exception:  # noqa: BLE001 - the connection closed: the run is over
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second the client sends (default 30)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of a run (default 30)")
    parser.add_argument("--avatar", action="append", help="portrait file to upload and animate, or 'default' "
                        "for the server's default avatar, the 512x512 astronaut (the default); repeatable")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: ServerProcess
    from support.server_process import ServerProcess

    frames = camera_frames()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    print("| avatar (512 px long side) | sent fps | delivered fps | loop p50 / p95 / p99 ms | decode p95 | "
          "landmarks p95 | warp p95 | encode p95 | dropped in |")
    print("|---|---|---|---|---|---|---|---|---|")
    with ServerProcess() as server:
        for avatar_file in (args.avatar or ["default"]):
            own = avatar_file not in ("default", "")
            avatar = upload(server, Path(avatar_file)) if own else None
            client = run_client(server, frames, args.fps, args.seconds, avatar)
            print(_row(Path(avatar_file).name if own else "default (astronaut)", client), flush=True)
            if client["warnings"]:
                print("  messages:", client["warnings"][:3])
            time.sleep(1.0)


def _row(name: str, client: dict) -> str:
    s = client["session"]
    loop, st = s["loop_ms"], s["stages_ms"]
    return (f"| {name} | {client['sent_fps']:.1f} | {client['delivered_fps']:.1f} (server {s['delivered_fps']}) | "
            f"{loop['p50']} / {loop['p95']} / {loop['p99']} (n={loop['count']}) | {st['decode']['p95']} | "
            f"{st['landmarks']['p95']} | {st['warp']['p95']} | {st['encode']['p95']} | {s['dropped_in']} |")


if __name__ == "__main__":
    main()
