"""The default reply of `facecast chat`: a few rules instead of a language model.

`RuleResponder` stands where an LLM service would: it takes the user's final TranscriptionFrame and
answers with LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame, the frames an LLM
service streams, so the TTS after it (which splits the text into sentences) cannot tell the
difference. It greets, says what it is and what it can do, and otherwise repeats what it heard.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from pipecat.frames.frames import (Frame, LLMFullResponseEndFrame, LLMFullResponseStartFrame, LLMTextFrame,
                                   TranscriptionFrame)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

GREETING = "Hello! I am the facecast avatar. Ask me who I am, or what I can do."
HINT = ("I am a talking avatar running right here on this computer. "
        "Ask me how I am, who I am, or what I can do.")  # after an echo: what it understands


@dataclass(frozen=True)
class Rule:
    """Reply `answer` when any of `keys` (lower-case regexes) matches the words heard."""

    keys: tuple[str, ...]
    answer: str


RULES = (
    Rule((r"\bhow are you\b", r"\bare you doing\b", r"\bdoing today\b"),
         "I am fine, thank you. I run right here on this computer, so I never get tired, "
         "and I never need the network. Ask me what I can do."),
    Rule((r"\byour name\b", r"\bwho are you\b", r"\bwhat are you\b"),
         "I am facecast, a talking avatar. I turn speech into a moving face, right here on your computer."),
    Rule((r"\bwhat can you do\b", r"\bwhat do you do\b", r"\bhelp\b"),
         "I listen to you, I answer, and my face moves with my voice. "
         "You can interrupt me at any time by speaking."),
    Rule((r"\bhello\b", r"\bhi\b", r"\bhey\b", r"\bgood (morning|afternoon|evening)\b"), GREETING),
    Rule((r"\b(bye|goodbye)\b",), "Goodbye! It was nice talking to you."),
    Rule((r"\bthank", ), "You are welcome."),
)


def reply_to(heard: str) -> str:
    """The answer to the words `heard` (a transcript): the first matching rule, else an echo."""
    words = " ".join(re.findall(r"[a-z']+", heard.lower()))
    if not words:
        return "Sorry, I did not catch that."
    for rule in RULES:
        if any(re.search(key, words) for key in rule.keys):
            return rule.answer
    return f"You said: {words}. {HINT}"


class RuleResponder(FrameProcessor):
    """TranscriptionFrame (final) in, an LLM-shaped text reply out; every frame passes through.
    `last_reply_s`: how long the last reply took to make (s), for latency breakdowns."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.last_reply_s: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and frame.text.strip():
            started = time.perf_counter()
            answer = reply_to(frame.text)
            self.last_reply_s = time.perf_counter() - started
            await self.push_frame(LLMFullResponseStartFrame())
            await self.push_frame(LLMTextFrame(answer))
            await self.push_frame(LLMFullResponseEndFrame())
