"""The voice-to-voice pipeline of `facecast chat`, one per browser connection.

    transport.input()  browser microphone over WebRTC (pipecat's SmallWebRTCTransport)
    VADProcessor       silero: VADUserStarted/StoppedSpeakingFrame
    stt                PocketsphinxSTTService (offline) -- or any pipecat STT service
    ChatMessages       the user's words and the VAD state to the page (data channel)
    turns / user agg.  ChatTurns (barge-in: an interruption when the user starts speaking), or with an
                       LLM pipecat's LLMContextAggregatorPair.user()
    reply              RuleResponder (offline) -- or any pipecat LLM service (OpenAI-compatible URL)
    ChatMessages       the reply's words to the page
    tts                EspeakTTSService (offline) -- or any pipecat TTS service
    avatar             FacecastVideoService: images with its own copy of the speech audio
    transport.output() back to the browser: audio + video (+ data channel messages)

`build_pipeline(transport, options, stt=, tts=, llm=)` takes any pipecat services in place of the
defaults; `ChatOptions` (the CLI's flags) builds them otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, Frame, InterruptionFrame, LLMFullResponseEndFrame, LLMFullResponseStartFrame,
                                   LLMTextFrame, OutputTransportMessageUrgentFrame, TranscriptionFrame,
                                   UserStartedSpeakingFrame, UserStoppedSpeakingFrame, VADUserStartedSpeakingFrame,
                                   VADUserStoppedSpeakingFrame)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from facecast.errors import InvalidArgument

IN_RATE = 16_000  # Hz: microphone audio into the pipeline (silero and pocketsphinx both want 16 kHz)
OUT_RATE = 24_000  # Hz: speech out of the TTS and the avatar
SYSTEM_PROMPT = ("You are the face and voice of facecast, a talking avatar that runs on the user's computer. "
                 "Answer in one or two short spoken sentences, without lists or markup.")


@dataclass(frozen=True)
class ChatOptions:
    """What one conversation is made of (the CLI's flags).

    avatar / backend / backend_options / size / fps: the avatar (agents.avatar.AvatarOptions); None
    avatar is the built-in astronaut. show_avatar=False leaves the avatar out (TTS audio straight to
    the browser: the baseline of the latency benchmark). voice / rate_wpm: espeak-ng's. vad_start_s /
    vad_stop_s: speech (s) before the VAD says the user started (two of Silero's 32 ms windows: it
    is most of the barge-in time), silence (s) before it says they stopped. vad_min_volume: pipecat's
    loudness gate (0..1 over -110..-10 LUFS), off by default: it smooths a 0.4 s loudness window, so
    after silence even a loud voice took 0.1 s longer to pass its default 0.6, a quiet one 0.3-1 s;
    Silero's confidence alone ignores noise (set it to ignore faint background voices).
    llm_url / llm_model / llm_api_key: an OpenAI-compatible endpoint instead of the rule responder
    (only contacted when given). system_prompt: the LLM's instructions.
    """

    avatar: str | None = None
    backend: str = "classic"
    backend_options: dict = field(default_factory=dict)
    size: int | None = 512
    fps: int = 25
    show_avatar: bool = True
    voice: str = "en"
    rate_wpm: int = 165
    vad_start_s: float = 0.064
    vad_stop_s: float = 0.5
    vad_min_volume: float = 0.0
    llm_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    system_prompt: str = SYSTEM_PROMPT

    def __post_init__(self) -> None:
        if not 0.03 <= self.vad_start_s <= 2.0:
            raise InvalidArgument(f"vad_start_s={self.vad_start_s!r}: give 0.03..2 s")
        if not 0.0 <= self.vad_min_volume <= 1.0:
            raise InvalidArgument(f"vad_min_volume={self.vad_min_volume!r}: give 0..1")
        if not 0.1 <= self.vad_stop_s <= 5.0:
            raise InvalidArgument(f"vad_stop_s={self.vad_stop_s!r}: give 0.1..5 s")
        if self.llm_url is not None and not self.llm_model:
            raise InvalidArgument(f"llm_url={self.llm_url!r} needs llm_model (the model's name at that endpoint)")


class ChatTurns(FrameProcessor):
    """Turn-taking without an LLM context: the VAD's start becomes UserStartedSpeakingFrame and an
    interruption (barge-in: the TTS, the avatar and the output drop what they hold), its stop
    UserStoppedSpeakingFrame. Every frame passes through."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self.broadcast_frame(UserStartedSpeakingFrame)
            await self.broadcast_interruption()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self.broadcast_frame(UserStoppedSpeakingFrame)


class ChatMessages(FrameProcessor):
    """Tells the page what happens, as data-channel messages {"type": "chat", ...}: role "user" sends
    the VAD state ({"event": "speaking"|"stopped"}) and transcripts ({"event": "transcript"}); role
    "avatar" sends each reply's text once it is complete ({"event": "reply"}), interruptions, and when
    the output transport starts and stops sending the reply's speech ({"event": "talking"|"done"})."""

    def __init__(self, role: str, **kwargs):
        super().__init__(**kwargs)
        if role not in ("user", "avatar"):
            raise InvalidArgument(f"role={role!r}: give 'user' or 'avatar'")
        self.role = role
        self._reply: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            if self.role == "avatar" and isinstance(frame, (BotStartedSpeakingFrame, BotStoppedSpeakingFrame)):
                await self._send(event="talking" if isinstance(frame, BotStartedSpeakingFrame) else "done")
            return
        if self.role == "user":
            if isinstance(frame, VADUserStartedSpeakingFrame):
                await self._send(event="speaking")
            elif isinstance(frame, VADUserStoppedSpeakingFrame):
                await self._send(event="stopped")
            elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
                await self._send(event="transcript", text=frame.text.strip())
            return
        if isinstance(frame, LLMFullResponseStartFrame):
            self._reply = []
        elif isinstance(frame, LLMTextFrame):
            self._reply.append(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame) and self._reply:
            await self._send(event="reply", text="".join(self._reply).strip())
            self._reply = []
        elif isinstance(frame, InterruptionFrame):
            await self._send(event="interrupted")

    async def _send(self, **message) -> None:
        message = {"type": "chat", "role": self.role, "t": time.time(), **message}
        await self.push_frame(OutputTransportMessageUrgentFrame(message=message))


def make_vad_analyzer(options: ChatOptions) -> SileroVADAnalyzer:
    """Silero VAD (its ONNX model ships with pipecat) at 16 kHz, with options' start, stop and gate."""
    params = VADParams(start_secs=options.vad_start_s, stop_secs=options.vad_stop_s,
                       min_volume=options.vad_min_volume)
    return SileroVADAnalyzer(sample_rate=IN_RATE, params=params)


def make_vad(options: ChatOptions) -> VADProcessor:
    """The pipeline's VAD stage around make_vad_analyzer."""
    return VADProcessor(vad_analyzer=make_vad_analyzer(options))


def make_stt(options: ChatOptions):
    from facecast.agents.pocketsphinx_stt import PocketsphinxSTTService

    return PocketsphinxSTTService()


def make_tts(options: ChatOptions):
    from facecast.agents.pipecat_tts import EspeakTTSService

    return EspeakTTSService(voice=options.voice, rate_wpm=options.rate_wpm)


def make_llm(options: ChatOptions):
    """pipecat's OpenAI LLM service on options.llm_url (any OpenAI-compatible server: llama.cpp,
    vLLM, Ollama, ...); None without llm_url. Constructing it contacts nothing."""
    if options.llm_url is None:
        return None
    from pipecat.services.openai.llm import OpenAILLMService

    api_key = options.llm_api_key or os.environ.get("OPENAI_API_KEY") or "none"
    return OpenAILLMService(api_key=api_key, base_url=options.llm_url,
                            settings=OpenAILLMService.Settings(model=options.llm_model))


def make_avatar(options: ChatOptions):
    """FacecastVideoService for options' avatar; None when show_avatar is off."""
    if not options.show_avatar:
        return None
    from facecast.agents.avatar import AvatarOptions
    from facecast.agents.pipecat import FacecastVideoService

    avatar = AvatarOptions(avatar=options.avatar, backend=options.backend, backend_options=options.backend_options,
                           size=options.size, fps=options.fps, sample_rate=OUT_RATE)
    return FacecastVideoService(avatar)


@dataclass
class ChatPipeline:
    """The pipeline and its named stages (for observers such as chat.timeline.Timeline)."""

    pipeline: Pipeline
    vad: FrameProcessor
    stt: FrameProcessor
    reply: FrameProcessor  # the RuleResponder or the LLM service
    tts: FrameProcessor
    avatar: FrameProcessor | None
    output: FrameProcessor


def build_pipeline(transport, options: ChatOptions = ChatOptions(), *, stt=None, llm=None, tts=None,
                   avatar=None) -> ChatPipeline:
    """The conversation's pipeline on `transport` (a pipecat BaseTransport). stt / llm / tts /
    avatar: pipecat services to use instead of the ones `options` describes (llm: anything that turns
    an LLMContext into LLM text frames; with it, turns are pipecat's LLM context aggregators')."""
    stt = stt or make_stt(options)
    tts = tts or make_tts(options)
    llm = llm or make_llm(options)
    avatar = avatar or make_avatar(options)
    if llm is None:
        from facecast.chat.responder import RuleResponder

        reply = RuleResponder()
        middle, tail = [ChatTurns(), reply], []
    else:
        reply = llm
        middle, tail = _llm_stages(llm, options)
    vad = make_vad(options)
    stages = [transport.input(), vad, stt, ChatMessages("user"), *middle, ChatMessages("avatar"), tts]
    if avatar is not None:
        stages.append(avatar)
    output = transport.output()
    return ChatPipeline(Pipeline([*stages, output, *tail]), vad=vad, stt=stt, reply=reply, tts=tts, avatar=avatar,
                        output=output)


def _llm_stages(llm, options: ChatOptions) -> tuple[list, list]:
    """([user aggregator, llm], [assistant aggregator]): pipecat's LLM context, with turns that start
    on the VAD (interrupting the avatar) and stop after the VAD's silence plus the transcript."""
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (LLMContextAggregatorPair,
                                                                       LLMUserAggregatorParams)
    from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
    from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import SpeechTimeoutUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    context = LLMContext(messages=[{"role": "system", "content": options.system_prompt}])
    strategies = UserTurnStrategies(start=[VADUserTurnStartStrategy()],
                                    stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2)])
    pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(user_turn_strategies=strategies))
    return [pair.user(), llm], [pair.assistant()]
