"""The parts of `facecast chat` without a browser: pocketsphinx on a spoken WAV (the STT service in
a pipecat pipeline), the rule-based responder, espeak-ng as a pipecat TTS service, the pipeline's
assembly with and without an LLM (never contacted), and the CLI's flags. The browser end to end is
in test_chat.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("pipecat")
pytest.importorskip("pocketsphinx")

from pipecat.frames.frames import (InterruptionFrame, LLMFullResponseEndFrame, LLMFullResponseStartFrame,
                                   LLMTextFrame, OutputTransportMessageUrgentFrame, TranscriptionFrame,
                                   TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame,
                                   UserStartedSpeakingFrame, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)
from pipecat.tests.utils import run_test

from audio_testdata import fresh_espeak

from facecast.agents.pocketsphinx_stt import SAMPLE_RATE, PocketsphinxSTTService, load_decoder, transcribe
from facecast.audio.resampling import resample
from facecast.audio.tts import synthesize
from facecast.chat.pipeline import ChatMessages, ChatOptions, ChatTurns, build_pipeline, make_llm
from facecast.chat.responder import GREETING, RuleResponder, reply_to
from facecast.errors import InvalidArgument

QUESTION = "How are you doing today?"  # pocketsphinx hears espeak-ng's en-us voice saying this (nearly) word for word


def heard_the_question(text: str) -> bool:
    """Robust words of QUESTION in a transcript (pocketsphinx sometimes drops or swaps "how")."""
    words = set(text.split())
    return "you" in words and bool(words & {"doing", "today"})


def spoken_pcm(text: str, pad_s: float = 0.3) -> bytes:
    """16-bit mono PCM at 16 kHz of espeak-ng (en-us, 150 wpm) saying `text`, padded with silence."""
    samples = resample(*fresh_espeak(text, voice="en-us", rate_wpm=150), SAMPLE_RATE)
    pad = np.zeros(int(pad_s * SAMPLE_RATE), np.float32)
    return (np.concatenate([pad, samples, pad]) * 0.8 * 32767).astype(np.int16).tobytes()


def test_pocketsphinx_hears_the_question():
    text = transcribe(load_decoder(), spoken_pcm(QUESTION))
    assert heard_the_question(text), text


def test_stt_service_transcribes_a_vad_segment():
    from pipecat.frames.frames import InputAudioRawFrame

    pcm = spoken_pcm(QUESTION)
    chunk = SAMPLE_RATE // 50 * 2  # 20 ms
    audio = [InputAudioRawFrame(audio=pcm[i:i + chunk], sample_rate=SAMPLE_RATE, num_channels=1)
             for i in range(0, len(pcm), chunk)]
    stt = PocketsphinxSTTService()
    down, _ = asyncio.run(run_test(stt, frames_to_send=[VADUserStartedSpeakingFrame(), *audio,
                                                         VADUserStoppedSpeakingFrame()]))
    transcripts = [f for f in down if isinstance(f, TranscriptionFrame)]
    assert len(transcripts) == 1, [type(f).__name__ for f in down][-5:]
    assert heard_the_question(transcripts[0].text), transcripts[0].text
    assert stt.last_decode_s is not None and stt.last_decode_s > 0


@pytest.mark.parametrize("heard, expected", [
    ("hello", GREETING),
    ("oh hi there", GREETING),
    ("how are you doing today", "I am fine"),
    ("are you doing today", "I am fine"),
    ("doing today", "I am fine"),
    ("what is your name", "I am facecast"),
    ("who are you", "I am facecast"),
    ("what can you do", "I listen to you"),
    ("goodbye", "Goodbye"),
    ("the cat sat on the mat", "You said: the cat sat on the mat. I am a talking avatar"),
    ("", "Sorry"),
    ("?!", "Sorry"),
])
def test_responder_rules(heard, expected):
    assert reply_to(heard).startswith(expected)


def test_responder_answers_like_an_llm():
    down, _ = asyncio.run(run_test(RuleResponder(), frames_to_send=[
        TranscriptionFrame("how are you doing today", "", "2026-01-01T00:00:00Z")]))
    kinds = [type(f) for f in down]
    assert kinds == [TranscriptionFrame, LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame], kinds
    assert down[2].text.startswith("I am fine")


def test_turns_interrupt_when_the_user_starts_speaking():
    down, up = asyncio.run(run_test(ChatTurns(), frames_to_send=[VADUserStartedSpeakingFrame()]))
    assert any(isinstance(f, InterruptionFrame) for f in down)
    assert any(isinstance(f, UserStartedSpeakingFrame) for f in down)
    assert any(isinstance(f, InterruptionFrame) for f in up)  # upstream too: the TTS before it stops


def test_messages_carry_the_transcript_and_the_reply():
    down, _ = asyncio.run(run_test(ChatMessages("user"), frames_to_send=[
        VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame(),
        TranscriptionFrame("how are you", "", "2026-01-01T00:00:00Z")]))
    sent = [f.message for f in down if isinstance(f, OutputTransportMessageUrgentFrame)]
    assert [m["event"] for m in sent] == ["speaking", "stopped", "transcript"]
    assert sent[-1]["text"] == "how are you" and sent[-1]["role"] == "user"
    down, _ = asyncio.run(run_test(ChatMessages("avatar"), frames_to_send=[
        LLMFullResponseStartFrame(), LLMTextFrame("I am "), LLMTextFrame("fine."), LLMFullResponseEndFrame()]))
    sent = [f.message for f in down if isinstance(f, OutputTransportMessageUrgentFrame)]
    assert [(m["event"], m["text"]) for m in sent] == [("reply", "I am fine.")]


def test_espeak_tts_service_speaks_a_sentence():
    from facecast.agents.pipecat_tts import EspeakTTSService

    from pipecat.pipeline.worker import PipelineParams

    down, _ = asyncio.run(run_test(EspeakTTSService(), frames_to_send=[TTSSpeakFrame("Hello there.")],
                                   pipeline_params=PipelineParams(audio_out_sample_rate=24_000)))
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert audio and all(f.sample_rate == 24_000 for f in audio)
    seconds = sum(len(f.audio) for f in audio) / 2 / 24_000
    assert 0.4 < seconds < 3.0, seconds
    kinds = [type(f) for f in down]
    assert kinds.index(TTSStartedFrame) < kinds.index(TTSAudioRawFrame) < kinds.index(TTSStoppedFrame)


class _FakeTransport:
    """Just enough of a pipecat transport for build_pipeline: input() and output() processors."""

    def __init__(self):
        from pipecat.processors.frame_processor import FrameProcessor

        self._input, self._output = FrameProcessor(name="in"), FrameProcessor(name="out")

    def input(self):
        return self._input

    def output(self):
        return self._output


def test_pipeline_without_avatar_has_the_offline_stages():
    chat = build_pipeline(_FakeTransport(), ChatOptions(show_avatar=False))
    names = [type(p).__name__ for p in chat.pipeline.processors]
    for name in ("VADProcessor", "PocketsphinxSTTService", "ChatTurns", "RuleResponder", "EspeakTTSService"):
        assert name in names, names
    assert chat.avatar is None


def test_the_avatar_finds_the_webrtc_output_to_drop_its_unsent_images_at_an_interruption():
    pytest.importorskip("aiortc")
    from pipecat.transports.base_transport import TransportParams
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
    from support.pipecat_media import PeerlessConnection

    from facecast.agents.pipecat import FacecastVideoService, output_downstream

    for options in (ChatOptions(), ChatOptions(llm_url="http://127.0.0.1:9/v1", llm_model="tiny")):
        transport = SmallWebRTCTransport(PeerlessConnection(), TransportParams(video_out_enabled=True))
        chat = build_pipeline(transport, options)
        assert isinstance(chat.avatar, FacecastVideoService)
        assert output_downstream(chat.avatar) is chat.output is transport.output()
    assert output_downstream(chat.output) is None


def test_pipeline_with_an_llm_url_uses_openai_and_context_aggregators():
    options = ChatOptions(show_avatar=False, llm_url="http://127.0.0.1:9/v1", llm_model="tiny")
    chat = build_pipeline(_FakeTransport(), options)  # constructed only: nothing listens on port 9
    names = [type(p).__name__ for p in chat.pipeline.processors]
    assert "OpenAILLMService" in names and "RuleResponder" not in names, names
    assert "LLMUserAggregator" in names and "LLMAssistantAggregator" in names, names
    assert make_llm(ChatOptions()) is None


def test_options_are_checked():
    with pytest.raises(InvalidArgument, match="llm_model"):
        ChatOptions(llm_url="http://127.0.0.1:8080/v1")
    with pytest.raises(InvalidArgument, match="vad_stop_s"):
        ChatOptions(vad_stop_s=0.0)
    with pytest.raises(InvalidArgument, match="vad_start_s"):
        ChatOptions(vad_start_s=0.01)
    with pytest.raises(InvalidArgument, match="vad_min_volume"):
        ChatOptions(vad_min_volume=1.5)


@pytest.mark.parametrize("gain", [1.0, 0.1])
def test_the_vad_hears_a_barge_in_within_150_ms_loud_or_quiet(gain):
    """The default VAD says the user speaks at most 150 ms into their speech, also at -20 dB (a
    quiet microphone; pipecat's default loudness gate held even the loud one back by 0.1 s after
    silence, the quiet one by 0.3 s, so the default turns it off): barge-in is the VAD
    plus the audio's trip, and the issue's bar for both is 200 ms. 20 ms chunks, as from WebRTC."""
    from pipecat.audio.vad.vad_analyzer import VADState

    from facecast.chat.pipeline import make_vad_analyzer

    speech = synthesize("Hello there, how are you doing today?")
    x = resample(speech.audio.samples, speech.audio.sample_rate, SAMPLE_RATE)
    x = x[int(np.argmax(np.abs(x) > 0.02)):] * gain  # from the first audible sample
    pcm = (np.concatenate([np.zeros(SAMPLE_RATE, np.float32), x]) * 32767).astype(np.int16)
    analyzer = make_vad_analyzer(ChatOptions())
    analyzer.set_sample_rate(SAMPLE_RATE)

    async def speaking_after_ms() -> float | None:
        for i in range(0, len(pcm), 320):
            if await analyzer.analyze_audio(pcm[i:i + 320].tobytes()) == VADState.SPEAKING:
                return (i + 320) * 1000 / SAMPLE_RATE - 1000
        return None

    heard = asyncio.run(speaking_after_ms())
    assert heard is not None and 0 <= heard <= 150, heard


def test_cli_registers_chat():
    from facecast.cli import build_parser

    args = build_parser().parse_args(["chat", "--port", "0", "--llm-url", "http://x/v1", "--llm-model", "m"])
    assert args.command == "chat" and args.llm_url == "http://x/v1" and args.port == 0
