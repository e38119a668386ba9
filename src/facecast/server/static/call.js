// facecast web client, live calls: a live session watched over WebRTC (fMP4 as its fallback),
// that speaks whatever is sent to it (/say, or the microphone over the session's audio WebSocket).
// Loaded after app.js, whose helpers ($, api, state, showError, playStream, ...) it uses.
"use strict";

// -- live call -------------------------------------------------------------------------------
// Start call makes a live session (it idles between utterances) and watches it over WebRTC; fMP4
// through MSE takes over when WebRTC is missing or fails. Speech goes to the session (/say, or the
// microphone over its audio WebSocket) until Hang up. ?transport=fmp4 forces fMP4;
// ?transport=webrtc forbids the fallback (tests).
const TRANSPORT = ["webrtc", "fmp4"].includes(params.get("transport")) ? params.get("transport") : "auto";
const ICE_GATHER_MS = 2000; // longest wait for ICE gathering (no trickle ICE): then offer what was found
const FIRST_FRAME_TIMEOUT_MS = 5000; // no frame this long after the offer: fall back to fMP4
const STATS_EVERY_MS = 1000;
const TALK_CHUNK_S = 0.04; // 40 ms of microphone PCM per WebSocket message
const PCM_TAP = `registerProcessor("pcm-tap", class extends AudioWorkletProcessor {
  process(inputs) { const c = inputs[0][0]; if (c) { this.port.postMessage(c.slice()); } return true; }
});`; // an AudioWorklet that hands the microphone's samples (Float32, 128 a block) to the page

// The call as the status line and tests see it (window.facecast.call).
const call = { state: "idle", transport: null, codec: null, firstFrameMs: null, fps: null, rttMs: null,
  sessionId: null, peerId: null, framesPresented: 0, fallback: null, muted: false, said: null,
  audioSamples: null, talkBytes: 0, talkReplies: [] };
state.call = call;
let activeCall = null; // the Call while one is up (from Start call until Hang up)

// One call: its session, its peer connection or fMP4 playback, and what Hang up undoes.
class Call {
  constructor() {
    this.abort = new AbortController(); // aborted at hang-up: this call's late answers and events are ignored
    this.session = null;
    this.pc = null;
    this.peerLocation = null;
    this.generation = 0; // bumped when the transport changes, so the old frame watcher stops
    this.frameTimes = []; // performance.now() of the frames presented in the last second
    this.timers = [];
    this.talk = null; // the microphone while Talk is held
    this.socket = null; // {ws, rate, opened}: the session's audio WebSocket, kept between Talk presses
  }

  get over() { return this.abort.signal.aborted; }
}

async function startCall() {
  if (activeCall) { return; }
  clearError();
  stopPlayback(); // a clip that plays
  const c = activeCall = new Call();
  Object.assign(call, { state: "new", transport: null, codec: null, firstFrameMs: null, fps: null, rttMs: null,
    sessionId: null, peerId: null, framesPresented: 0, fallback: null, muted: false, said: null,
    audioSamples: null, talkBytes: 0, talkReplies: [] });
  updateCallButtons();
  showCall();
  c.timers.push(setInterval(() => refreshStats(c), STATS_EVERY_MS));
  try {
    const form = new FormData();
    form.append("live", "true");
    if ($("avatar").value) { form.append("avatar_id", $("avatar").value); }
    c.session = await (await api("/sessions", { method: "POST", body: form, signal: c.abort.signal })).json();
    call.sessionId = c.session.id;
    updateCallButtons();
    if (TRANSPORT === "fmp4") { watchFmp4(c, null); } else { await connectWebrtc(c); }
  } catch (error) {
    if (!c.over) { fallBack(c, error); }
  }
}

// WebRTC did not work for this call: watch its fMP4 stream instead, or end the call with the error
// (no session yet, or ?transport=webrtc).
function fallBack(c, reason) {
  if (c.over || call.transport === "fmp4") { return; }
  const why = String(reason.message || reason);
  if (!c.session || TRANSPORT === "webrtc") { failCall(c, why); return; }
  closePeer(c);
  watchFmp4(c, `WebRTC failed: ${why}`);
}

function failCall(c, why) {
  hangUp(c, "failed");
  showError(why);
}

