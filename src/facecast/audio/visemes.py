"""espeak phoneme mnemonics -> mouth targets, and timed phonemes -> a smooth per-frame mouth track.

A mouth target is (open, width, round): open in [0, 1] (0 = lips closed), width in [-1, 1]
(negative = narrow/protruded, positive = spread), round in [0, 1].

Co-articulation follows the dominance model of Cohen & Massaro (1993): every phoneme pulls the
mouth toward its target with a weight that rises before the phoneme (anticipation) and falls after
it; lip-critical sounds (p b m, f v, w, rounded vowels) pull harder than tongue consonants, whose
lip shape is mostly borrowed from the neighbouring vowels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from facecast.audio.tts import PhonemeEvent
from facecast.errors import InvalidArgument

CLOSED = (0.0, 0.0, 0.0)
NEUTRAL = (0.3, 0.0, 0.0)

# Vowels. espeak's ASCII (Kirshenbaum-like) names; length marks and nasality are stripped first.
_VOWELS = {
    "a": (0.95, 0.2, 0.0), "A": (1.0, 0.0, 0.1), "&": (0.85, 0.45, 0.0), "a#": (0.7, 0.1, 0.0),
    "V": (0.65, 0.1, 0.0), "0": (0.8, -0.3, 0.45), "O": (0.7, -0.45, 0.65),
    "E": (0.6, 0.5, 0.0), "e": (0.4, 0.6, 0.0), "I": (0.3, 0.6, 0.0), "i": (0.2, 0.8, 0.0),
    "@": (0.35, 0.05, 0.0), "3": (0.35, 0.0, 0.1), "@-": (0.3, 0.05, 0.0), "a2": (0.6, 0.1, 0.0),
    "o": (0.45, -0.65, 0.85), "U": (0.25, -0.6, 0.75), "u": (0.2, -0.85, 1.0),
    "y": (0.2, -0.75, 0.95), "Y": (0.35, -0.6, 0.8), "W": (0.5, -0.45, 0.65),
    "i#": (0.2, 0.3, 0.0), "u#": (0.2, -0.3, 0.5), "o-": (0.45, -0.4, 0.6), "e#": (0.35, 0.2, 0.0),
}
# Consonants, by place of articulation.
_CONSONANTS = {
    **dict.fromkeys(["p", "b", "m"], CLOSED),  # bilabial: lips shut
    **dict.fromkeys(["f", "v", "F"], (0.05, 0.1, 0.0)),  # labiodental: lower lip on the teeth
    **dict.fromkeys(["T", "D"], (0.15, 0.2, 0.0)),  # dental: tongue between the teeth
    **dict.fromkeys(["s", "z", "ts", "dz"], (0.1, 0.4, 0.0)),  # sibilant: teeth close, spread
    **dict.fromkeys(["S", "Z", "tS", "dZ", "s\\", "z\\", "t_s\\"], (0.12, -0.4, 0.6)),  # protruded
    **dict.fromkeys(["t", "d", "n", "l", "L", "n^", "l^"], (0.2, 0.2, 0.0)),  # alveolar
    **dict.fromkeys(["r", "R", "r-", "*", "@r"], (0.2, -0.3, 0.4)),
    **dict.fromkeys(["k", "g", "N", "x", "Q", "G", "q"], (0.3, 0.1, 0.0)),  # velar / uvular
    **dict.fromkeys(["C", "c", "J", "j", ";"], (0.15, 0.6, 0.0)),  # palatal
    **dict.fromkeys(["h", "?", "H"], (0.4, 0.0, 0.0)),  # glottal: lips take the next vowel
    "w": (0.1, -0.9, 1.0),  # labio-velar approximant (espeak's W is the vowel [œ])
}
# How strongly each class pulls the lips (dominance magnitude, unitless).
_DOMINANCE = {
    "bilabial": 8.0, "labiodental": 4.0, "rounded": 1.5, "vowel": 1.0, "silence": 1.5,
    "lingual": 0.35,
}
_DIPHTHONGS = {
    "aI": ("a", "I"), "aU": ("a", "U"), "eI": ("e", "I"), "oU": ("o", "U"), "OI": ("O", "I"),
    "@U": ("@", "U"), "i@": ("i", "@"), "e@": ("e", "@"), "U@": ("U", "@"), "au": ("a", "u"),
    "ai": ("a", "i"), "ei": ("e", "i"), "oi": ("o", "i"), "Oy": ("O", "y"), "aI@": ("a", "@"),
    "aU@": ("a", "@"), "I@": ("I", "@"), "ui": ("u", "i"), "eU": ("e", "U"),
    "A@": ("A", "@"), "O@": ("O", "@"), "o@": ("o", "@"), "aI3": ("a", "3"),
}
_MARKS = "'\",%=:~;!-.^"  # stress, length, nasality and similar marks around a base symbol
ANTICIPATION_S = 0.05  # 50 ms: lips start toward a phoneme this long before it sounds
SILENCE_SETTLE_S = 0.08  # 80 ms into a pause, the mouth is shut exactly
REACH_S = 8 * ANTICIPATION_S  # s: a phoneme's dominance is counted this far before and after it


def is_silence(name: str) -> bool:
    """True for espeak's pause mnemonics ("_", "_:", "_!", "_|", ...) and the empty name."""
    return name == "" or name.startswith("_")


def mouth_target(name: str) -> tuple[float, float, float]:
    """(open, width, round) for one espeak phoneme mnemonic; unknown names fall back sensibly."""
    if is_silence(name):
        return CLOSED
    base = _base(name)
    for table in (_VOWELS, _CONSONANTS):
        if base in table:
            return table[base]
    if base in _DIPHTHONGS:
        return _VOWELS[_DIPHTHONGS[base][0]]
    for key in (base[:2], base[:1]):  # fallback: longest known prefix
        for table in (_VOWELS, _CONSONANTS):
            if key in table:
                return table[key]
    return NEUTRAL


