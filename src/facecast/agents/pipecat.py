"""facecast as the face of a pipecat voice agent: `FacecastVideoService`, between the TTS and
`transport.output()`.

    pipeline = Pipeline([..., tts, FacecastVideoService(AvatarOptions(avatar="me.jpg")), transport.output()])

In: the TTS's `TTSAudioRawFrame`s (any rate; the avatar resamples), `TTSStartedFrame` /
`TTSStoppedFrame`, `InterruptionFrame` and `UserStartedSpeakingFrame` (barge-in). Out: the avatar,
frame by frame, as `OutputImageRawFrame`s (RGB, `sync_with_audio=True`) and, for frames of speech,
the avatar's own copy of the speech as `TTSAudioRawFrame`s (the TTS's audio is not passed on as
well). Each image is pushed before the audio of its frame, so the output transport shows image f
once the audio of frames < f has been written, i.e. as the audio of frame f starts.

Between utterances the avatar idles (blinks, a closed mouth) and only images go out: the output
transport fills the audio with silence itself (SmallWebRTC's track does; so does a mixer), and
pipecat's bot-speaking detection stays what it is for any TTS: TTSAudioRawFrames start it and the
TTSStoppedFrame ends it. Pushing the idle silence as TTS audio would keep the bot "speaking" for
ever. The idle images go with `sync_with_audio=True` too, so they queue behind the last speech
audio in the transport and never overtake it.

The `TTSStoppedFrame` is held until the avatar has shown the utterance's last frame (or has made
no progress for `stop_timeout_s`), so it reaches the transport after the utterance's audio.
An interruption (or the user starting to speak) empties the avatar's queue at once, drops the
batches already made for the old speech, and the next image shows a closed mouth. pipecat's output
transport drops the audio-synced images it holds itself; the images it has already drawn into a
SmallWebRTC video track, not yet sent (the track queues them while its encoder is behind), are
dropped by the service: once the transport has handled the interruption, and again as it takes the
first image made after it (`drop_unsent_video`). The picture then holds its last frame until that
image, a closed mouth, is drawn.

The output transport needs `video_out_enabled=True`, `video_out_is_live=False` (pipecat 1.14 draws
audio-synced images only in that mode), `video_out_framerate` = the avatar's fps and
`video_out_width/height` = `service.size` (else every image is resized).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
import time

import cv2
import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings
from pipecat.transports.base_output import BaseOutputTransport

from facecast.agents.avatar import AvatarOptions, LiveAvatar
from facecast.errors import InvalidArgument
from facecast.streaming.output import MediaBatch
from facecast.streaming.speech import frame_samples

STOP_TIMEOUT_S = 5.0  # s a held TTSStoppedFrame waits at most while the avatar's queued speech does not drop
INTERRUPT_WAIT_S = 5.0  # s batches are dropped at most while the avatar's answer to an interrupt is awaited (a live session answers with its next batch)
FRAME_KEY = "facecast_frame"  # image metadata: the avatar's output frame index
AUDIO_KEY = "facecast_audio_samples"  # speech images' metadata: speech samples this service pushed before it
EPOCH_KEY = "facecast_epoch"  # image metadata: interruptions before the image was made
SWEEP_IMAGES = 25  # after an interruption, this many images out look for stale ones drawn late


class FacecastVideoService(AIService):
    """A local, interruptible talking avatar for pipecat pipelines (see the module docstring).

    options: what the avatar looks like and how it is rendered (avatar file or prepared id, backend
    and its options, size, fps, the rate of the audio it gives back); stop_timeout_s: how long a
    held TTSStoppedFrame waits at most while the avatar makes no progress (its queued speech does
    not drop: a stalled avatar never holds up the pipeline).
    """

    def __init__(self, options: AvatarOptions = AvatarOptions(), *, stop_timeout_s: float = STOP_TIMEOUT_S,
                 **kwargs):
        if not stop_timeout_s > 0:
            raise InvalidArgument(f"stop_timeout_s={stop_timeout_s!r} must be positive")
        kwargs.setdefault("settings", ServiceSettings(model=None))
        super().__init__(**kwargs)
        # pipecat marks every end (TTSStoppedFrame) and every interruption: no end by silence, so a
        # slow TTS (an LLM thinking between sentences) keeps one utterance and one TTSStoppedFrame.
        self.options = dataclasses.replace(options, end_after_silence_s=None)
        self.stop_timeout_s = stop_timeout_s
        self.avatar: LiveAvatar | None = None
        self._media_task: asyncio.Task | None = None
        self._open = False  # an utterance is under way (started, or audio came) and not stopped
        self._pushed = False  # the open utterance has sent audio to the avatar
        self._muted = False  # the open utterance was interrupted: drop the rest of its audio
        self._base: int | None = 0  # the avatar's shown-utterance count when _ends was reset
        self._ends = 0  # utterances ended since then
        self._shown = 0  # utterances shown to their end, as of the last batch out
        self._interrupted_at: float | None = None  # time.monotonic() of an interrupt not yet answered
        self._shown_event = asyncio.Event()
        self._context_id: str | None = None  # the TTS context of the utterance under way
        self._audio_out = 0  # speech samples pushed downstream
        self.frames_out = 0  # images pushed downstream
        self.dropped_batches = 0  # batches made before an interrupt and never shown
        self.dropped_video = 0  # images drawn by the output transport before an interrupt and never sent
        self._output: BaseOutputTransport | None = None  # the output transport downstream, once hooked
        self._fresh_image: OutputImageRawFrame | None = None  # the first image pushed after an interrupt
        self._mark_fresh = False  # the next image pushed is the first after an interrupt
        self._epoch = 0  # interruptions so far (images carry theirs: EPOCH_KEY)
        self._sweeps = 0  # images still to push that sweep stale ones out of the transport's track

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the images, px (after start)."""
        if self.avatar is None:
            raise RuntimeError("the service has not started")
        return self.avatar.size

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, frame: StartFrame):
        await super().start(frame)
        avatar = LiveAvatar(self.options)
        try:
            await avatar.start()
        except Exception as error:  # the agent keeps its voice: TTS audio then passes through
            await avatar.close()
            await self.push_error(f"facecast avatar did not start ({error}); passing the TTS audio through",
                                  exception=error)
            return
        self.avatar = avatar

    async def stop(self, frame: EndFrame):
        await super().stop(frame)
        await self._close()

    async def cancel(self, frame: CancelFrame):
        await super().cancel(frame)
        await self._close()

    async def cleanup(self):
        await super().cleanup()
        await self._close()

    async def _close(self) -> None:
        """Stop showing and close the avatar; idempotent."""
        if self._media_task is not None:
            await self.cancel_task(self._media_task)
            self._media_task = None
        avatar, self.avatar = self.avatar, None
        if avatar is not None:
            await avatar.close()

    # -- frames in ---------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            if self.avatar is not None and self._media_task is None:
                self._hook_output()
                self._media_task = self.create_task(self._show_media(), "facecast-media")
        elif direction != FrameDirection.DOWNSTREAM or self.avatar is None:
            await self.push_frame(frame, direction)
        elif isinstance(frame, (InterruptionFrame, UserStartedSpeakingFrame)):
            if self._open or self.avatar.queued_s > 0:  # else the avatar idles already
                self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSStartedFrame):
            self._open, self._muted, self._context_id = True, False, frame.context_id
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSAudioRawFrame):
            await self._speak(frame)
        elif isinstance(frame, TTSStoppedFrame):
            await self._end(frame)
        else:
            await self.push_frame(frame, direction)

    async def _speak(self, frame: TTSAudioRawFrame) -> None:
        """Give the TTS audio to the avatar (not passed on: the avatar sends its own copy)."""
        if self._muted:
            return
        self._open = True
        samples = np.frombuffer(frame.audio, "<i2").astype(np.float32) / 32768.0
        if frame.num_channels > 1:
            samples = samples.reshape(-1, frame.num_channels).mean(axis=1)
        if len(samples):
            self._pushed = True
            await self.avatar.push_audio(samples, frame.sample_rate, drop_on_interrupt=True)

    async def _end(self, frame: TTSStoppedFrame) -> None:
        """End the utterance and pass `frame` on once its last frame is out, or once the avatar has
        made no progress (its queued speech did not drop) for stop_timeout_s."""
        if self._pushed and not self._muted:
            self.avatar.end_utterance()
            self._ends += 1
            self._shown_event.clear()
            await self._wait_shown()
        self._open = self._pushed = self._muted = False
        await self.push_frame(frame)

    async def _wait_shown(self) -> None:
        queued = math.inf
        while not self._ended_shown() and self.avatar.queued_s < queued:
            queued = self.avatar.queued_s
            try:
                await asyncio.wait_for(self._shown_event.wait(), self.stop_timeout_s)
                logger.debug(f"{self}: utterance shown to its end ({self._shown} >= {self._base} + {self._ends})")
                return
            except asyncio.TimeoutError:
                continue
        if not self._ended_shown():
            logger.warning(f"{self}: the avatar made no progress for {self.stop_timeout_s:.1f} s; "
                           f"passing TTSStoppedFrame on ({self.avatar.queued_s:.2f} s of speech still queued)")

    def _interrupt(self) -> None:
        """Drop all queued speech now; batches made before are dropped as they come."""
        self._interrupted_at = time.monotonic()  # before: the session stamps its answer after this
        self._epoch += 1
        self.avatar.interrupt()
        self._base, self._ends = None, 0  # known again from the batch that answers the interrupt
        self._muted = self._open
        self._pushed = False
        self._shown_event.set()  # a held TTSStoppedFrame has nothing left to wait for

    def _hook_output(self) -> None:
        """Find the output transport downstream (the first one) and drop the images it has drawn
        but not sent once it has handled an interruption and as it takes the first image made after."""
        output = output_downstream(self)
        if output is None or output is self._output:
            return
        self._output = output

        async def after_process(transport, frame: Frame):
            if isinstance(frame, InterruptionFrame):
                self._drop_unsent(transport, "the interruption")

        async def before_push(transport, frame: Frame):
            if frame is self._fresh_image:  # drawn from now on: everything queued before it is stale
                self._fresh_image, self._sweeps = None, SWEEP_IMAGES
                self._drop_unsent(transport, "the first image after the interruption")
            elif self._sweeps > 0 and EPOCH_KEY in getattr(frame, "metadata", {}):
                # pipecat draws on its own task (through an executor): an old image it had taken up
                # just before the drop can land in the track just after it
                self._sweeps -= 1
                self._drop_unsent(transport, "a later image", only_stale=True)

        output.add_event_handler("on_after_process_frame", after_process)
        output.add_event_handler("on_before_push_frame", before_push)

    def _drop_unsent(self, output: BaseOutputTransport, when: str, only_stale: bool = False) -> None:
        """Drop the images `output` drew and has not sent but those made since the last interrupt;
        only_stale: only those known (by EPOCH_KEY) to be older than it."""
        epoch = self._epoch
        untagged = epoch if only_stale else None  # an image without the tag: kept, or dropped
        dropped = drop_unsent_video(output, keep=lambda image: image.metadata.get(EPOCH_KEY, untagged) == epoch)
        self.dropped_video += dropped
        if dropped:
            logger.debug(f"{self}: {dropped} images drawn before the interruption dropped at {when}")

    def _ended_shown(self) -> bool:
        return self._base is not None and self._shown >= self._base + self._ends

    # -- frames out --------------------------------------------------------------------------------
    async def _show_media(self) -> None:
        async for batch in self.avatar.media():
            if self._interrupted_at is not None:
                answered = batch.interrupt_at is not None and batch.interrupt_at >= self._interrupted_at
                if not answered and time.monotonic() - self._interrupted_at < INTERRUPT_WAIT_S:
                    self.dropped_batches += 1  # made for speech the interrupt dropped
                    continue
                self._interrupted_at, self._base = None, batch.utterances_shown
                self._mark_fresh = self._output is not None  # the next image is the fresh one
            await self._push_batch(batch)
            self._shown = batch.utterances_shown
            if self._ended_shown():
                self._shown_event.set()

    async def _push_batch(self, batch: MediaBatch) -> None:
        """Each frame as an RGB image (audio-synced), then, in an utterance, its audio."""
        height, width = batch.frames.shape[1:3]
        start = 0
        for i, frame in enumerate(batch.frames):
            if self._interrupted_at is not None:  # an interrupt came while this batch went out
                self.dropped_batches += 1
                return
            index = batch.first_frame + i
            image = OutputImageRawFrame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).tobytes(), (width, height), "RGB")
            image.sync_with_audio = True
            image.metadata[FRAME_KEY] = index
            image.metadata[EPOCH_KEY] = self._epoch
            if self._mark_fresh:
                self._fresh_image, self._mark_fresh = image, False
            if batch.utterance:
                image.metadata[AUDIO_KEY] = self._audio_out
            await self.push_frame(image)
            self.frames_out += 1
            end = start + frame_samples(index, batch.sample_rate, batch.fps)
            if batch.utterance:
                pcm = (np.clip(batch.pcm[start:end], -1.0, 1.0) * 32767).astype("<i2")
                await self.push_frame(TTSAudioRawFrame(pcm.tobytes(), batch.sample_rate, 1,
                                                       context_id=self._context_id))
                self._audio_out += len(pcm)
            start = end