async function connectWebrtc(c) {
  if (!window.RTCPeerConnection) { throw new Error("this browser has no WebRTC (RTCPeerConnection)"); }
  const { iceServers } = await (await api("/webrtc/ice-servers", { signal: c.abort.signal })).json();
  const pc = c.pc = new RTCPeerConnection({ iceServers });
  Object.assign(call, { transport: "webrtc", state: "connecting" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const remote = new MediaStream();
  pc.addEventListener("track", ({ track }) => {
    if (c.pc !== pc) { return; }
    remote.addTrack(track);
    if (video.srcObject !== remote) { video.srcObject = remote; }
    playWithSound();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (c.pc !== pc) { return; }
    call.state = pc.connectionState; // new, connecting, connected, disconnected, failed (closed: ours)
    showCall();
    if (pc.connectionState === "failed") { fallBack(c, "the connection failed"); }
  });
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc, ICE_GATHER_MS);
  if (c.pc !== pc) { return; }
  const offered = performance.now();
  watchCallFrames(c, offered);
  if (TRANSPORT === "auto") {
    c.timers.push(setTimeout(() => {
      if (c.pc === pc && call.firstFrameMs === null) { fallBack(c, `no video ${FIRST_FRAME_TIMEOUT_MS / 1000} s after the offer`); }
    }, FIRST_FRAME_TIMEOUT_MS));
  }
  const answer = await (await api(c.session.webrtc_url, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }), signal: c.abort.signal })).json();
  if (c.pc !== pc) { hangUpPeer(answer.location); return; } // fell back while the answer was on its way
  c.peerLocation = answer.location;
  call.peerId = answer.peer_id;
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

// Resolves once ICE gathering is complete, or after `timeoutMs` with what was gathered by then.
function iceGathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") { return Promise.resolve(); }
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === "complete") { done(); } };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Play the session's fMP4 stream through MSE; `fallback` says why WebRTC is not used (null: asked for).
function watchFmp4(c, fallback) {
  Object.assign(call, { transport: "fmp4", state: "connecting", fallback, codec: null, fps: null, rttMs: null,
    firstFrameMs: null, peerId: null, audioSamples: null });
  const play = { abort: new AbortController(), started: performance.now(), loading: true };
  c.abort.signal.addEventListener("abort", () => play.abort.abort());
  video.srcObject = null;
  video.muted = false;
  showCall();
  playStream(c.session.stream_url, play.started, play, () => watchCallFrames(c, play.started))
    .then(() => { if (!c.over) { failCall(c, "the live stream ended"); } })
    .catch((error) => { if (!c.over) { failCall(c, error.message || error); } });
}

function closePeer(c) {
  c.generation += 1;
  if (c.pc) { c.pc.close(); c.pc = null; }
  hangUpPeer(c.peerLocation);
  c.peerLocation = null;
  video.srcObject = null;
}

function hangUpPeer(location) {
  if (location) { api(location, { method: "DELETE", keepalive: true }).catch(() => {}); } // gone already: fine
}

// End the call: close the connection, hang up the peer and delete the session. Never throws.
function hangUp(c, final = "closed") {
  if (!c || c.over) { return; }
  c.abort.abort();
  c.timers.forEach(clearTimeout); // clears the intervals too (one list of timers)
  stopTalk(c);
  if (c.socket) { c.socket.ws.close(); }
  closePeer(c);
  video.pause();
  if (video.getAttribute("src")) { video.removeAttribute("src"); video.load(); }
  if (c.session) { api(`/sessions/${encodeURIComponent(c.session.id)}`, { method: "DELETE", keepalive: true }).catch(() => {}); }
  if (activeCall === c) { activeCall = null; }
  call.state = final;
  updateCallButtons();
  setStatus(final === "closed" ? "Call ended." : "Call failed.");
}

function toggleCall() {
  if (activeCall) { hangUp(activeCall); } else { startCall(); }
}

// Autoplay with sound first; when the browser refuses it, play muted and let a click on the video
// turn the sound on.
function playWithSound() {
  video.muted = false;
  video.play().catch((error) => {
    if (error.name !== "NotAllowedError") { return; } // AbortError: a newer source took over
    video.muted = true;
    call.muted = true;
    video.play().catch(() => {});
    showCall();
  });
}

function unmute() {
  if (activeCall && video.muted) { video.muted = false; call.muted = false; showCall(); }
}

// Follow the presented frames (requestVideoFrameCallback): time to the first, count, last second.
function watchCallFrames(c, since) {
  const generation = c.generation;
  const onFrame = (now) => {
    if (c.over || c.generation !== generation) { return; }
    if (call.firstFrameMs === null) {
      call.firstFrameMs = Math.round(now - since);
      if (call.transport === "fmp4") { Object.assign(call, { state: "connected", codec: mimeCodec(state.mime) }); }
      showCall();
    }
    call.framesPresented += 1;
    c.frameTimes.push(now);
    while (c.frameTimes[0] < now - 1000) { c.frameTimes.shift(); }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

// 'video/mp4; codecs="avc1.42C01E, mp4a.40.2"' -> "H264 (avc1.42C01E)"
function mimeCodec(mime) {
  const first = /codecs="([^",]+)/.exec(mime || "");
  if (!first) { return null; }
  return first[1].startsWith("avc1") ? `H264 (${first[1]})` : first[1];
}

