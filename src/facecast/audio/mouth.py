"""Language-independent mouth motion from the speech audio itself, offline or live.

Per 10 ms hop (audio/features.py):
  open  = articulation level x first-formant opening, inside voice activity.
          The articulation level is the 1.5-5 kHz band (where an open mouth radiates; a closed
          mouth - nasal murmur, voiced closure - leaves it empty) relative to the utterance's
          peak, over a fixed 30 dB range, so loud and quiet recordings give the same range.
          F1 rises with jaw opening: about 250 Hz for close vowels (i, u), 850 Hz for open (a).
  width = F2 against the speaker's median F2 (robust z-score): front vowels (i, e: high F2) spread
          the lips, back rounded ones (u, o: low F2) narrow them; round is its negative part.
Then co-articulation: an asymmetric Gaussian over hops (50 ms, 80 ms of lookahead so onsets lead
the sound; 40 ms for live streams, where every hop of lookahead is latency), and a gate that shuts
the mouth exactly (all zeros) 20 ms after voice activity ends.
Video frame f takes the value at its centre, (f + 0.5) / fps.
"""

from __future__ import annotations

import numpy as np

from facecast.audio import features as ft
from facecast.audio.mouth_norm import VAD_MIN_LEVEL_DB, VAD_SNR_DB, Normaliser, level_and_jaw, noise_floor
from facecast.audio.pcm import Audio
from facecast.audio.resampling import StreamResampler, resample
from facecast.errors import InvalidArgument
from facecast.growing import Growing

FLOOR_RISE_DB_PER_S = 3.0  # a live noise-floor estimate falls at once but rises this slowly
SMOOTH_SIGMA_HOPS = 5  # 50 ms co-articulation
LOOKAHEAD_HOPS = 8  # 80 ms: how far ahead the mouth anticipates the sound
LIVE_LOOKAHEAD_HOPS = 4  # 40 ms for live streams: it is waited for (lip sync vs real lips: r 0.551 vs 0.563)
MEMORY_HOPS = 15  # 150 ms of past the smoother looks at
HANGOVER_HOPS = 2  # 20 ms: the mouth is shut this long after speech ends
STATS_WINDOW_HOPS = 3000  # 30 s of history for the live normaliser
REFIT_HOPS = 10  # the live normaliser is refitted every 100 ms of audio ...
EAGER_REFIT_HOPS = 200  # ... and at every push while it has seen less than 2 s (its priors move fast)


