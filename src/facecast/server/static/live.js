// facecast live portrait: webcam frames go to /ws/live as JPEG; animated avatar frames come back.
// One frame is in flight at a time (the next is sent when the answer arrives, or after a
// timeout), so latency stays at one round trip and the server never builds a backlog.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const SEND_WIDTH = 640; // px: camera frames are scaled to this width before encoding
const MAX_FPS = 30;
const JPEG_QUALITY = 0.8;
const ANSWER_TIMEOUT_MS = 1000; // a frame without an answer by then no longer holds the next one back
const RECORD = Number(params.get("record") || 0); // tests: keep this many (sent, received) frame pairs

// What the page is doing, for people (status line) and tests (window.facecastLive).
const live = {
  phase: "idle", sent: 0, received: 0, messages: [], errors: [], ready: null,
  pairs: [], fps: 0, roundTripMs: null,
};
window.facecastLive = live;

let socket = null, stream = null, timer = null, paused = false;
let inFlight = null; // {at: ms, dataUrl: string|null} of the frame awaiting its answer
let lastSentUrl = null;
const capture = document.createElement("canvas");
const view = $("avatar-view");
const receivedTimes = [];

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  live.errors.push(text);
  $("error").textContent = text;
  $("error").hidden = false;
}

function withToken(path) {
  if (!TOKEN) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function loadAvatars() {
  try {
    const response = await fetch(withToken("/avatars"));
    if (!response.ok) return;
    const body = await response.json();
    for (const a of body.avatars || []) {
      const option = document.createElement("option");
      option.value = a.default ? "" : a.id;
      option.textContent = a.default ? `${a.name} (default)` : a.name;
      if (!a.default) $("avatar").appendChild(option);
      else $("avatar").options[0].textContent = option.textContent;
    }
  } catch (_) { /* no avatar list on this server: the default avatar only */ }
}

async function start() {
  $("error").hidden = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    showError(`Camera not available: ${error.message || error}`);
    return;
  }
  $("camera").srcObject = stream;
  await $("camera").play();
  openSocket();
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ mode: $("mode").value });
  if ($("avatar").value) query.set("avatar", $("avatar").value);
  socket = new WebSocket(withToken(`${scheme}://${location.host}/ws/live?${query}`));
  socket.binaryType = "blob";
  live.phase = "connecting";
  setStatus("Connecting...");
  socket.onmessage = (event) => (typeof event.data === "string" ? onMessage(JSON.parse(event.data)) : onFrame(event.data));
  socket.onclose = (event) => {
    live.phase = "closed";
    stopTimer();
    setControls(false);
    setStatus(event.reason ? `Disconnected: ${event.reason}` : "Disconnected.");
  };
  socket.onerror = () => showError("The connection to the server failed.");
}

function onMessage(msg) {
  live.messages.push(msg);
  if (live.messages.length > 200) live.messages.shift();
  if (msg.type === "ready") {
    live.ready = msg;
    live.phase = "running";
    view.width = msg.avatar.width;
    view.height = msg.avatar.height;
    setControls(true);
    setStatus(`Animating ${msg.avatar.name} (${msg.mode}).`);
    startTimer();
  } else if (msg.type === "error") {
    showError(msg.message);
  } else if (msg.type === "warning" || msg.type === "info") {
    setStatus(msg.message);
  } else if (msg.type === "state") {
    setStatus(msg.reset ? "Neutral pose: the next frame." : `State: ${msg.state}.`);
  }
}

async function onFrame(blob) {
  const now = performance.now();
  if (inFlight) {
    live.roundTripMs = Math.round(now - inFlight.at);
    if (RECORD && live.pairs.length < RECORD) {
      live.pairs.push({ sent: inFlight.dataUrl, received: await blobToDataUrl(blob) });
    }
  }
  inFlight = null;
  live.received += 1;
  receivedTimes.push(now);
  while (receivedTimes.length && now - receivedTimes[0] > 2000) receivedTimes.shift();
  live.fps = receivedTimes.length / 2;
  const bitmap = await createImageBitmap(blob);
  view.getContext("2d").drawImage(bitmap, 0, 0, view.width, view.height);
  bitmap.close();
  $("stats").textContent = `${live.fps.toFixed(1)} frames/s, round trip ${live.roundTripMs} ms, sent ${live.sent}, received ${live.received}`;
}

function blobToDataUrl(blob) {
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.readAsDataURL(blob);
  });
}

function startTimer() {
  stopTimer();
  timer = setInterval(sendFrame, 1000 / MAX_FPS);
}

function stopTimer() {
  if (timer) clearInterval(timer);
  timer = null;
}

function sendFrame() {
  const camera = $("camera");
  if (paused || !socket || socket.readyState !== WebSocket.OPEN || !camera.videoWidth) return;
  if (inFlight && performance.now() - inFlight.at < ANSWER_TIMEOUT_MS) return;
  if (socket.bufferedAmount > 0) return; // the network is behind: skip this frame
  const scale = Math.min(1, SEND_WIDTH / camera.videoWidth);
  capture.width = Math.round(camera.videoWidth * scale);
  capture.height = Math.round(camera.videoHeight * scale);
  capture.getContext("2d").drawImage(camera, 0, 0, capture.width, capture.height);
  const at = performance.now();
  const dataUrl = RECORD && live.pairs.length < RECORD ? capture.toDataURL("image/jpeg", JPEG_QUALITY) : null;
  inFlight = { at, dataUrl };
  capture.toBlob((blob) => {
    if (blob && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(blob);
      live.sent += 1;
    }
  }, "image/jpeg", JPEG_QUALITY);
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function setControls(running) {
  $("start").disabled = running;
  $("pause").disabled = !running;
  $("neutral").disabled = !running;
  $("stop").disabled = !running;
}

function stop() {
  stopTimer();
  if (socket) socket.close();
  socket = null;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  inFlight = null;
  paused = false;
  $("pause").textContent = "Pause";
  setControls(false);
}

$("start").onclick = start;
$("stop").onclick = stop;
$("neutral").onclick = () => send({ type: "neutral" });
$("pause").onclick = () => {
  paused = !paused;
  send({ type: paused ? "pause" : "resume" });
  $("pause").textContent = paused ? "Resume" : "Pause";
  inFlight = null;
};
$("mode").onchange = () => send({ type: "mode", mode: $("mode").value });
$("avatar").onchange = () => { if (socket) { stop(); start(); } };
$("mirror").onchange = () => $("views").classList.toggle("mirrored", $("mirror").checked);
loadAvatars();
if (params.get("autostart") === "1") start();
