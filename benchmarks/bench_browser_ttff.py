"""Time to the first frame a person sees: click on "Speak" in the web client -> first video frame
presented by headless Chromium (requestVideoFrameCallback), through Media Source Extensions.

The server benchmark (bench_server.py) stops its clock when a client has received the first
decodable frame; this one also counts the page's own work: POST /sessions, GET /stream, the
MediaSource set-up, the first appendBuffer, decoding and presentation. A real `facecast serve`
(CPU default backend, the default avatar) in a child process; Debian's /usr/bin/chromium driven
by Playwright. The first request of a fresh page is reported on its own (decoder start-up).

usage: python benchmarks/bench_browser_ttff.py [--requests 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import pct  # noqa: E402  (the server benchmark's percentile)
from support.server_process import ServerProcess  # noqa: E402  (tests/support, on the path via bench_server)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]
# Marks (ms, performance.now) of the page's steps after each click on #speak.
TIMELINE = """
window.__marks = {};
const mark = (k) => { if (!(k in window.__marks)) window.__marks[k] = performance.now(); };
const append = SourceBuffer.prototype.appendBuffer;
SourceBuffer.prototype.appendBuffer = function (b) { mark('first append'); return append.call(this, b); };
const fetchOriginal = window.fetch;
window.fetch = async function (url, options) {
  const response = await fetchOriginal.call(this, url, options);
  mark(String(url).includes('/stream/') ? 'stream headers' : 'session created');
  return response;
};
document.addEventListener('click', () => { window.__marks = {}; mark('click'); }, true);
"""


def measure(requests: int) -> list[dict]:
    """Per request: ms from the click to each page step and to the first presented frame."""
    from playwright.sync_api import sync_playwright

    rows = []
    with ServerProcess() as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.add_init_script(TIMELINE)
        page.goto(server.url + "/")
        page.wait_for_function("document.querySelector('#avatar').options.length > 0")
        for i in range(requests + 1):
            page.fill("#text", f"Hello, this is request number {i}. The avatar talks now.")
            page.click("#speak")
            page.wait_for_function("window.facecast.firstFrameMs !== null", timeout=15_000)
            marks = page.evaluate("window.__marks")
            row = {k: v - marks["click"] for k, v in marks.items() if k != "click"}
            row["first frame"] = page.evaluate("window.facecast.firstFrameMs")
            rows.append(row)
            page.wait_for_function("document.querySelector('#video').currentTime > 0.5", timeout=15_000)
        browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="timed requests after the first (>= 20)")
    args = parser.parse_args()
    rows = measure(max(args.requests, 20))
    cold, warm = rows[0], rows[1:]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"\n| step (ms after the click) | first request | p50 (n = {len(warm)}) | p95 |")
    print("|---|---|---|---|")
    for step in ("session created", "stream headers", "first append", "first frame"):
        values = [r[step] for r in warm if step in r]
        print(f"| {step} | {cold.get(step, float('nan')):.0f} | {pct(values, 50):.0f} | {pct(values, 95):.0f} |")
    p95 = pct([r["first frame"] for r in warm], 95)
    print(f"\nfirst frame presented, p95 {p95:.0f} ms (bar for the server's TTFF: 300 ms)")


if __name__ == "__main__":
    main()