def mouth_track(audio: Audio, fps: int, lookahead: int = LOOKAHEAD_HOPS) -> np.ndarray:
    """Mouth parameters per video frame of `audio`.

    Returns (audio.frame_count(fps), 3) float32 columns [open 0..1, width -1..1, round 0..1].
    Frames more than HANGOVER_HOPS (20 ms) after, and `lookahead` hops (80 ms) before, any voice
    activity are exactly 0.
    """
    _check_fps(fps)
    x = resample(audio.samples, audio.sample_rate, ft.ANALYSIS_RATE)
    n_hops = len(x) // ft.HOP + 1
    feats = ft.hop_features(ft.frame_signal(np.pad(x, (ft.WIN // 2, 0)), n_hops))
    raw, vad = raw_targets(feats, Normaliser.fit(feats))
    track = coarticulate(raw, vad, lookahead)
    return sample_frames(track, np.arange(audio.frame_count(fps)), fps)


def raw_targets(feats: ft.HopFeatures, norm: Normaliser) -> tuple[np.ndarray, np.ndarray]:
    """Instantaneous mouth targets per hop: ((T, 3) float64 [open, width, round], (T,) bool VAD)."""
    vad = feats.speech_db > norm.vad_threshold_db
    level, jaw = level_and_jaw(feats, norm.articulation_peak_db)
    opening = np.minimum(level * jaw * vad / norm.open_ref, 1.0)
    spread = np.tanh(0.5 * (feats.f2_hz - norm.f2_center_hz) / norm.f2_scale_hz)
    spread = np.where(feats.f2_hz > 0, spread, 0.0) * vad
    raw = np.stack([opening, spread, np.clip(-spread, 0.0, None)], axis=1)
    return raw, vad


def smoothing_kernel(lookahead: int = LOOKAHEAD_HOPS) -> np.ndarray:
    """(MEMORY_HOPS + 1 + lookahead,) weights summing to 1, oldest hop first."""
    offsets = np.arange(-MEMORY_HOPS, lookahead + 1)
    weights = np.exp(-0.5 * (offsets / SMOOTH_SIGMA_HOPS) ** 2)
    return weights / weights.sum()


def coarticulate(raw: np.ndarray, vad: np.ndarray, lookahead: int = LOOKAHEAD_HOPS) -> np.ndarray:
    """Smooth and gate a whole utterance: raw (T, 3), vad (T,) -> (T, 3); silence past both ends."""
    padded = np.pad(raw, ((MEMORY_HOPS, lookahead), (0, 0)))
    gate = np.pad(vad, (HANGOVER_HOPS, lookahead))
    return _smooth_gate(padded, gate, len(raw), lookahead)


def _smooth_gate(raw: np.ndarray, vad: np.ndarray, n_out: int, lookahead: int) -> np.ndarray:
    """Core of coarticulate on pre-padded context.

    raw: (MEMORY_HOPS + n_out + lookahead, 3); vad: (HANGOVER_HOPS + n_out + lookahead,).
    Output hop i uses raw rows i .. i + MEMORY + lookahead and vad i .. i + HANGOVER + lookahead.
    """
    kernel = smoothing_kernel(lookahead)
    windows = np.lib.stride_tricks.sliding_window_view(raw, len(kernel), axis=0)[:n_out]
    smooth = windows @ kernel  # (n_out, 3)
    near_speech = np.lib.stride_tricks.sliding_window_view(
        vad, HANGOVER_HOPS + 1 + lookahead
    )[:n_out].any(axis=1)
    return smooth * near_speech[:, None]


def sample_frames(
    track: np.ndarray, frames: np.ndarray, fps: int, first_hop: int = 0
) -> np.ndarray:
    """Values of a hop track at video-frame centres.

    track: (T, 3) for hops first_hop .. first_hop + T - 1 (hop k is at k * 10 ms).
    frames: (K,) int frame indices. Returns (K, 3) float32, clipped to the parameter ranges;
    frames beyond the track are silent (0).
    """
    pos = (np.asarray(frames) + 0.5) / fps / ft.HOP_S - first_hop
    out = np.zeros((len(pos), 3))
    if len(track):
        for c in range(3):
            out[:, c] = np.interp(pos, np.arange(len(track)), track[:, c], left=0.0, right=0.0)
    out[:, 0] = np.clip(out[:, 0], 0.0, 1.0)
    out[:, 1] = np.clip(out[:, 1], -1.0, 1.0)
    out[:, 2] = np.clip(out[:, 2], 0.0, 1.0)
    return out.astype(np.float32)


def _check_fps(fps: int) -> None:
    if not isinstance(fps, (int, np.integer)) or not 1 <= fps <= 240:
        raise InvalidArgument(f"fps: must be an integer frame rate in 1..240, got {fps!r}")


class MouthStream:
    """Live version of mouth_track: push PCM chunks, get the mouth of every finished video frame.

    Same analysis as mouth_track with `lookahead` hops (default 80 ms) of lookahead; the normaliser
    runs on the last STATS_WINDOW_HOPS (30 s) of history, so levels adapt as the stream goes on,
    and the first second leans on priors. It is refitted every REFIT_HOPS (100 ms) of audio, at every push
    in the first EAGER_REFIT_HOPS (2 s) and at the first hop loud enough to be speech, so a push costs
    about the same whatever its size (a 20 ms chunk does not pay for fitting 30 s of history).
    Frame f is returned once the audio up to about its end plus lookahead + 5 ms has been pushed
    (plus a few samples of resampler delay when sample_rate != 16 kHz).
    """

    def __init__(self, sample_rate: int, fps: int, lookahead: int = LOOKAHEAD_HOPS) -> None:
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise InvalidArgument(
                f"sample_rate: must be a positive integer in Hz, got {sample_rate!r}"
            )
        _check_fps(fps)
        if not isinstance(lookahead, (int, np.integer)) or not 0 <= lookahead <= MEMORY_HOPS:
            raise InvalidArgument(f"lookahead: must be 0..{MEMORY_HOPS} hops of 10 ms, got {lookahead!r}")
        self.sample_rate, self.fps, self.lookahead = int(sample_rate), int(fps), int(lookahead)
        self._resampler = StreamResampler(self.sample_rate, ft.ANALYSIS_RATE)
        self.forget_levels()
        self.reset()

    def forget_levels(self) -> None:
        """Forget the speaker's levels learnt so far (history, noise floor, normaliser): a new voice."""
        self._history = Growing(np.zeros((0, len(ft.HopFeatures.__dataclass_fields__))), np.float64)
        self._norm: Normaliser | None = None  # fitted on the history ...
        self._since_fit = 0  # ... this many hops ago
        self._floor_db = np.inf  # tracked noise floor of the speech band

    def reset(self) -> None:
        """Drop the utterance in progress (an interrupt): the next push starts a new one at time 0.

        The levels learnt from earlier utterances are kept (the same voice, the same microphone),
        so the next utterance's first frames are judged against them, not against priors.
        """
        self._resampler.reset()
        self._pcm = np.zeros(ft.WIN // 2, np.float32)  # 16 kHz, starts at the next hop's window
        self._raw = np.zeros((MEMORY_HOPS, 3))  # row MEMORY_HOPS is hop self._done
        self._vad = np.zeros(HANGOVER_HOPS, bool)  # entry HANGOVER_HOPS is hop self._done
        self._done = 0  # hops whose final (smoothed, gated) value is known
        self._track = np.zeros((0, 3))  # final values of hops self._track_start ...
        self._track_start = 0
        self._samples_in = 0
        self._frames_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples (n,) float32 mono at sample_rate -> (K, 3) float32 rows of frames now done."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples_in += samples.size
        self._analyse(self._resampler.push(samples))
        return self._emit(limit=None)

    def flush(self) -> np.ndarray:
        """End of an utterance: (K, 3) rows for its remaining frames, up to frame_count of its input.

        The stream is reset afterwards, ready for the next utterance (keeping the levels learnt).
        """
        self._analyse(self._resampler.flush())
        self._analyse(np.zeros((self.lookahead + 2) * ft.HOP + ft.WIN, np.float32), learn=False)
        total = max(1, int(round(self._samples_in * self.fps / self.sample_rate)))
        out = self._emit(limit=total)
        missing = total - self._frames_out
        if missing > 0:  # only when the input was shorter than the analysis window
            out = np.concatenate([out, np.zeros((missing, 3), np.float32)])
        self.reset()
        return out

    def _analyse(self, pcm16: np.ndarray, learn: bool = True) -> None:
        """Features, raw targets and final values for every hop the new audio completes.

        learn: the hops enter the level history (not the padding that ends an utterance).
        After a refit, the hops still waiting for their lookahead are judged again with the new
        normaliser: at a cold start, the first hops of speech (heard before the normaliser had seen
        enough of it to call it speech) then still open the mouth.
        """
        self._pcm = np.concatenate([self._pcm, pcm16])
        n_new = (len(self._pcm) - ft.WIN) // ft.HOP + 1
        if n_new <= 0:
            return
        feats = ft.hop_features(ft.frame_signal(self._pcm, n_new))
        self._pcm = self._pcm[n_new * ft.HOP :]
        before = self._norm
        norm = self._normaliser(feats) if learn else self._norm or Normaliser.fit(feats)
        pending = len(self._raw) - MEMORY_HOPS  # hops analysed, not final yet
        if norm is not before and pending > 0 and len(self._history) >= pending + n_new:
            rows = self._history.array[-(pending + n_new):-n_new]
            self._raw[MEMORY_HOPS:], self._vad[HANGOVER_HOPS:] = raw_targets(ft.HopFeatures(*rows.T), norm)
        raw, vad = raw_targets(feats, norm)
        self._raw = np.concatenate([self._raw, raw])
        self._vad = np.concatenate([self._vad, vad])
        self._finalise()

    def _normaliser(self, feats: ft.HopFeatures) -> Normaliser:
        """Remember `feats` (n hops) in the history; the normaliser for them (refitted when due)."""
        self._history.append(np.stack([getattr(feats, name) for name in ft.HopFeatures.__dataclass_fields__], 1))
        self._history.keep_last(STATS_WINDOW_HOPS)
        n = len(feats)
        self._since_fit += n
        due = self._norm is None or self._since_fit >= REFIT_HOPS or len(self._history) < EAGER_REFIT_HOPS
        if not due and not np.isfinite(self._norm.vad_threshold_db):  # no speech heard yet: refit at its onset
            due = bool(np.any(feats.speech_db > max(self._floor_db + VAD_SNR_DB, VAD_MIN_LEVEL_DB)))
        if due:
            history = ft.HopFeatures(*self._history.array.T)
            rise = FLOOR_RISE_DB_PER_S * self._since_fit * ft.HOP_S
            self._floor_db = min(noise_floor(history.speech_db), self._floor_db + rise)
            self._norm = Normaliser.fit(history, floor_db=self._floor_db)
            self._since_fit = 0
        return self._norm

    def _finalise(self) -> None:
        """Smooth and gate the hops whose lookahead has arrived."""
        n_out = len(self._raw) - MEMORY_HOPS - self.lookahead
        if n_out <= 0:
            return
        final = _smooth_gate(self._raw, self._vad, n_out, self.lookahead)
        self._raw = self._raw[n_out:]
        self._vad = self._vad[n_out:]
        self._done += n_out
        self._track = np.concatenate([self._track, final])

    def _emit(self, limit: int | None) -> np.ndarray:
        """Rows for consecutive frames whose two neighbouring hops are final (at most `limit`)."""
        first = self._frames_out
        last = first
        while limit is None or last < limit:
            right_hop = int(np.floor((last + 0.5) / self.fps / ft.HOP_S)) + 1
            if right_hop >= self._done:
                break
            last += 1
        frames = np.arange(first, last)
        out = sample_frames(self._track, frames, self.fps, first_hop=self._track_start)
        self._frames_out = last
        self._drop_used_track()
        return out

    def _drop_used_track(self) -> None:
        """Keep only the hops the next frame can still need."""
        next_left = int(np.floor((self._frames_out + 0.5) / self.fps / ft.HOP_S))
        drop = min(max(0, next_left - self._track_start), len(self._track))
        self._track = self._track[drop:]
        self._track_start += drop
