"""Whisper encoder states of speech: log-mel spectrogram and every encoder layer's output, in torch.

Whisper reads 30 s windows (480000 samples at 16 kHz -> 3000 mel frames -> 1500 states); shorter
audio is zero-padded to 30 s, longer audio is cut into consecutive 30 s segments, as MuseTalk
does. The states kept are the embedding output, the inputs of layers 2..L and the final
layer-normed output: L + 1 states of width d_model per 20 ms (5 x 384 for whisper-tiny).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from facecast.lipsync.musetalk.windows import SAMPLES_PER_STATE, WHISPER_RATE, state_count

N_FFT = 400  # samples: 25 ms analysis window
HOP = 160  # samples: 10 ms mel hop
SEGMENT_SECONDS = 30
SEGMENT_SAMPLES = SEGMENT_SECONDS * WHISPER_RATE  # 480000
SEGMENT_STATES = SEGMENT_SAMPLES // SAMPLES_PER_STATE  # 1500
LOG_FLOOR = 1e-10  # power floor before log10
DYNAMIC_RANGE = 8.0  # log10 units kept below each window's peak


class WhisperStates:
    """Encoder states of 16 kHz speech from a (transformers) WhisperEncoder.

    encoder: transformers' WhisperEncoder (conv1, conv2, embed_positions, layers, layer_norm),
             already on its device and in its dtype
    mel_filters: (N_FFT // 2 + 1, n_mels) float mel filter bank (WhisperFeatureExtractor.mel_filters)
    """

    def __init__(self, encoder: torch.nn.Module, mel_filters: np.ndarray):
        self.encoder = encoder.eval()
        param = next(encoder.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.filters = torch.as_tensor(np.asarray(mel_filters, np.float32).T, device=self.device)  # (n_mels, n_freq)
        self.window = torch.hann_window(N_FFT, device=self.device)
        self.width = int(encoder.layer_norm.normalized_shape[0])
        self.depth = len(encoder.layers) + 1  # states per whisper frame
        self._layer_takes_head_mask = "layer_head_mask" in inspect.signature(encoder.layers[0].forward).parameters

    # -- whole clips -------------------------------------------------------------
    @torch.inference_mode()
    def clip_states(self, samples: np.ndarray) -> np.ndarray:
        """States of a whole clip: samples (N,) float32 at 16 kHz -> (ceil(N / 320), depth, width) float32."""
        n = len(samples)
        segments = max(1, -(-n // SEGMENT_SAMPLES))
        padded = np.zeros(segments * SEGMENT_SAMPLES, np.float32)
        padded[:n] = samples
        audio = torch.from_numpy(padded.reshape(segments, SEGMENT_SAMPLES)).to(self.device)
        states = self.encode(self.log_mel(audio))  # (S, 1500, depth, width)
        return states.reshape(-1, self.depth, self.width)[: state_count(n)].float().cpu().numpy()

    @torch.inference_mode()
    def segment_states(self, samples: np.ndarray) -> np.ndarray:
        """States of one segment's audio so far (zero-padded to 30 s):
        samples (n <= 480000,) float32 -> (ceil(n / 320), depth, width) float32."""
        padded = np.zeros(SEGMENT_SAMPLES, np.float32)
        padded[: len(samples)] = samples[:SEGMENT_SAMPLES]
        audio = torch.from_numpy(padded).to(self.device)[None]
        states = self.encode(self.log_mel(audio))[0, : state_count(min(len(samples), SEGMENT_SAMPLES))]
        return states.float().cpu().numpy()

    # -- the two stages ----------------------------------------------------------
    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Whisper's log-mel input: audio (S, 480000) float32 -> (S, n_mels, 3000) float32.

        Power spectrum of a periodic Hann STFT (centred, reflect-padded), mel filter bank, log10
        floored at 1e-10 and at 8 below each segment's peak, then (x + 4) / 4.
        """
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2  # (S, n_freq, 3000)
        log_spec = torch.clamp(self.filters @ power, min=LOG_FLOOR).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - DYNAMIC_RANGE)
        return (log_spec + 4.0) / 4.0

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Every encoder state: mel (S, n_mels, 3000) -> (S, 1500, depth, width) in the encoder's dtype."""
        enc = self.encoder
        x = F.gelu(enc.conv1(mel.to(self.dtype)))
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        states = [x]
        for layer in enc.layers:
            out = layer(x, None, layer_head_mask=None) if self._layer_takes_head_mask else layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
            states.append(x)
        states[-1] = enc.layer_norm(x)
        return torch.stack(states, dim=2)
