"""Where the time of a voice-to-voice turn goes, as the pipeline sees it (wall-clock seconds,
time.time(), comparable with a browser's Date.now() on the same machine).

`Timeline` is a pipecat observer: it stamps, for each user turn, the moment each stage pushed its
first frame of that turn. `Turn.stages()` turns the stamps into durations:

    vad       speech end -> VADUserStoppedSpeakingFrame (the VAD's stop_secs of silence)
    stt       -> TranscriptionFrame
    reply     -> the reply's first text frame (responder or LLM)
    tts       -> the first TTSAudioRawFrame
    avatar    -> the avatar's first speech audio out (its frames come with it); absent without one
    output    -> BotStartedSpeakingFrame from the output transport (the first reply audio written)

The end of speech is the VAD's stop minus its stop_secs (the VAD stops after that much silence).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipecat.frames.frames import (BotStartedSpeakingFrame, LLMTextFrame, OutputAudioRawFrame, TranscriptionFrame,
                                   TTSAudioRawFrame, VADUserStoppedSpeakingFrame)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection

STAGES = ("vad", "stt", "reply", "tts", "avatar", "output")
MAX_TURNS = 200  # turns a timeline keeps


@dataclass
class Turn:
    """Wall-clock stamps (s) of one turn; None until seen."""

    speech_end: float
    marks: dict[str, float] = field(default_factory=dict)

    def stages(self) -> dict[str, float]:
        """{stage: seconds it took} for the stages seen, in pipeline order, plus "total" (speech end
        -> the last stage seen)."""
        out, last = {}, self.speech_end
        for name in STAGES:
            if name in self.marks:
                out[name] = self.marks[name] - last
                last = self.marks[name]
        out["total"] = last - self.speech_end
        return out

    def as_dict(self) -> dict:
        return {"speech_end": self.speech_end, "marks": dict(self.marks), "stages": self.stages()}


class Timeline(BaseObserver):
    """Stamps each turn's stages (see the module doc) from the frames the pipeline's stages push.
    vad_stop_s: the VAD's stop_secs. chat: a chat.pipeline.ChatPipeline."""

    def __init__(self, chat, vad_stop_s: float, **kwargs):
        super().__init__(**kwargs)
        self.chat = chat
        self.vad_stop_s = vad_stop_s
        self.turns: list[Turn] = []

    async def on_push_frame(self, data: FramePushed):
        frame, source, chat = data.frame, data.source, self.chat
        if data.direction != FrameDirection.DOWNSTREAM and not isinstance(frame, BotStartedSpeakingFrame):
            return  # broadcast frames go both ways: count each once
        now = time.time()
        if isinstance(frame, VADUserStoppedSpeakingFrame) and source is chat.vad:
            self.turns.append(Turn(speech_end=now - self.vad_stop_s, marks={"vad": now}))
            del self.turns[:-MAX_TURNS]
            return
        if not self.turns:
            return
        if isinstance(frame, TranscriptionFrame) and source is chat.stt:
            self._mark("stt", now, after=None)
        elif isinstance(frame, LLMTextFrame) and source is chat.reply:
            self._mark("reply", now, after="stt")
        elif isinstance(frame, TTSAudioRawFrame) and source is chat.tts:
            self._mark("tts", now, after="reply")
        elif isinstance(frame, OutputAudioRawFrame) and chat.avatar is not None and source is chat.avatar:
            self._mark("avatar", now, after="tts")
        elif isinstance(frame, BotStartedSpeakingFrame) and source is chat.output:
            self._mark("output", now, after="avatar" if chat.avatar is not None else "tts")

    def _mark(self, stage: str, now: float, after: str | None) -> None:
        turn = self.turns[-1]
        if stage in turn.marks or (after is not None and after not in turn.marks):
            return
        turn.marks[stage] = now