def phonemes_to_track(phonemes: Sequence[PhonemeEvent], n_frames: int, fps: float) -> np.ndarray:
    """Per-frame mouth parameters from timed phonemes, with co-articulation.

    phonemes: events with start/end in seconds. Frame f is sampled at its centre, (f + 0.5) / fps.
    Returns (n_frames, 3) float32: [open 0..1, width -1..1, round 0..1]; pauses give exactly 0.
    Each phoneme weighs only the frames within REACH_S of it (its dominance has fallen below
    exp(-REACH_S / ANTICIPATION_S) ** 2 past that), so time and memory grow linearly with the text.
    """
    if n_frames < 0 or not fps > 0:
        raise InvalidArgument(f"phonemes_to_track: bad n_frames={n_frames} or fps={fps}")
    t = (np.arange(n_frames) + 0.5) / fps
    segments = _segments(phonemes)
    if not segments or n_frames == 0:
        return np.zeros((n_frames, 3), np.float32)
    total = np.zeros(n_frames, np.float64)  # sum of weights per frame
    blend = np.zeros((n_frames, 3), np.float64)  # weighted sum of targets per frame
    for g in segments:
        lo, hi = _frames_between(t, g.start - REACH_S, g.end + REACH_S)
        w = _dominance(t[lo:hi], g.start, g.end, g.weight)
        total[lo:hi] += w
        blend[lo:hi] += w[:, None] * np.asarray(g.target, np.float64)
    track = blend / np.maximum(total, 1e-9)[:, None]
    track[_settled_silence(t, segments)] = 0.0
    track[_inside_lip_closure(t, segments), 0] = 0.0
    return _clip(track)


def _frames_between(t: np.ndarray, start: float, end: float) -> tuple[int, int]:
    """[lo, hi): the frames whose centre time t (sorted, s) satisfies start < t < end."""
    return int(np.searchsorted(t, start, side="right")), int(np.searchsorted(t, end, side="left"))


def _base(name: str) -> str:
    """Strip stress/length/nasal marks: "'a:" -> "a", "O~" -> "O", "@-" stays (it is a name)."""
    if name in _VOWELS or name in _CONSONANTS or name in _DIPHTHONGS:
        return name
    stripped = name.strip(_MARKS)
    return stripped or name[:1]


def _class(name: str) -> str:
    """Dominance class of a mnemonic."""
    if is_silence(name):
        return "silence"
    target = mouth_target(name)
    if target == CLOSED:
        return "bilabial"
    if target == _CONSONANTS["f"]:
        return "labiodental"
    if target[2] >= 0.6:
        return "rounded"
    return "lingual" if _base(name) in _CONSONANTS else "vowel"


class _Segment(NamedTuple):
    start: float  # s
    end: float  # s
    target: tuple[float, float, float]
    weight: float  # dominance magnitude
    kind: str  # a key of _DOMINANCE


def _segments(phonemes: Sequence[PhonemeEvent]) -> list[_Segment]:
    """Events in time order -> segments; a diphthong becomes two halves."""
    out = []
    for ev in sorted(phonemes, key=lambda p: p.start):
        start, end = float(ev.start), max(float(ev.end), float(ev.start))
        base = _base(ev.name)
        if base in _DIPHTHONGS and end > start:
            mid, (first, second) = 0.5 * (start + end), _DIPHTHONGS[base]
            weight = _DOMINANCE["vowel"]
            out.append(_Segment(start, mid, _VOWELS[first], weight, "vowel"))
            out.append(_Segment(mid, end, _VOWELS[second], weight, "vowel"))
        else:
            kind = _class(ev.name)
            out.append(_Segment(start, end, mouth_target(ev.name), _DOMINANCE[kind], kind))
    return out


def _dominance(t: np.ndarray, start: float, end: float, weight: float) -> np.ndarray:
    """(F,) weight of one phoneme: flat inside it, Gaussian flanks, a longer one before it."""
    before = np.clip(start - t, 0.0, None) / ANTICIPATION_S
    after = np.clip(t - end, 0.0, None) / (0.5 * ANTICIPATION_S)
    return weight * (np.exp(-(before**2) - after**2) + 1e-6)


def _settled_silence(t: np.ndarray, segments: list[_Segment]) -> np.ndarray:
    """(F,) bool: frames at least SILENCE_SETTLE_S away from every sounding phoneme."""
    near = np.zeros(t.shape, bool)
    for g in segments:
        if g.kind != "silence":
            lo, hi = _frames_between(t, g.start - SILENCE_SETTLE_S, g.end + SILENCE_SETTLE_S)
            near[lo:hi] = True
    return ~near


def _inside_lip_closure(t: np.ndarray, segments: list[_Segment]) -> np.ndarray:
    """(F,) bool: frames whose centre falls inside a bilabial (p, b, m): the lips are shut."""
    inside = np.zeros(t.shape, bool)
    for g in segments:
        if g.kind == "bilabial":
            lo = int(np.searchsorted(t, g.start, side="left"))  # t >= start
            hi = int(np.searchsorted(t, g.end, side="left"))  # t < end
            inside[lo:hi] = True
    return inside


def _clip(track: np.ndarray) -> np.ndarray:
    out = track.astype(np.float32)
    out[:, 0] = np.clip(out[:, 0], 0.0, 1.0)
    out[:, 1] = np.clip(out[:, 1], -1.0, 1.0)
    out[:, 2] = np.clip(out[:, 2], 0.0, 1.0)
    return out
