"""WebRTC as a viewer sees it: headless Chromium receives a live session over real WebRTC and
measures, on presented frames (requestVideoFrameCallback) and on the played audio (an AudioWorklet
on the received track):

1. speech to screen: the page sends a live PCM chunk (WebSocket) after >= 1.5 s of idle -> first
   presented frame whose mouth region differs from idle; bar p95 <= 250 ms;
2. interrupt to closed mouth: {"type": "interrupt"} sent while the mouth shows open -> first
   presented frame with the mouth back to idle (near the idle the face settles into, and still
   from there on); bar p95 <= 200 ms;
3. A/V sync: (a) getStats' estimatedPlayoutTimestamp, video - audio, once a second over the whole
   live session; (b) onsets: mouth-opening frame - audio onset heard by the page, minus the
   engine's own offset (the same input through its live path, rendered here); at the start and
   after --minutes of talking and idling; bar |offset| <= 40 ms;
4. time to first frame of a new WebRTC connection (offer POSTed -> first frame presented), on one
   live session and with a new live session each time; bar p95 <= 500 ms;
5. viewers: N peers of one live session in one page, each >= 24 frames/s over a window; bar >= 4;
6. server CPU with 0, 1, 2, 4 peers, H.264 and VP8 (the page forces VP8 with setCodecPreferences),
   and the encoders' ms per frame.

A real `facecast serve` (CPU default backend, the default avatar, 512x512 at 25 frames/s) and
Debian's Chromium, both inside the private network namespace of tests/support/netns.py (this host
is loopback-only; see docs/webrtc.md). The mouth box comes from the default avatar's landmarks;
"differs from idle" is the box's mean luma moving away from its median over the idle frames just
before (calibrated offline on the engine's own render: idle stays within about 1.5 luma units).
The browser decodes every stream on the same cores as the server: numbers are for both together.

usage: python benchmarks/bench_webrtc.py [--minutes 10] [--quick] [--json /tmp/bench_webrtc.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # test support: ServerProcess, the namespace, Chromium
from support.chromium import chromium_browser, descendants  # noqa: E402
from support.netns import webrtc_namespace  # noqa: E402
from support.server_process import ServerProcess  # noqa: E402

DATA = REPO.parent / "shared" / "data"
LONG_SPEECH = DATA / "speech" / "en_radio_address_02_8s.wav"  # continuous speech: interrupts, the long run
UTTERANCE_TEXT = "Ah, hello there."  # espeak; an open vowel first, so the mouth opens at the sound's onset
RATE = 16000  # Hz of the PCM the page sends
FPS = 25
OPEN_LUMA = 3.0  # mouth box mean luma this far from idle: the mouth shows speech (idle drifts < 1.5;
# a mouth just starting to open moves it by about 2, which encoding can push either side of 2.0:
# 3.0 makes the browser and the engine's own render agree on which frame is the first open one)
SETTLED_LUMA = 2.0  # closed after an interrupt: within this of the idle the face settles into ...
STILL_LUMA = 0.3  # ... and from there changing by less than this per frame (speech moves it by 1-10,
STILL_FRAMES = 4  # idle motion by about 0.1) for the next STILL_FRAMES frames
STRONG_LUMA = 4.0  # an interrupt is sent once a presented frame is at least this open
AUDIO_RMS = 0.02  # a 128-sample block above this RMS after >= 100 ms of quiet: an audio onset
BARS = {"speech": 250, "interrupt": 200, "av": 40, "ttff": 500, "viewers": 4, "fps": 24}

PAGE_JS = r"""
window.fc = (() => {
  const S = {peers: [], pcm: {}, box: null, ws: null, stats: [], onsets: [], audio: null};
  const b64pcm = (s) => { const b = atob(s); const a = new Uint8Array(b.length);
    for (let i = 0; i < b.length; i++) a[i] = b.charCodeAt(i); return new Int16Array(a.buffer); };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function watch(peer) {  // every presented frame: its time; the mouth box's mean luma when analysed
    const video = peer.video;
    const canvas = document.createElement('canvas');
    let ctx = null;
    const onFrame = (now, meta) => {
      if (peer.closed) return;
      const t = meta.expectedDisplayTime || meta.presentationTime || now;
      peer.count++;
      if (peer.first === null) peer.first = t;
      if (peer.analyse && S.box) {
        const [x, y, w, h] = S.box;
        if (!ctx) { canvas.width = w; canvas.height = h; ctx = canvas.getContext('2d', {willReadFrequently: true}); }
        ctx.drawImage(video, x, y, w, h, 0, 0, w, h);
        const px = ctx.getImageData(0, 0, w, h).data;
        let sum = 0;
        for (let i = 0; i < px.length; i += 4) sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
        peer.frames.push([t, sum / (w * h), meta.presentationTime, meta.width]);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  async function listen(peer, track) {  // audio onsets as played, on performance.now()
    const ctx = new AudioContext();
    const code = `class Onset extends AudioWorkletProcessor {
      constructor() { super(); this.quiet = 1000; }
      process(inputs) {
        const ch = inputs[0] && inputs[0][0];
        if (ch) { let s = 0; for (let i = 0; i < ch.length; i++) s += ch[i] * ch[i];
          const rms = Math.sqrt(s / ch.length);
          if (rms > __AUDIO_RMS__) { if (this.quiet >= 38) this.port.postMessage({t: currentTime, rms}); this.quiet = 0; }
          else this.quiet++; }
        return true; } }
      registerProcessor('onset', Onset);`;
    await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([code], {type: 'application/javascript'})));
    const node = new AudioWorkletNode(ctx, 'onset');
    node.port.onmessage = (e) => {
      const ts = ctx.getOutputTimestamp();
      S.onsets.push({t: ts.performanceTime + (e.data.t - ts.contextTime) * 1000, rms: e.data.rms,
                     base: ctx.baseLatency, out: ctx.outputLatency});
    };
    ctx.createMediaStreamSource(new MediaStream([track])).connect(node).connect(ctx.destination);
    if (ctx.state !== 'running') await ctx.resume();
    S.audio = ctx;
  }

  async function connect(sid, opts = {}) {
    const pc = new RTCPeerConnection({iceServers: []});
    const vt = pc.addTransceiver('video', {direction: 'recvonly'});
    if (opts.codec) {
      const want = 'video/' + opts.codec;
      vt.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter(
        (c) => c.mimeType.toLowerCase() === want.toLowerCase()));
    }
    if (opts.audio !== false) pc.addTransceiver('audio', {direction: 'recvonly'});
    const video = document.createElement('video');
    video.muted = true; video.autoplay = true; video.playsInline = true; video.width = 96;
    document.body.appendChild(video);
    const peer = {pc, video, count: 0, first: null, frames: [], analyse: !!opts.analyse, closed: false};
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      video.srcObject = stream;
      if (e.track.kind === 'audio' && opts.listen) listen(peer, e.track);
    };
    const gathered = new Promise((resolve) => {
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); }; });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered;
    watch(peer);
    peer.offered = performance.now();
    const r = await fetch(`/sessions/${sid}/webrtc`, {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({sdp: pc.localDescription.sdp, type: 'offer'})});
    if (r.status !== 201) throw new Error(`offer: ${r.status} ${await r.text()}`);
    const answer = await r.json();
    peer.answered = performance.now();
    peer.location = answer.location; peer.id = answer.peer_id;
    await pc.setRemoteDescription({type: 'answer', sdp: answer.sdp});
    S.peers.push(peer);
    return S.peers.length - 1;
  }

  async function firstFrame(i, timeoutMs) {
    const p = S.peers[i]; const end = performance.now() + timeoutMs;
    while (p.first === null) { if (performance.now() > end) throw new Error('no frame in ' + timeoutMs + ' ms'); await sleep(5); }
    return {offered: p.offered, answered: p.answered, first: p.first};
  }

  async function hangUp(i) {
    const p = S.peers[i]; p.closed = true; p.pc.close(); p.video.srcObject = null; p.video.remove();
    await fetch(p.location, {method: 'DELETE'});
  }

  async function openAudio(sid) {
    if (S.ws) S.ws.close();
    const ws = new WebSocket(`ws://${location.host}/ws/sessions/${sid}/audio?sample_rate=16000`);
    ws.binaryType = 'arraybuffer';
    await new Promise((resolve, reject) => { ws.onmessage = (e) => { const m = JSON.parse(e.data);
      m.type === 'ready' ? resolve() : reject(new Error(e.data)); }; ws.onerror = reject; });
    ws.onmessage = () => {};
    S.ws = ws;
  }

  // Send pcm[name][from .. from+ms] in real time (20 ms chunks). interrupt: after minMs, once the
  // analysed peer's latest presented frame is `strong` away from `ref` (or at the end), send
  // {"type": "interrupt"} instead of the rest; else {"type": "end"} after the last chunk.
  async function speak(name, from, ms, opts = {}) {
    const pcm = S.pcm[name], chunk = 320, n = Math.min(Math.floor(ms * 16), pcm.length - from);
    const watcher = S.peers[opts.peer || 0];
    const t0 = performance.now();
    let sent = 0, tInt = null;
    for (let k = 0; sent < n; k++) {
      const part = pcm.slice(from + sent, from + Math.min(n, sent + chunk));
      S.ws.send(part.buffer);
      sent += part.length;
      if (opts.gen !== undefined && window.__talk !== opts.gen) break;
      if (opts.interrupt && performance.now() - t0 >= opts.minMs) {
        const f = watcher.frames[watcher.frames.length - 1];
        if (f && f[0] > t0 && Math.abs(f[1] - opts.ref) >= opts.strong) { tInt = performance.now();
          S.ws.send(JSON.stringify({type: 'interrupt'})); break; }
      }
      const wait = t0 + (k + 1) * 20 - performance.now();
      if (wait > 0) await sleep(wait);
    }
    if (tInt === null) {
      if (opts.interrupt) { tInt = performance.now(); S.ws.send(JSON.stringify({type: 'interrupt'})); }
      else S.ws.send(JSON.stringify({type: 'end'}));
    }
    return {t0, tInt, sentMs: sent / 16};
  }

  async function sampleStats(i) {  // inbound-rtp audio/video estimatedPlayoutTimestamp, together
    const p = S.peers[i]; const now = performance.now();
    const rows = [...(await p.pc.getStats()).values()].filter((s) => s.type === 'inbound-rtp');
    const a = rows.find((s) => s.kind === 'audio'), v = rows.find((s) => s.kind === 'video');
    S.stats.push({t: now, audio: a ? a.estimatedPlayoutTimestamp : null, video: v ? v.estimatedPlayoutTimestamp : null,
                  jbAudio: a && a.jitterBufferEmittedCount ? 1000 * a.jitterBufferDelay / a.jitterBufferEmittedCount : null,
                  jbVideo: v && v.jitterBufferEmittedCount ? 1000 * v.jitterBufferDelay / v.jitterBufferEmittedCount : null});
  }
  function startStats(i) { S.statsTimer = setInterval(() => sampleStats(i), 1000); }
  function stopStats() { clearInterval(S.statsTimer); }

  async function videoStats() {  // per live peer: frames presented, decoded, dropped; codec
    const out = [];
    for (const p of S.peers) {
      if (p.closed) continue;
      const all = [...(await p.pc.getStats()).values()];
      const v = all.find((s) => s.type === 'inbound-rtp' && s.kind === 'video') || {};
      const codec = all.find((s) => s.id === v.codecId) || {};
      out.push({count: p.count, decoded: v.framesDecoded || 0, dropped: v.framesDropped || 0,
                fps: v.framesPerSecond || 0, codec: codec.mimeType || null,
                decodeMs: v.framesDecoded ? 1000 * v.totalDecodeTime / v.framesDecoded : null});
    }
    return out;
  }

  return {S, b64pcm, connect, firstFrame, hangUp, openAudio, speak, startStats, stopStats, videoStats,
          frames: (i, from, to) => S.peers[i].frames.filter((f) => f[0] >= from && f[0] <= to),
          onsets: (from, to) => S.onsets.filter((o) => o.t >= from && o.t <= to),
          audioState: () => S.audio ? S.audio.state : null,
          setPcm: (name, b64) => { S.pcm[name] = b64pcm(b64); return S.pcm[name].length; },
          setBox: (box) => { S.box = box; },
          async newSession() { const f = new FormData(); f.append('live', 'true');
            const r = await fetch('/sessions', {method: 'POST', body: f}); return (await r.json()).id; },
          async deleteSession(sid) { await fetch(`/sessions/${sid}`, {method: 'DELETE'}); }};
})();
"""


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def machine() -> dict:
    cpu = platform.processor() or "cpu"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


# -- inputs and the engine's own offset (offline) -----------------------------------------------

def utterance_pcm() -> np.ndarray:
    """The utterance (espeak), 16 kHz float, cut to its first audible sample."""
    from facecast.audio.resampling import resample
    from facecast.engine import speech_from_text

    speech = speech_from_text(UTTERANCE_TEXT)
    x = resample(speech.audio.samples, speech.audio.sample_rate, RATE).astype(np.float32)
    return x[int(np.argmax(np.abs(x) > 0.02)):]


def long_pcm() -> np.ndarray:
    from facecast.audio.decode import load_audio
    from facecast.audio.resampling import resample

    audio = load_audio(LONG_SPEECH)
    return resample(audio.samples, audio.sample_rate, RATE).astype(np.float32)


def to_b64(x: np.ndarray) -> str:
    return base64.b64encode((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()).decode()


def mouth_box() -> tuple[list[int], object]:
    """[x, y, w, h] around the default avatar's outer lips (+ a margin), and the avatar."""
    from facecast.avatar import topology as topo
    from facecast.avatar.prepare import prepare
    from facecast.demo import demo_portrait

    avatar = prepare(demo_portrait())
    lips = avatar.landmarks[0][topo.LIPS_OUTER, :2]
    (x0, y0), (x1, y1) = np.floor(lips.min(0)) - 6, np.ceil(lips.max(0)) + 10
    return [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], avatar