def output_downstream(processor, *, hops: int = 100) -> BaseOutputTransport | None:
    """The first pipecat output transport after `processor` in its pipeline (following `next`), or None."""
    output = processor.next
    for _ in range(hops):
        if output is None or isinstance(output, BaseOutputTransport):
            return output
        output = output.next
    return None


def drop_unsent_video(output: BaseOutputTransport, keep=None) -> int:
    """Drop the images `output` has drawn but not yet sent to its peer (all, or those for which
    keep(image) is false; the rest stay in order); returns how many were dropped.

    Only SmallWebRTC's video track queues drawn images (unbounded, while its encoder is behind);
    another transport, or one whose peer has not connected, has none: 0.
    """
    queue = _webrtc_video_queue(output)
    if queue is None:
        return 0
    held = []
    while not queue.empty():
        held.append(queue.get_nowait())
    kept = [image for image in held if keep is not None and keep(image)]
    for image in kept:
        queue.put_nowait(image)
    return len(held) - len(kept)


def _webrtc_video_queue(output: BaseOutputTransport) -> asyncio.Queue | None:
    """The queue of images a SmallWebRTC output's video track has yet to send, or None.

    pipecat 1.14 has no public way to it: SmallWebRTCOutputTransport._client._video_output_track
    (a RawVideoTrack, None until the peer connects)._video_buffer, an asyncio.Queue of
    OutputImageRawFrame. tests/test_agents_pipecat.py fails if pipecat renames any of these.
    """
    module = sys.modules.get("pipecat.transports.smallwebrtc.transport")  # imported if output is one
    if module is None or not isinstance(output, module.SmallWebRTCOutputTransport):
        return None
    track = getattr(getattr(output, "_client", None), "_video_output_track", None)
    queue = getattr(track, "_video_buffer", None)
    return queue if isinstance(queue, asyncio.Queue) else None
