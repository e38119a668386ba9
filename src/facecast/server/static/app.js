// facecast web client: pick or upload an avatar, give text, a file or a recording, and watch the
// fragmented MP4 stream play through Media Source Extensions as the server generates it; or start a
// live call (call.js), watched over WebRTC (fMP4 as its fallback), that speaks whatever is sent to it.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("video");
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const BUFFER_KEEP_S = 20; // seconds of played video kept in the SourceBuffer

// What the page is doing, for people (the status line) and for tests (window.facecast).
const state = { phase: "idle", firstFrameMs: null, framesPerSecond: null, mime: null, bytes: 0, error: null,
  session: null };
window.facecast = state;

// The latest playback: {abort: AbortController, started, loading}. It stays here after its download
// ends (the video may still be playing) until a newer one replaces it; Stop aborts it.
let current = null;

function authHeaders() {
  return TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    throw new Error(await errorText(response));
  }
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`;
  } catch (_) {
    return `${response.status}: ${response.statusText || "request failed"}`;
  }
}

function setStatus(text) { $("status").textContent = text; }

function showError(error) {
  state.error = String(error.message || error);
  $("error").textContent = state.error;
  $("error").hidden = false;
  setStatus(activeCall ? callText() : "Stopped.");
}

function clearError() {
  state.error = null;
  $("error").hidden = true;
}

function setBusy(busy) {
  for (const id of ["speak", "speak-file", "avatar-upload", "record"]) { $(id).disabled = busy; }
  updateStop();
}

// Stop is enabled while a playback downloads or its video plays.
function updateStop() {
  const running = Boolean(current && !current.abort.signal.aborted && (current.loading || (!video.paused && !video.ended)));
  $("stop").disabled = !running;
}

// -- avatars ---------------------------------------------------------------------------------
async function loadAvatars(selectId) {
  const { avatars } = await (await api("/avatars")).json();
  const select = $("avatar");
  select.replaceChildren(...avatars.map((a) => {
    const option = new Option(`${a.name}${a.default ? " (default)" : ""} - ${a.width}x${a.height} ${a.kind}`, a.id);
    option.selected = selectId ? a.id === selectId : a.default;
    return option;
  }));
}

async function uploadAvatar() {
  const file = $("avatar-file").files[0];
  if (!file) { showError("Choose an image or video to upload first."); return; }
  clearError();
  setBusy(true);
  setStatus(`Preparing ${file.name}...`);
  try {
    const form = new FormData();
    form.append("file", file);
    const avatar = await (await api("/avatars", { method: "POST", body: form })).json();
    await loadAvatars(avatar.id);
    setStatus(`Avatar ready: ${avatar.name}.`);
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

// -- speaking --------------------------------------------------------------------------------
function speechForm() {
  const form = new FormData();
  if ($("avatar").value) { form.append("avatar_id", $("avatar").value); }
  form.append("voice", $("voice").value || "en");
  return form;
}

async function speakText() {
  const text = $("text").value;
  if (!text.trim()) { showError("Type something to say first."); return; }
  const form = speechForm();
  form.append("text", text);
  await speak(form);
}

async function speakFile(file) {
  if (!file) { showError("Choose an audio file first."); return; }
  const form = speechForm();
  form.append("audio", file, file.name || "recording.webm");
  await speak(form);
}

// The advanced video steps (POST /generate): null when none is chosen.
function videoSteps() {
  const steps = {};
  for (const name of ["stabilize", "temporal", "footlock"]) {
    if ($(`opt-${name}`).checked) { steps[name] = "true"; }
  }
  const background = $("background-file").files[0];
  return Object.keys(steps).length || background ? { steps, background } : null;
}

async function speak(form) {
  if (activeCall) { await callSay(activeCall, form); return; } // a live call speaks it instead of a clip
  const steps = videoSteps();
  if (steps) { await renderWhole(form, steps); return; }
  await playing("starting", "Starting...", async (play) => {
    const session = await (await api("/sessions", { method: "POST", body: form, signal: play.abort.signal })).json();
    state.session = session.id;
    await playStream(session.stream_url, play.started, play);
    state.phase = "done";
  });
}

// With video steps the server renders the whole MP4 first; it is then played as a file.
async function renderWhole(form, { steps, background }) {
  for (const [name, value] of Object.entries(steps)) { form.append(name, value); }
  if (background) { form.append("background", background, background.name); }
  await playing("rendering", "Rendering the whole clip with the video steps...", async (play) => {
    const response = await api("/generate", { method: "POST", body: form, signal: play.abort.signal });
    const blob = await response.blob();
    play.abort.signal.throwIfAborted();
    Object.assign(state, { bytes: blob.size, mime: "video/mp4", renderMs: Math.round(performance.now() - play.started) });
    video.src = URL.createObjectURL(blob);
    watchFirstFrame(play.started, play);
    state.phase = "playing";
    startPlayback(null);
  });
}

// One playback at a time: stops the previous one, locks the buttons while `task(play)` runs, and
// shows its error (never leaving the page locked).
async function playing(phase, status, task) {
  clearError();
  stopCurrent();
  const play = { abort: new AbortController(), started: performance.now(), loading: true };
  current = play;
  setBusy(true);
  Object.assign(state, { phase, firstFrameMs: null, framesPerSecond: null, bytes: 0, renderMs: null, session: null });
  setStatus(status);
  try {
    await task(play);
  } catch (error) {
    if (error.name !== "AbortError" && !play.abort.signal.aborted) { state.phase = "failed"; showError(error); }
  } finally {
    play.loading = false;
    // Aborted: Stop has unlocked the page already, or a newer playback holds the lock until it ends.
    if (!play.abort.signal.aborted) { setBusy(false); }
  }
}

function stopCurrent() {
  if (current) { current.abort.abort(); }
}

// The Stop button: abort the download (the server stops generating once its reader is gone),
// pause the video and unlock the page.
function stopPlayback() {
  if (!current || current.abort.signal.aborted) { return; }
  const wasLoading = current.loading;
  stopCurrent();
  video.pause();
  state.phase = "stopped";
  setStatus(state.firstFrameMs === null ? "Stopped." : `Stopped. ${progressText()}`);
  if (wasLoading) { setBusy(false); } else { updateStop(); }
  if (document.activeElement === $("stop") || document.activeElement === document.body) { $("speak").focus(); }
}

// -- Media Source Extensions -----------------------------------------------------------------
// `watch(started, play)` follows the presented frames once the video has its source.
async function playStream(url, started, play, watch = watchFirstFrame) {
  const response = await api(url, { signal: play.abort.signal });
  const mime = response.headers.get("content-type");
  state.mime = mime;
  if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) {
    throw new Error(`This browser cannot play ${mime} through Media Source Extensions.`);
  }
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
  play.abort.signal.throwIfAborted();
  const buffer = source.addSourceBuffer(mime);
  watch(started, play);
  state.phase = "streaming";
  const reader = response.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) { break; }
    state.bytes += value.byteLength;
    await append(buffer, value);
    await trimPlayed(buffer);
    play.abort.signal.throwIfAborted(); // stopped or replaced meanwhile: never restart the video
    if (video.paused && buffer.buffered.length) { startPlayback(buffer); }
  }
  await idle(buffer);
  play.abort.signal.throwIfAborted();
  if (source.readyState === "open") { source.endOfStream(); }
}

// Run one SourceBuffer operation (`start` calls appendBuffer or remove) and resolve at its
// updateend. Both listeners go once it settles, so none pile up over a long stream.
function update(buffer, start, failure) {
  return new Promise((resolve, reject) => {
    const settle = (error) => {
      buffer.removeEventListener("updateend", onEnd);
      buffer.removeEventListener("error", onError);
      if (error) { reject(error); } else { resolve(); }
    };
    const onEnd = () => settle(null);
    const onError = () => settle(new Error(failure));
    buffer.addEventListener("updateend", onEnd);
    buffer.addEventListener("error", onError);
    try { start(); } catch (error) { settle(error); }
  });
}

function append(buffer, bytes) {
  return update(buffer, () => buffer.appendBuffer(bytes), "the browser could not decode the stream");
}

function idle(buffer) {
  return buffer.updating ? new Promise((r) => buffer.addEventListener("updateend", r, { once: true })) : Promise.resolve();
}

// Drop media more than `keepS` seconds before `now` (both in s) once twice that is buffered behind
// it. Resolves when the removal is done, so the next appendBuffer never meets a busy SourceBuffer.
async function trimPlayed(buffer, now = video.currentTime, keepS = BUFFER_KEEP_S) {
  const ranges = buffer.buffered;
  if (buffer.updating || !ranges.length || now - ranges.start(0) <= 2 * keepS) { return; }
  await update(buffer, () => buffer.remove(ranges.start(0), now - keepS), "the browser could not drop played video");
}

function startPlayback(buffer) {
  const start = buffer ? buffer.buffered.start(0) : 0;
  if (video.currentTime < start) { video.currentTime = start; } // joined at a later keyframe
  video.play().catch((error) => {
    // Autoplay with sound was refused: play muted rather than not at all.
    if (error.name === "NotAllowedError") { video.muted = true; video.play().catch(() => {}); }
  });
}

function watchFirstFrame(started, play) {
  const frames = { count: 0, since: null };
  const onFrame = (now) => {
    if (current !== play || play.abort.signal.aborted) { return; } // stopped, or a newer one took over
    if (state.firstFrameMs === null) {
      state.firstFrameMs = Math.round(now - started);
      frames.since = now;
    }
    frames.count += 1;
    const seconds = (now - frames.since) / 1000;
    if (seconds > 0.5) { state.framesPerSecond = frames.count / seconds; }
    showProgress();
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function showProgress() { setStatus(progressText()); }

function progressText() {
  const parts = [];
  if (state.renderMs) { parts.push(`rendered in ${(state.renderMs / 1000).toFixed(1)} s`); }
  if (state.firstFrameMs !== null) { parts.push(`first frame ${state.firstFrameMs} ms`); }
  if (state.framesPerSecond !== null) { parts.push(`${state.framesPerSecond.toFixed(1)} frames/s`); }
  parts.push(`${(state.bytes / 1024).toFixed(0)} KiB`);
  return parts.join(" · ");
}

// -- recording -------------------------------------------------------------------------------
let recorder = null;

async function toggleRecording() {
  if (recorder) { recorder.stop(); return; }
  clearError();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      $("record").classList.remove("recording");
      $("record").textContent = "Record";
      speakFile(new File(chunks, "recording.webm", { type: chunks[0]?.type || "audio/webm" }));
    });
    recorder.start();
    $("record").classList.add("recording");
    $("record").textContent = "Stop and speak";
  } catch (error) {
    recorder = null;
    showError(`Recording is not available: ${error.message || error}`);
  }
}

// -- wiring ----------------------------------------------------------------------------------
$("speak").addEventListener("click", speakText);
$("speak-file").addEventListener("click", () => speakFile($("audio-file").files[0]));
$("avatar-upload").addEventListener("click", uploadAvatar);
$("record").addEventListener("click", toggleRecording);
$("stop").addEventListener("click", stopPlayback);
for (const type of ["play", "pause", "ended", "emptied"]) { video.addEventListener(type, updateStop); }
$("background-clear").addEventListener("click", () => { $("background-file").value = ""; });
loadAvatars().catch(showError);