def box_luma(frame_rgb: np.ndarray, box: list[int]) -> float:
    x, y, w, h = box
    px = frame_rgb[y:y + h, x:x + w].astype(np.float64)
    return float((0.299 * px[..., 0] + 0.587 * px[..., 1] + 0.114 * px[..., 2]).mean())


def engine_offset(avatar, box: list[int], utterance: np.ndarray) -> tuple[dict, np.ndarray]:
    """The engine's own offset between the sound's onset and the mouth's opening on its live path:
    2 s of idle, then the utterance pushed in 20 ms chunks through the backend's live feature stream
    (a live utterance starts at its first chunk, as in a session; the stream has heard the utterance
    once before, as the session's has after its first), the frames rendered by the engine and
    measured with the same detectors as in the browser. Also returns the frames (N, H, W, 3) BGR."""
    from facecast.engine import render_batch
    from facecast.lipsync.base import get_backend

    backend, lead = get_backend(), 2.0
    stream = backend.stream_features(RATE, FPS)
    for _ in range(2):
        rows = [stream.push(utterance[i:i + 320]) for i in range(0, len(utterance), 320)] + [stream.flush()]
    features = np.concatenate([np.zeros((int(lead * FPS), rows[0].shape[1]), np.float32), *rows])
    frames = render_batch(backend, avatar, features, 0, FPS)
    luma = [box_luma(f[..., ::-1], box) for f in frames]  # BGR -> RGB
    signal = np.concatenate([np.zeros(int(lead * RATE), np.float32), utterance])
    blocks = signal[: len(signal) // 128 * 128].reshape(-1, 128)  # the worklet's detector, at 16 kHz
    audio_onset = float(np.argmax(np.sqrt((blocks ** 2).mean(1)) > AUDIO_RMS) * 128 / RATE)
    ref = float(np.median(luma[int((lead - 0.5) * FPS): int(lead * FPS)]))
    first = next(i for i in range(int(lead * FPS) - 5, len(luma)) if abs(luma[i] - ref) > OPEN_LUMA)
    return {"audio_onset_s": audio_onset, "video_onset_s": first / FPS,
            "offset_ms": (first / FPS - audio_onset) * 1000, "frame_ms": 1000 / FPS}, frames


def encoder_ms(avatar_frames: np.ndarray) -> dict:
    """ms per 512x512 frame of the server's own VideoEncoder, per codec (8-frame batches)."""
    from facecast.transports.webrtc.encoder import VideoEncoder

    out = {}
    for codec in ("h264", "vp8"):
        enc = VideoEncoder(codec, (avatar_frames.shape[2], avatar_frames.shape[1]), FPS, keyint=2 * FPS)
        enc.encode(avatar_frames[:8], 0)  # warm-up
        start, n = time.perf_counter(), 0
        for lo in range(8, len(avatar_frames) - 7, 8):
            enc.encode(avatar_frames[lo:lo + 8], lo)
            n += 8
        out[codec] = (time.perf_counter() - start) * 1000 / max(1, n)
    return out


# -- browser measures ---------------------------------------------------------------------------

def idle_ref(frames: list, t0: float, span: float = 500.0) -> float | None:
    values = [f[1] for f in frames if t0 - span <= f[0] <= t0]
    return float(np.median(values)) if len(values) >= 3 else None


def first_open(frames: list, t0: float, ref: float) -> float | None:
    return next((f[0] for f in frames if f[0] > t0 and abs(f[1] - ref) > OPEN_LUMA), None)


def first_closed(frames: list, t0: float, settled: float) -> float | None:
    """Time of the first frame after t0 near the settled idle luma and still from there on.

    "Near" is SETTLED_LUMA (not tighter: the idle face drifts by 1-2 luma units over seconds, so
    the frames right after the mouth closed need not match the median a second later); "still"
    is STILL_FRAMES frame-to-frame changes under STILL_LUMA (a mouth in speech never holds still
    that long: the smoother alone moves it by more).
    """
    after = [f for f in frames if f[0] > t0]
    for i, f in enumerate(after[:len(after) - STILL_FRAMES]):
        run = after[i:i + STILL_FRAMES + 1]
        if abs(f[1] - settled) < SETTLED_LUMA and all(abs(b[1] - a[1]) < STILL_LUMA for a, b in zip(run, run[1:])):
            return f[0]
    return None


def run_utterances(page, n: int, gap_s: float, utter_ms: float, label: str) -> list[dict]:
    """n utterances after gap_s of idle each: speech-to-screen latency and the A/V onset offset."""
    rows = []
    for _ in range(n):
        time.sleep(gap_s)
        r = page.evaluate("([ms]) => fc.speak('utterance', 0, ms)", [utter_ms])
        time.sleep(1.2)
        t0 = r["t0"]
        frames = page.evaluate("([a, b]) => fc.frames(0, a, b)", [t0 - 700, t0 + 3000])
        ref = idle_ref(frames, t0)
        row = {"phase": label, "t0": t0, "ref": ref}
        if ref is not None:
            video = first_open(frames, t0, ref)
            row["video_onset"] = video
            row["speech_to_screen_ms"] = None if video is None else video - t0
            onset = page.evaluate("([a, b]) => fc.onsets(a, b)", [t0, t0 + 1500])
            row["audio_onset"] = onset[0]["t"] if onset else None
            if video is not None and onset:
                row["av_ms"] = video - onset[0]["t"]
        rows.append(row)
    return rows


def run_interrupts(page, n: int, pcm_len: int) -> list[dict]:
    rows, rng = [], random.Random(7)
    for _ in range(n):
        time.sleep(1.6)
        now = page.evaluate("performance.now()")
        ref = idle_ref(page.evaluate("([a, b]) => fc.frames(0, a, b)", [now - 700, now]), now)
        if ref is None:
            rows.append({"error": "no idle frames"})
            continue
        start = rng.randrange(0, pcm_len - 5 * RATE)
        r = page.evaluate("([s, ref, strong]) => fc.speak('long', s, 4000, {interrupt: true, minMs: 800, ref, strong})",
                          [start, ref, STRONG_LUMA])
        time.sleep(1.6)
        t = r["tInt"]
        frames = page.evaluate("([a, b]) => fc.frames(0, a, b)", [t - 200, t + 1500])
        settled = [f[1] for f in frames if t + 900 <= f[0] <= t + 1500]
        closed = first_closed(frames, t, float(np.median(settled)) if settled else ref)
        rows.append({"tInt": t, "spoke_ms": t - r["t0"], "interrupt_to_closed_ms": None if closed is None else closed - t})
    return rows


def talk_until(page, deadline: float, pcm_len: int) -> int:
    """Talk (2-4 s of real speech, ended) and idle (2-5 s) in turn until `deadline` (monotonic)."""
    rng, turns = random.Random(11), 0
    while time.monotonic() < deadline - 10:
        ms = rng.uniform(2000, 4000)
        page.evaluate("([s, ms]) => fc.speak('long', s, ms)", [rng.randrange(0, pcm_len - 5 * RATE), ms])
        time.sleep(min(rng.uniform(2, 5), max(0.0, deadline - time.monotonic())))
        turns += 1
    return turns


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def browser_cpu_seconds() -> float:
    total = 0.0
    for pid in descendants(os.getpid()):
        try:
            if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes():
                total += cpu_seconds(pid)
        except (OSError, IndexError):
            pass
    return total


def stats(client: httpx.Client) -> dict:
    return client.get("/stats").json()


def measure(args, results: dict) -> dict:
    """Every phase, into `results` as it goes (a run that fails late keeps what it measured)."""
    q = args.quick
    n_utter = 3 if q else args.trials
    box, avatar = mouth_box()
    utter = utterance_pcm()
    speech = long_pcm()
    results.update({"machine": machine(), "quick": q, "mouth_box": box, "minutes": args.minutes})
    print(f"mouth box {box}; utterance {len(utter) / RATE:.2f} s", flush=True)
    results["engine_offset"], engine_frames = engine_offset(avatar, box, utter)
    print(f"engine offset (live path, rendered here) {results['engine_offset']}", flush=True)

    with webrtc_namespace(), ServerProcess(env={"FACECAST_MAX_PEERS": "16"}) as server, \
            chromium_browser() as browser, httpx.Client(base_url=server.url, timeout=30) as client:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/health")
        page.add_script_tag(content=PAGE_JS.replace("__AUDIO_RMS__", str(AUDIO_RMS)))
        page.evaluate("([a, b]) => { fc.setPcm('utterance', a); fc.setPcm('long', b); }", [to_b64(utter), to_b64(speech)])
        page.evaluate("(box) => fc.setBox(box)", box)
        results["chromium"] = browser.version

        # -- 1-3: one live session, one analysed peer with its audio, for --minutes -----------------
        sid = page.evaluate("fc.newSession()")
        started = time.monotonic()
        page.evaluate("([sid]) => fc.connect(sid, {analyse: true, listen: true})", [sid])
        page.evaluate("fc.firstFrame(0, 20000)")
        page.evaluate("([sid]) => fc.openAudio(sid)", [sid])
        page.evaluate("fc.startStats(0)")
        time.sleep(2.0)
        print(f"audio context: {page.evaluate('fc.audioState()')}", flush=True)
        s0 = stats(client)
        results["utterances"] = run_utterances(page, n_utter, 1.8, len(utter) / RATE * 1000, "start")
        note_load(results, "utterances")
        print(f"utterances done: {summary([r.get('speech_to_screen_ms') for r in results['utterances']])}", flush=True)
        results["server_after_utterances"] = s0_diff = stats(client)["latency_ms"]
        del s0, s0_diff
        results["interrupts"] = run_interrupts(page, n_utter, len(speech))
        note_load(results, "interrupts")
        print(f"interrupts done: {summary([r.get('interrupt_to_closed_ms') for r in results['interrupts']])}", flush=True)
        results["server_after_interrupts"] = stats(client)["latency_ms"]
        n_end = 3 if q else 10
        deadline = started + args.minutes * 60 - n_end * 3.2
        results["talk_turns"] = talk_until(page, deadline, len(speech))
        results["end_utterances"] = run_utterances(page, n_end, 1.8, len(utter) / RATE * 1000, "end")
        results["av_minutes"] = (time.monotonic() - started) / 60
        page.evaluate("fc.stopStats()")
        results["playout_stats"] = page.evaluate("fc.S.stats")
        results["server_live"] = stats(client)["latency_ms"]
        results["session_peers"] = client.get(f"/sessions/{sid}").json().get("webrtc_peers")
        page.evaluate("fc.hangUp(0)")
        note_load(results, "av_run")
        print(f"A/V run done: {results['av_minutes']:.1f} min", flush=True)

        # -- 4: time to first frame: new peers on one live session, new live sessions ---------------
        n_conn = 3 if q else args.trials
        ttff = {"same_session": [], "new_session": []}
        for _ in range(n_conn):
            i = page.evaluate("([sid]) => fc.connect(sid, {})", [sid])
            ttff["same_session"].append(page.evaluate("([i]) => fc.firstFrame(i, 20000)", [i]))
            page.evaluate("([i]) => fc.hangUp(i)", [i])
            time.sleep(0.3)
        page.evaluate("([sid]) => fc.deleteSession(sid)", [sid])
        for _ in range(n_conn):
            new = page.evaluate("fc.newSession()")
            time.sleep(0.5)  # the session is up; the clock starts at the offer
            i = page.evaluate("([sid]) => fc.connect(sid, {})", [new])
            ttff["new_session"].append(page.evaluate("([i]) => fc.firstFrame(i, 20000)", [i]))
            page.evaluate("([i]) => fc.hangUp(i)", [i])
            page.evaluate("([sid]) => fc.deleteSession(sid)", [new])
            time.sleep(0.3)
        results["ttff"] = ttff
        results["server_ttff"] = stats(client)["latency_ms"].get("webrtc_first_frame_sent_ms")
        note_load(results, "ttff")
        print("TTFF done", flush=True)

        # -- 5: viewers; 6: CPU per peer and codec (each on a fresh talking live session) -----------
        window = 4.0 if q else args.window
        results["viewers"] = []
        for n in ([1, 2, 4] if q else [1, 2, 4, 6, 8]):
            results["viewers"].append(viewers_round(page, client, server.proc.pid, n, None, window, len(speech)))
            print(f"viewers {results['viewers'][-1]}", flush=True)
        results["cpu"] = []
        for codec in ("H264", "VP8"):
            for n in (0, 1, 2, 4):
                results["cpu"].append(viewers_round(page, client, server.proc.pid, n, codec, window, len(speech)))
                print(f"cpu {results['cpu'][-1]}", flush=True)
        note_load(results, "viewers_cpu")
        results["page_errors"] = errors
        results["server_log_tracebacks"] = server.output().count("Traceback")
    results["encoder_ms_per_frame"] = encoder_ms(engine_frames)
    return results


def viewers_round(page, client, pid: int, n: int, codec: str | None, window: float, pcm_len: int) -> dict:
    """n peers (codec forced when given) on a new live session that talks throughout; over `window`
    s: frames presented per peer (rVFC), decoded, server and browser CPU."""
    sid = page.evaluate("fc.newSession()")
    page.evaluate("([sid]) => fc.openAudio(sid)", [sid])
    first = page.evaluate("fc.S.peers.length")
    for _ in range(n):
        i = page.evaluate("([sid, codec]) => fc.connect(sid, codec ? {codec} : {})", [sid, codec])
        page.evaluate("([i]) => fc.firstFrame(i, 30000)", [i])
    page.evaluate("([s, gen]) => { window.__talk = gen; (async () => { while (window.__talk === gen) "
                  "await fc.speak('long', s, 6000, {gen}); })(); }", [16000, sid])
    time.sleep(2.0)
    before = page.evaluate("fc.videoStats()")
    cpu0, bcpu0, t0 = cpu_seconds(pid), browser_cpu_seconds(), time.monotonic()
    time.sleep(window)
    after = page.evaluate("fc.videoStats()")
    cpu1, bcpu1, t1 = cpu_seconds(pid), browser_cpu_seconds(), time.monotonic()
    page.evaluate("window.__talk = null")
    info = client.get(f"/sessions/{sid}").json().get("webrtc_peers") or []
    enc = client.get("/stats").json()["latency_ms"].get("webrtc_encode_ms_per_frame")
    for i in range(first, first + n):
        page.evaluate("([i]) => fc.hangUp(i)", [i])
    page.evaluate("([sid]) => fc.deleteSession(sid)", [sid])
    time.sleep(1.0)
    dt = t1 - t0
    fps = [(a["count"] - b["count"]) / dt for a, b in zip(after, before)]
    decoded = [(a["decoded"] - b["decoded"]) / dt for a, b in zip(after, before)]
    return {"peers": n, "codec": codec or "default", "window_s": dt, "fps_presented": fps, "fps_decoded": decoded,
            "min_fps": min(fps) if fps else None, "server_cpu_pct": 100 * (cpu1 - cpu0) / dt,
            "browser_cpu_pct": 100 * (bcpu1 - bcpu0) / dt, "codecs_browser": [a["codec"] for a in after],
            "codecs_server": [p.get("codec") for p in info], "decode_ms": [a["decodeMs"] for a in after],
            "server_encode_ms_per_frame": enc, "load_1min": os.getloadavg()[0]}


# -- report -----------------------------------------------------------------------------------

def note_load(results: dict, phase: str) -> None:
    results.setdefault("load_by_phase", {})[phase] = round(os.getloadavg()[0], 2)


def summary(values) -> dict:
    v = [x for x in values if x is not None]
    return {"n": len(v), "missed": len(values) - len(v), "p50": pct(v, 50), "p95": pct(v, 95),
            "max": max(v) if v else float("nan"), "min": min(v) if v else float("nan")}


def report(res: dict) -> str:
    eng = res["engine_offset"]["offset_ms"]
    speech = summary([r.get("speech_to_screen_ms") for r in res["utterances"]])
    intr = summary([r.get("interrupt_to_closed_ms") for r in res["interrupts"]])
    av_start = summary([r["av_ms"] - eng for r in res["utterances"] if "av_ms" in r])
    av_end = summary([r["av_ms"] - eng for r in res["end_utterances"] if "av_ms" in r])
    play = [s["video"] - s["audio"] for s in res["playout_stats"] if s.get("audio") and s.get("video")]
    n_play = len(play)
    head, tail = play[: max(1, n_play // 10)], play[-max(1, n_play // 10):]
    ttff_same = summary([r["first"] - r["offered"] for r in res["ttff"]["same_session"]])
    ttff_new = summary([r["first"] - r["offered"] for r in res["ttff"]["new_session"]])
    def min_decoded(r):  # frames/s each peer decodes (getStats framesDecoded): what it receives
        return min(r["fps_decoded"]) if r["fps_decoded"] else 0.0

    ok = [v["peers"] for v in res["viewers"] if min_decoded(v) >= BARS["fps"]]  # levels where every peer made it
    max_ok = max(ok or [0])
    srv = res["server_live"]

    def ms(s, key):
        return f"{s[key]:.0f}" if s["n"] else "-"

    def passfail(ok: bool) -> str:
        return "PASS" if ok else "**FAIL**"

    def server_p(name):
        s = srv.get(name) or {}
        return f"{s.get('p50', float('nan')):.0f} / {s.get('p95', float('nan')):.0f} (n {s.get('count', 0)})"

    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, Chromium {res.get('chromium')}; "
             f"load average at start {m['load_average_start'][0]:.2f} (1 min) {m['load_average_start'][1]:.2f} (5 min)"
             + ("; QUICK run" if res["quick"] else ""), "",
             "| measure | n | p50 | p95 | bar | result |", "|---|---|---|---|---|---|"]
    lines.append(f"| speech to screen: PCM chunk sent -> first presented frame with the mouth moving (ms) | {speech['n']}"
                 f"{' (' + str(speech['missed']) + ' missed)' if speech['missed'] else ''} | {ms(speech, 'p50')} "
                 f"| {ms(speech, 'p95')} | p95 <= {BARS['speech']} | {passfail(speech['n'] > 0 and speech['p95'] <= BARS['speech'] and not speech['missed'])} |")
    lines.append(f"| interrupt sent -> first presented frame with the mouth closed (ms) | {intr['n']}"
                 f"{' (' + str(intr['missed']) + ' missed)' if intr['missed'] else ''} | {ms(intr, 'p50')} "
                 f"| {ms(intr, 'p95')} | p95 <= {BARS['interrupt']} | {passfail(intr['n'] > 0 and intr['p95'] <= BARS['interrupt'] and not intr['missed'])} |")
    for label, s in (("at the start", av_start), (f"after {res['av_minutes']:.1f} min", av_end)):
        worst = max(abs(s["min"]), abs(s["max"])) if s["n"] else float("nan")
        lines.append(f"| A/V onsets {label}: video - audio - engine offset (ms; min {s['min']:.0f}, max {s['max']:.0f}) "
                     f"| {s['n']} | {ms(s, 'p50')} | {ms(s, 'p95')} | \\|median\\| <= {BARS['av']} "
                     f"| {passfail(s['n'] > 0 and abs(s['p50']) <= BARS['av'])} (worst {worst:.0f}) |")
    if play:
        lines.append(f"| A/V getStats estimatedPlayoutTimestamp video - audio, first / last tenth of {res['av_minutes']:.1f} min "
                     f"(ms; all: min {min(play):.0f}, max {max(play):.0f}) | {n_play} | {np.median(head):.0f} / {np.median(tail):.0f} "
                     f"| {pct([abs(x) for x in head], 95):.0f} / {pct([abs(x) for x in tail], 95):.0f} (\\|x\\|) "
                     f"| \\|x\\| <= {BARS['av']} | {passfail(abs(np.median(head)) <= BARS['av'] and abs(np.median(tail)) <= BARS['av'])} |")
    else:
        lines.append("| A/V getStats estimatedPlayoutTimestamp | 0 | - | - | - | not reported by Chromium |")
    for label, s in (("one live session, new peer each", ttff_same), ("new live session each", ttff_new)):
        lines.append(f"| time to first frame, offer POSTed -> first frame presented, {label} (ms) | {s['n']} | {ms(s, 'p50')} "
                     f"| {ms(s, 'p95')} | p95 <= {BARS['ttff']} | {passfail(s['n'] > 0 and s['p95'] <= BARS['ttff'])} |")
    vtxt = ", ".join(f"{r['peers']}: {min_decoded(r):.1f} / {r['min_fps']:.1f}" for r in res["viewers"])
    lines.append(f"| viewers each >= {BARS['fps']} frames/s decoded (peers: min decoded / min presented; {vtxt}) | - | - | - "
                 f"| >= {BARS['viewers']} | {passfail(max_ok >= BARS['viewers'])} (up to {max_ok}; passed at {ok or 'none'}) |")
    lines += ["", "1-minute load average after each phase: "
              + ", ".join(f"{k} {v:.1f}" for k, v in res.get("load_by_phase", {}).items()) + "."]
    lines += ["", f"Engine's own offset (the same input through its live path, rendered without transport): mouth opens "
                  f"{eng:+.0f} ms after the sound's onset (frame = {res['engine_offset']['frame_ms']:.0f} ms).",
              "", "Server-side telemetry of the same live session (`GET /stats`, p50 / p95 ms): "
              f"webrtc_chunk_to_frame_ms {server_p('webrtc_chunk_to_frame_ms')}, "
              f"live_chunk_to_frame_ms {server_p('live_chunk_to_frame_ms')}, "
              f"webrtc_interrupt_to_closed_ms {server_p('webrtc_interrupt_to_closed_ms')}, "
              f"interrupt_to_closed_ms {server_p('interrupt_to_closed_ms')}; "
              f"webrtc_first_frame_sent_ms (TTFF phase) {fmt_lat(res.get('server_ttff'))}."]
    jb = [(s["jbAudio"], s["jbVideo"]) for s in res["playout_stats"] if s.get("jbAudio") is not None and s.get("jbVideo") is not None]
    if jb:
        lines.append(f"Chromium's mean jitter-buffer delay at the end: audio {jb[-1][0]:.0f} ms, video {jb[-1][1]:.0f} ms.")
    lines += ["", "| peers | codec (server) | frames/s decoded, min | frames/s presented, min / mean | server CPU % "
                  "| browser CPU % "
                  "| server CPU % per peer (vs 0) |", "|---|---|---|---|---|---|---|"]
    base = {r["codec"]: r["server_cpu_pct"] for r in res["cpu"] if r["peers"] == 0}
    for r in res["viewers"] + res["cpu"]:
        codecs = ",".join(sorted(set(c for c in r["codecs_server"] if c))) or "-"
        per = (r["server_cpu_pct"] - base[r["codec"]]) / r["peers"] if r["peers"] and r["codec"] in base else None
        mean = np.mean(r["fps_presented"]) if r["fps_presented"] else float("nan")
        lines.append(f"| {r['peers']} | {r['codec']} ({codecs}) | {min_decoded(r):.1f} | {(r['min_fps'] or 0):.1f} / {mean:.1f} "
                     f"| {r['server_cpu_pct']:.0f} | {r['browser_cpu_pct']:.0f} | {'-' if per is None else f'{per:+.1f}'} |")
    enc = res["encoder_ms_per_frame"]
    lines += ["", f"Encoder alone, ms per 512x512 frame (the server's VideoEncoder, 8-frame batches, this process): "
                  f"H.264 {enc['h264']:.2f}, VP8 {enc['vp8']:.2f}."]
    return "\n".join(lines)


def fmt_lat(s) -> str:
    if not s or not s.get("count"):
        return "-"
    return f"{s['p50']:.0f} / {s['p95']:.0f} (n {s['count']})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the live A/V session (min)")
    parser.add_argument("--trials", type=int, default=20, help="utterances, interrupts and connections (>= 20)")
    parser.add_argument("--window", type=float, default=10.0, help="s per viewers / CPU measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few trials each, 1 minute of A/V")
    parser.add_argument("--json", default="/tmp/bench_webrtc.json", help="where to write the results")
    parser.add_argument("--report", metavar="JSON", help="only print the table of a saved run")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    if args.quick:
        args.minutes = min(args.minutes, 1.0)
    else:
        args.trials = max(args.trials, 20)
    results: dict = {}
    try:
        measure(args, results)
    except BaseException:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
        print(f"failed; what was measured is in {args.json}", flush=True)
        raise
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    table = report(results)
    results["table"] = table
    Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    print("\n" + table + f"\n\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