async function refreshStats(c) {
  if (c.over) { return; }
  const now = performance.now();
  const presented = c.frameTimes.filter((t) => t > now - 1000).length;
  call.fps = call.firstFrameMs === null ? null : presented;
  const pc = c.pc;
  if (pc && call.transport === "webrtc") {
    try {
      const stats = readStats(await pc.getStats());
      if (c.pc !== pc) { return; }
      if (stats.fps !== null) { call.fps = stats.fps; }
      Object.assign(call, { codec: stats.codec ?? call.codec, rttMs: stats.rttMs ?? call.rttMs,
        audioSamples: stats.audioSamples });
    } catch (_) { /* closed meanwhile */ }
  }
  showCall();
}

// From an RTCStatsReport: received video frames/s, its codec, the round trip (ms) of the candidate
// pair in use and the audio samples received.
function readStats(report) {
  let pictures = null, audio = null, pair = null, selected = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") { pictures = s; }
    if (s.type === "inbound-rtp" && s.kind === "audio") { audio = s; }
    if (s.type === "transport" && s.selectedCandidatePairId) { selected = s.selectedCandidatePairId; }
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && !pair) { pair = s; }
  });
  if (selected && report.get(selected)) { pair = report.get(selected); }
  const codec = pictures && pictures.codecId ? report.get(pictures.codecId) : null;
  const rtt = pair ? pair.currentRoundTripTime : undefined;
  return {
    fps: pictures && pictures.framesPerSecond !== undefined ? pictures.framesPerSecond : null,
    codec: codec ? codec.mimeType.replace(/^video\//, "") : null,
    rttMs: rtt !== undefined ? Math.round(rtt * 10000) / 10 : null,
    audioSamples: audio && audio.totalSamplesReceived !== undefined ? audio.totalSamplesReceived : null,
  };
}

function showCall() {
  if (activeCall) { setStatus(callText()); }
}

function callText() {
  const parts = [`Live call ${call.state}`];
  if (call.transport === "webrtc") { parts.push("WebRTC"); }
  if (call.transport === "fmp4") { parts.push(call.fallback ? `fMP4 fallback (${call.fallback})` : "fMP4"); }
  if (call.firstFrameMs !== null) { parts.push(`first frame ${call.firstFrameMs} ms`); }
  if (call.fps !== null) { parts.push(`${call.fps.toFixed(1)} frames/s`); }
  if (call.rttMs !== null) { parts.push(`RTT ${call.rttMs} ms`); }
  if (call.codec) { parts.push(call.codec); }
  if (call.muted) { parts.push("sound off: click the video"); }
  return parts.join(" · ");
}

function updateCallButtons() {
  const up = Boolean(activeCall);
  const ready = up && Boolean(activeCall.session);
  $("call").textContent = up ? "Hang up" : "Start call";
  $("call").classList.toggle("hangup", up);
  $("interrupt").disabled = !ready;
  $("talk").disabled = !ready;
  $("avatar").disabled = up; // the call keeps the avatar it started with
}

