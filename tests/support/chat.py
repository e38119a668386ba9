"""`facecast chat` driven by headless Chromium with a fake microphone, for tests and benchmarks.

    wav = write_wav(tmp / "q.wav", ("How are you doing today?", 60.0))
    with webrtc_namespace(), chat_process(log) as url, open_chat(url, wav) as page:
        page.evaluate("chat.messages")

Start both inside `support.netns.webrtc_namespace()` (see support.chromium). Chromium loops the
fake microphone's file from the moment the page opens the microphone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

from support.chromium import checked_page, chromium_browser
from support.server_process import free_port
from support.waiting import within

RATE = 16_000  # Hz of the WAVs
LEAD_S = 4.0  # s of silence before the first speech (the call connects meanwhile)
READY_TIMEOUT_S = 240.0  # s for `facecast chat` to import pipecat and prepare the avatar
MOUTH = (185, 120, 75, 50)  # x, y, w, h of the default avatar's mouth (astronaut.jpg, 512x512)

# Before the call: getUserMedia gives the page the fake microphone mixed (WebAudio) with what
# mixer.play(base64 WAV) plays, so a test can start speech at a moment of its choosing.
MIXER_JS = r"""
window.mixer = (() => {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  let context = null, out = null;
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const mic = await original(constraints);
    context = new AudioContext({sampleRate: 48000});
    out = context.createMediaStreamDestination();
    context.createMediaStreamSource(mic).connect(out);
    await context.resume();  // a context made outside a gesture may start suspended (silent)
    return out.stream;
  };
  async function play(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const source = context.createBufferSource();
    source.buffer = await context.decodeAudioData(bytes.buffer);
    source.connect(out);
    source.start();
    return Date.now();
  }
  return {play};
})();
"""


def write_wav(path: Path, *parts: tuple[str, float], lead_s: float = LEAD_S) -> Path:
    """A 16-bit mono WAV: lead_s of silence, then for each (text, silence_after_s) espeak-ng (en-us,
    150 wpm) saying text ("" for none) and that much silence."""
    from audio_testdata import fresh_espeak

    from facecast.audio.resampling import resample

    pieces = [np.zeros(int(lead_s * RATE), np.float32)]
    for text, silence_s in parts:
        if text:
            pieces.append(0.8 * resample(*fresh_espeak(text, voice="en-us", rate_wpm=150), RATE))
        pieces.append(np.zeros(int(silence_s * RATE), np.float32))
    pcm = (np.clip(np.concatenate(pieces), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


@contextmanager
def chat_process(log: Path, *args: str) -> Iterator[str]:
    """`facecast chat` on a free port of 127.0.0.1 (in the caller's namespace), ready to answer;
    yields its URL. args: more `facecast chat` options (e.g. "--no-avatar")."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    code = "import sys; from facecast.cli import main; sys.exit(main(sys.argv[1:]))"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, "chat", "--port", str(port), "--log-level", "warning",
                                 *args], stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"facecast chat exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                return httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert within(READY_TIMEOUT_S, ready), log.read_text()[-2000:]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def open_chat(url: str, wav: Path, timeout_s: float = 90.0, before_call: str | None = None):
    """A page at /chat in a Chromium whose microphone plays `wav`, the call started (Talk clicked),
    the mouth region set to MOUTH; `before_call`: script run before the click. Raises
    AssertionError at exit if the page threw an error."""
    with chromium_browser(fake_audio=wav) as browser, checked_page(browser, url + "/chat", timeout_s) as page:
        page.evaluate(f"chat.setMouth({', '.join(map(str, MOUTH))})")
        if before_call:
            page.evaluate(before_call)
        page.click("#talk")
        yield page


