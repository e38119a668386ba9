// facecast chat: the browser's microphone to the server's pipeline over WebRTC, the avatar back.
// Transceivers in the order pipecat's SmallWebRTCConnection expects: audio (sendrecv: the microphone
// out, the avatar's voice in), then video (the avatar in). Transcript and state come as JSON
// messages {type: "chat", role, event, text, t} on the data channel. ICE candidates are gathered
// before the offer is sent (no trickle).
//
// window.chat is also the test and benchmark surface: chat.messages (each with `at`, the wall-clock
// ms it arrived), chat.frames ({at: wall-clock ms the frame was presented, motion: mean absolute
// change of the mouth region's green levels from the previous frame, dark: the share of its pixels
// darker than DARK}), chat.setMouth(x, y, w, h), chat.capture(n) (the next n frames as PNG data URLs),
// chat.audio() (the avatar's voice as received: energy, samples), chat.voice
// ({start, end}: wall-clock ms of each stretch of sound the microphone captured, end null while it lasts).
window.chat = (() => {
  const $ = (id) => document.getElementById(id);
  const video = $('avatar');
  const canvas = document.createElement('canvas');
  const state = {pc: null, mic: null, messages: [], frames: [], voice: [], mouth: null, previous: null,
                 replyItem: null, listener: null, captures: []};
  const MAX_FRAMES = 6000;  // presented frames kept for chat.frames (4 min at 25 fps)
  const DARK = 60;  // green level below which a mouth-region pixel counts as the inside of the mouth
  const VOICE_RMS = 0.01;  // microphone level (RMS of samples in [-1, 1]) that counts as sound
  const VOICE_HANG_MS = 300;  // ms below it that end a stretch of sound
  const VOICE_POLL_MS = 10;  // ms between looks at the microphone (its analyser holds ~11 ms)

  function setState(text) { $('state').textContent = text; }

  function addLine(role, text) {
    const li = document.createElement('li');
    li.className = role;
    li.textContent = (role === 'user' ? 'you: ' : 'avatar: ') + text;
    $('transcript').appendChild(li);
    return li;
  }

  function onMessage(event) {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type !== 'chat') return;
    message.at = Date.now();
    state.messages.push(message);
    if (message.event === 'speaking') $('listening').hidden = false;
    if (message.event === 'stopped') $('listening').hidden = true;
    if (message.event === 'transcript') addLine('user', message.text);
    if (message.event === 'reply') state.replyItem = addLine('avatar', message.text);
    if (message.event === 'interrupted' && state.replyItem) state.replyItem.classList.add('interrupted');
  }

  function gathered(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
  }

  // Mean absolute difference of the green channel of two RGBA buffers of one size (0 without b).
  function difference(a, b) {
    if (!b || b.length !== a.length) return 0;
    let sum = 0;
    for (let i = 1; i < a.length; i += 4) sum += Math.abs(a[i] - b[i]);
    return sum / (a.length / 4);
  }

  // Share of the region's pixels darker than DARK (green level): an open mouth shows its inside.
  function dark(pixels) {
    let count = 0;
    for (let i = 1; i < pixels.length; i += 4) if (pixels[i] < DARK) count += 1;
    return count / (pixels.length / 4);
  }

  async function audio() {
    if (!state.pc) return null;
    const report = await state.pc.getStats();
    for (const stat of report.values()) {
      if (stat.type === 'inbound-rtp' && stat.kind === 'audio') {
        return {energy: stat.totalAudioEnergy || 0, samples: stat.totalSamplesReceived || 0};
      }
    }
    return null;
  }

  // Stretches of sound on the microphone, with wall-clock times (the user's speech as captured).
  function watchVoice(stream) {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let speaking = false;
    let lastLoud = 0;
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += v * v;
      const now = Date.now();
      if (Math.sqrt(sum / samples.length) > VOICE_RMS) {
        lastLoud = now;
        if (!speaking) state.voice.push({start: now, end: null});
        speaking = true;
      } else if (speaking && now - lastLoud > VOICE_HANG_MS) {
        speaking = false;
        state.voice[state.voice.length - 1].end = lastLoud;
      }
    }, VOICE_POLL_MS);
    return () => { clearInterval(timer); context.close(); };
  }

  // The next `count` presented frames, whole, as PNG data URLs (for tests).
  function capture(count) {
    const shots = [];
    return new Promise((resolve) => {
      state.captures.push({count, shots, resolve});
    });
  }

  function watchFrames() {
    const context = canvas.getContext('2d', {willReadFrequently: true});
    const onFrame = (now, metadata) => {
      if (video.videoWidth) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        context.drawImage(video, 0, 0);
        for (const job of state.captures.splice(0)) {
          job.shots.push(canvas.toDataURL('image/png'));
          if (job.shots.length < job.count) state.captures.push(job); else job.resolve(job.shots);
        }
        const [x, y, w, h] = state.mouth || [0, 0, canvas.width, canvas.height];
        const pixels = context.getImageData(x, y, w, h).data;
        const motion = difference(pixels, state.previous);
        state.previous = pixels;
        state.frames.push({at: performance.timeOrigin + metadata.presentationTime, motion, dark: dark(pixels)});
        if (state.frames.length > MAX_FRAMES) state.frames.splice(0, state.frames.length - MAX_FRAMES);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  async function start() {
    setState('starting');
    state.mic = await navigator.mediaDevices.getUserMedia({audio: true});
    state.listener = watchVoice(state.mic);
    const pc = new RTCPeerConnection({iceServers: []});
    state.pc = pc;
    pc.addTransceiver(state.mic.getAudioTracks()[0], {direction: 'sendrecv'});
    pc.addTransceiver('video', {direction: 'recvonly'});
    const channel = pc.createDataChannel('chat', {ordered: true});
    channel.addEventListener('message', onMessage);
    const stream = new MediaStream();
    video.srcObject = stream;
    video.play().catch(() => {});  // while the click still counts as a gesture (autoplay with sound)
    pc.addEventListener('track', (event) => {
      stream.addTrack(event.track);
      video.srcObject = stream;
    });
    pc.addEventListener('connectionstatechange', () => setState(pc.connectionState));
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch('/chat/offer', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({sdp: pc.localDescription.sdp, type: pc.localDescription.type}),
    });
    if (!response.ok) {
      setState('refused: ' + (await response.text()));
      stop();
      return;
    }
    await pc.setRemoteDescription(await response.json());
  }

  function stop() {
    if (state.pc) state.pc.close();
    if (state.mic) state.mic.getTracks().forEach((track) => track.stop());
    if (state.listener) state.listener();
    state.pc = state.mic = state.listener = null;
    setState('closed');
  }

  function hangUp() {
    stop();
    $('talk').textContent = 'Talk';
    $('talk').classList.remove('on');
  }

  $('talk').addEventListener('click', async () => {
    const button = $('talk');
    if (state.pc) {
      hangUp();
      return;
    }
    button.textContent = 'Hang up';
    button.classList.add('on');
    try { await start(); } catch (error) { setState('error: ' + error.message); stop(); }
  });
  // A closed tab (or one navigated away) hangs up: the server ends the call at once. Otherwise it
  // learns of it only when ICE consent fails, 24-36 s later, and renders the avatar for nobody meanwhile.
  window.addEventListener('pagehide', hangUp);
  watchFrames();

  return {
    messages: state.messages,
    frames: state.frames,
    voice: state.voice,
    setMouth: (x, y, w, h) => { state.mouth = [x, y, w, h]; state.previous = null; },
    capture,
    audio,
    state: () => (state.pc ? state.pc.connectionState : 'idle'),
    hangUp,
  };
})();