// "Speak text", "Speak file" and Record during a call: queue the speech on the live session.
async function callSay(c, form) {
  if (!c.session) { showError("The call is still starting; try again in a moment."); return; }
  form.delete("avatar_id");
  clearError();
  const buttons = [$("speak"), $("speak-file")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const path = `/sessions/${encodeURIComponent(c.session.id)}/say`;
    call.said = await (await api(path, { method: "POST", body: form, signal: c.abort.signal })).json();
  } catch (error) {
    if (!c.over) { showError(error); }
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function interruptCall() {
  const c = activeCall;
  if (!c || !c.session) { return; }
  try {
    const path = `/sessions/${encodeURIComponent(c.session.id)}/interrupt`;
    call.said = await (await api(path, { method: "POST", signal: c.abort.signal })).json();
  } catch (error) {
    if (!c.over) { showError(error); }
  }
}

// -- talking into the call: the microphone as 16-bit PCM over the session's audio WebSocket -----
async function startTalk() {
  const c = activeCall;
  if (!c || !c.session || c.talk) { return; }
  clearError();
  const talk = c.talk = { pending: [], samples: 0, stream: null, context: null };
  $("talk").classList.add("recording");
  try {
    talk.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    if (c.talk !== talk) { releaseTalk(talk); return; } // released meanwhile
    talk.context = new AudioContext();
    const moduleUrl = URL.createObjectURL(new Blob([PCM_TAP], { type: "text/javascript" }));
    await talk.context.audioWorklet.addModule(moduleUrl);
    URL.revokeObjectURL(moduleUrl);
    talk.socket = await audioSocket(c, talk.context.sampleRate);
    if (c.talk !== talk) { releaseTalk(talk); return; }
    const tap = new AudioWorkletNode(talk.context, "pcm-tap");
    tap.port.onmessage = ({ data }) => queuePcm(talk, data);
    talk.context.createMediaStreamSource(talk.stream).connect(tap).connect(talk.context.destination); // silent
  } catch (error) {
    if (c.talk === talk) { stopTalk(c, false); } else { releaseTalk(talk); }
    if (!c.over) { showError(`Talking is not available: ${error.message || error}`); }
  }
}

// The session's audio WebSocket at `rate` Hz, opened once and kept for the call.
function audioSocket(c, rate) {
  if (c.socket && c.socket.rate === rate && c.socket.ws.readyState <= WebSocket.OPEN) { return c.socket.opened; }
  if (c.socket) { c.socket.ws.close(); }
  const url = new URL(c.session.audio_ws_url, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("sample_rate", String(rate));
  if (TOKEN) { url.searchParams.set("token", TOKEN); }
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const socket = c.socket = { ws, rate };
  socket.opened = new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(socket), { once: true });
    ws.addEventListener("close", () => reject(new Error("the audio WebSocket closed")), { once: true });
  });
  ws.addEventListener("message", ({ data }) => {
    const message = JSON.parse(data);
    call.talkReplies.push(message.type);
    if (call.talkReplies.length > 50) { call.talkReplies.shift(); }
    if (message.type === "error" && !c.over) { showError(`Live audio: ${message.detail}`); }
  });
  ws.addEventListener("close", () => { if (c.socket === socket) { c.socket = null; } });
  return socket.opened;
}

// Float32 samples in [-1, 1] -> 16-bit PCM, sent every TALK_CHUNK_S.
function queuePcm(talk, floats) {
  const pcm = new Int16Array(floats.length);
  for (let i = 0; i < floats.length; i += 1) { pcm[i] = Math.max(-1, Math.min(1, floats[i])) * 0x7fff; }
  talk.pending.push(pcm);
  talk.samples += pcm.length;
  if (talk.samples >= talk.socket.rate * TALK_CHUNK_S) { flushPcm(talk); }
}

function flushPcm(talk) {
  if (!talk.samples || !talk.socket || talk.socket.ws.readyState !== WebSocket.OPEN) { return; }
  const chunk = new Int16Array(talk.samples);
  let at = 0;
  for (const part of talk.pending) { chunk.set(part, at); at += part.length; }
  talk.socket.ws.send(chunk.buffer);
  call.talkBytes += chunk.byteLength;
  talk.pending = [];
  talk.samples = 0;
}

// Talk released: send what is left and end the utterance.
function stopTalk(c, end = true) {
  const talk = c && c.talk;
  if (!talk) { return; }
  c.talk = null;
  $("talk").classList.remove("recording");
  if (end && talk.socket && talk.socket.ws.readyState === WebSocket.OPEN) {
    flushPcm(talk);
    talk.socket.ws.send(JSON.stringify({ type: "end" }));
  }
  releaseTalk(talk);
}

function releaseTalk(talk) {
  if (talk.stream) { talk.stream.getTracks().forEach((t) => t.stop()); }
  if (talk.context) { talk.context.close().catch(() => {}); }
}

function pressTalk(event) {
  if (event.type === "keydown" && (event.repeat || ![" ", "Enter"].includes(event.key))) { return; }
  if (event.type === "keydown") { event.preventDefault(); }
  if (event.pointerId !== undefined) { $("talk").setPointerCapture(event.pointerId); }
  startTalk();
}

function releaseTalkButton(event) {
  if (event.type === "keyup" && ![" ", "Enter"].includes(event.key)) { return; }
  stopTalk(activeCall);
}

// -- wiring ----------------------------------------------------------------------------------
$("call").addEventListener("click", toggleCall);
$("interrupt").addEventListener("click", interruptCall);
$("talk").addEventListener("pointerdown", pressTalk);
$("talk").addEventListener("keydown", pressTalk);
for (const type of ["pointerup", "pointercancel", "keyup", "blur"]) { $("talk").addEventListener(type, releaseTalkButton); }
$("talk").addEventListener("click", (event) => event.preventDefault()); // a click is press + release, handled
video.addEventListener("click", unmute);
window.addEventListener("pagehide", () => hangUp(activeCall));
