"""A fragmented MP4 (ISO BMFF) muxer for H.264 + AAC, for Media Source Extensions.

Output is one init segment (ftyp + moov, no samples) and then media segments (moof + mdat),
each holding any number of samples of both tracks. Unlike FFmpeg's mp4 muxer, a fragment is
cut exactly when the caller asks, so a live stream can send every batch of frames at once.

    init = init_segment(VideoTrack(512, 512, 25_000, sps, pps), AudioTrack(22050))
    seg = media_segment(seq, [TrackRun(1, t0, video_samples), TrackRun(2, a0, audio_samples)])

Times are integers in each track's timescale (video: VideoTrack.timescale ticks per second,
audio: the sample rate, so one AAC frame lasts 1024 ticks).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from facecast.media.probe import AAC_SAMPLE_RATES

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
MOVIE_TIMESCALE = 1000  # ticks per second of the (empty) movie header

# ISO/IEC 14496-12 sample flags: depends_on (bits 24-25) and is_non_sync_sample (bit 16).
SYNC_SAMPLE_FLAGS = 0x02000000  # depends on no other sample
NON_SYNC_SAMPLE_FLAGS = 0x01010000  # depends on others, not a sync sample

_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = 0x55C4  # ISO-639-2 "und", packed 5 bits per letter
_AAC_LC = 2  # audio object type
_HIGH_PROFILES = (100, 110, 122, 144)  # avcC carries chroma/bit-depth fields for these


@dataclass(frozen=True)
class VideoTrack:
    """An H.264 track. sps/pps: one parameter set each, without start code or length prefix."""

    width: int
    height: int
    timescale: int
    sps: bytes
    pps: bytes

    @property
    def codec(self) -> str:
        """RFC 6381 codec string, e.g. "avc1.42C01E" (profile, constraints, level from the SPS)."""
        return "avc1." + self.sps[1:4].hex().upper()


@dataclass(frozen=True)
class AudioTrack:
    """A mono or stereo AAC-LC track at `sample_rate` Hz (one of the AAC rates, <= 48000)."""

    sample_rate: int
    channels: int = 1

    codec = "mp4a.40.2"

    def audio_specific_config(self) -> bytes:
        """The 2-byte AudioSpecificConfig: object type, sampling-frequency index, channels."""
        index = AAC_SAMPLE_RATES.index(self.sample_rate)
        bits = (_AAC_LC << 11) | (index << 7) | (self.channels << 3)
        return struct.pack(">H", bits)


@dataclass(frozen=True)
class Sample:
    """One coded sample: H.264 access unit (4-byte length-prefixed NAL units) or raw AAC frame.

    duration: in the track's timescale; keyframe: a sync sample (IDR for video).
    """

    data: bytes
    duration: int
    keyframe: bool = True


@dataclass(frozen=True)
class TrackRun:
    """The samples of one track in a fragment, starting at decode time `start` (track ticks)."""

    track_id: int
    start: int
    samples: list[Sample]


def box(kind: bytes, *payload: bytes) -> bytes:
    """An ISO BMFF box: 32-bit size, 4-character type, payload."""
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    """A box with the version (8 bits) and flags (24 bits) header."""
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


# -- init segment -----------------------------------------------------------------------------

def init_segment(video: VideoTrack, audio: AudioTrack | None) -> bytes:
    """ftyp + moov describing the tracks, with no samples (they come in media segments)."""
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso6", b"avc1", b"mp41")
    traks = [_video_trak(video)] + ([_audio_trak(audio)] if audio else [])
    trexs = [_trex(VIDEO_TRACK_ID)] + ([_trex(AUDIO_TRACK_ID)] if audio else [])
    next_id = (AUDIO_TRACK_ID if audio else VIDEO_TRACK_ID) + 1
    return ftyp + box(b"moov", _mvhd(next_id), *traks, box(b"mvex", *trexs))


def _mvhd(next_track_id: int) -> bytes:
    return full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, 0),
                    struct.pack(">IH", 0x10000, 0x100), bytes(10), _MATRIX, bytes(24),
                    struct.pack(">I", next_track_id))


def _tkhd(track_id: int, volume: int, width: int, height: int) -> bytes:
    enabled_in_movie = 0x3
    return full_box(b"tkhd", 0, enabled_in_movie, struct.pack(">IIIII", 0, 0, track_id, 0, 0), bytes(8),
                    struct.pack(">hhhH", 0, 0, volume, 0), _MATRIX,
                    struct.pack(">II", width << 16, height << 16))


def _mdhd(timescale: int) -> bytes:
    return full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, _LANGUAGE_UND, 0))


def _hdlr(handler: bytes, name: str) -> bytes:
    return full_box(b"hdlr", 0, 0, struct.pack(">I", 0), handler, bytes(12), name.encode() + b"\0")


def _stbl(sample_entry: bytes) -> bytes:
    """A sample table with one sample description and no samples."""
    empty = struct.pack(">I", 0)
    return box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
               full_box(b"stts", 0, 0, empty), full_box(b"stsc", 0, 0, empty),
               full_box(b"stsz", 0, 0, empty, empty), full_box(b"stco", 0, 0, empty))


def _dinf() -> bytes:
    self_contained = 0x1
    return box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, self_contained)))


def _video_trak(video: VideoTrack) -> bytes:
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    minf = box(b"minf", vmhd, _dinf(), _stbl(_avc1(video)))
    mdia = box(b"mdia", _mdhd(video.timescale), _hdlr(b"vide", "VideoHandler"), minf)
    return box(b"trak", _tkhd(VIDEO_TRACK_ID, 0, video.width, video.height), mdia)


def _audio_trak(audio: AudioTrack) -> bytes:
    smhd = full_box(b"smhd", 0, 0, bytes(4))
    minf = box(b"minf", smhd, _dinf(), _stbl(_mp4a(audio)))
    mdia = box(b"mdia", _mdhd(audio.sample_rate), _hdlr(b"soun", "SoundHandler"), minf)
    return box(b"trak", _tkhd(AUDIO_TRACK_ID, 0x100, 0, 0), mdia)


def _avc1(video: VideoTrack) -> bytes:
    """The H.264 visual sample entry with its avcC configuration."""
    head = bytes(6) + struct.pack(">H", 1) + bytes(16)
    dims = struct.pack(">HHIIIH", video.width, video.height, 0x480000, 0x480000, 0, 1)
    tail = bytes(32) + struct.pack(">Hh", 0x18, -1)
    return box(b"avc1", head, dims, tail, _avcc(video.sps, video.pps))


def _avcc(sps: bytes, pps: bytes) -> bytes:
    """AVCDecoderConfigurationRecord: 4-byte NAL lengths, one SPS, one PPS."""
    config = struct.pack(">BBBBBB", 1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1)
    config += struct.pack(">H", len(sps)) + sps + struct.pack(">BH", 1, len(pps)) + pps
    if sps[1] in _HIGH_PROFILES:  # 4:2:0, 8-bit, no SPS extensions
        config += struct.pack(">BBBB", 0xFC | 1, 0xF8, 0xF8, 0)
    return box(b"avcC", config)


def _mp4a(audio: AudioTrack) -> bytes:
    """The AAC audio sample entry with its esds descriptor."""
    head = bytes(6) + struct.pack(">H", 1) + bytes(8)
    fields = struct.pack(">HHHHI", audio.channels, 16, 0, 0, audio.sample_rate << 16)
    return box(b"mp4a", head, fields, _esds(audio))


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 descriptor with a single-byte length (bodies here are < 128 bytes)."""
    return struct.pack(">BB", tag, len(body)) + body


def _esds(audio: AudioTrack) -> bytes:
    asc = _descriptor(0x05, audio.audio_specific_config())
    audio_stream = (0x05 << 2) | 1
    config = _descriptor(0x04, struct.pack(">BB", 0x40, audio_stream) + bytes(3) + bytes(8) + asc)
    es = _descriptor(0x03, struct.pack(">HB", 0, 0) + config + _descriptor(0x06, b"\x02"))
    return full_box(b"esds", 0, 0, es)


def _trex(track_id: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))


# -- media segments ---------------------------------------------------------------------------

def media_segment(sequence: int, runs: list[TrackRun]) -> bytes:
    """moof + mdat holding `runs` (empty runs are left out). sequence: 1, 2, ... per stream."""
    runs = [run for run in runs if run.samples]
    if not runs:
        raise ValueError("media_segment: every run is empty; a fragment needs at least one sample")
    payloads = [b"".join(s.data for s in run.samples) for run in runs]
    probe = _moof(sequence, runs, [0] * len(runs))
    offsets, at = [], len(probe) + 8
    for payload in payloads:
        offsets.append(at)
        at += len(payload)
    return _moof(sequence, runs, offsets) + box(b"mdat", *payloads)


def _moof(sequence: int, runs: list[TrackRun], data_offsets: list[int]) -> bytes:
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    return box(b"moof", mfhd, *(_traf(run, off) for run, off in zip(runs, data_offsets)))


def _traf(run: TrackRun, data_offset: int) -> bytes:
    """tfhd (base is the moof) + tfdt + trun with per-sample duration, size and flags."""
    default_base_is_moof = 0x020000
    tfhd = full_box(b"tfhd", 0, default_base_is_moof, struct.pack(">I", run.track_id))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.start))
    data_offset_present, duration_present, size_present, flags_present = 0x1, 0x100, 0x200, 0x400
    flags = data_offset_present | duration_present | size_present | flags_present
    rows = b"".join(struct.pack(">III", s.duration, len(s.data),
                                SYNC_SAMPLE_FLAGS if s.keyframe else NON_SYNC_SAMPLE_FLAGS)
                    for s in run.samples)
    trun = full_box(b"trun", 0, flags, struct.pack(">Ii", len(run.samples), data_offset), rows)
    return box(b"traf", tfhd, tfdt, trun)


# -- H.264 bitstream helpers ------------------------------------------------------------------

NAL_SPS, NAL_PPS, NAL_AUD = 7, 8, 9


def annexb_units(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream (00 00 01 / 00 00 00 01 start codes) into NAL units."""
    units, starts, i, n = [], [], 0, len(data)
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for k, start in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        unit = data[start:end].rstrip(b"\x00")  # a 4-byte start code's leading zero, trailing zeros
        if unit:
            units.append(unit)
    return units


def split_access_unit(data: bytes) -> tuple[bytes, dict[int, bytes]]:
    """Annex B access unit -> (length-prefixed sample data, {SPS/PPS type: unit} found in it).

    Parameter sets and access-unit delimiters are moved out of the sample (they live in avcC).
    """
    sample, params = [], {}
    for unit in annexb_units(data):
        kind = unit[0] & 0x1F
        if kind in (NAL_SPS, NAL_PPS):
            params.setdefault(kind, unit)
        elif kind != NAL_AUD:
            sample.append(struct.pack(">I", len(unit)) + unit)
    return b"".join(sample), params


# -- reading (tests, benchmarks, clients) ------------------------------------------------------

@dataclass(frozen=True)
class RunInfo:
    """One track's run in a moof: decode time of its first sample, per-sample durations/flags/sizes."""

    track_id: int
    start: int
    durations: list[int]
    sizes: list[int]
    flags: list[int]
    data_offset: int

    @property
    def keyframe(self) -> bool:
        return bool(self.flags) and self.flags[0] == SYNC_SAMPLE_FLAGS


def iter_boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield (type, payload start, box end) of the boxes in data[start:end]; ValueError if malformed."""
    end = len(data) if end is None else end
    at = start
    while at < end:
        if end - at < 8:
            raise ValueError(f"truncated box header at byte {at}")
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size < 8 or at + size > end:
            raise ValueError(f"box {kind!r} at byte {at} has a bad size {size}")
        yield kind, at + 8, at + size
        at += size


def read_moof(moof: bytes) -> dict[int, RunInfo]:
    """track id -> RunInfo of a moof box written by media_segment (the whole box, header included)."""
    (kind, body, end), = list(iter_boxes(moof))
    if kind != b"moof":
        raise ValueError(f"expected a moof box, got {kind!r}")
    runs = {}
    for traf_kind, t0, t1 in iter_boxes(moof, body, end):
        if traf_kind != b"traf":
            continue
        parts = {k: (a, b) for k, a, b in iter_boxes(moof, t0, t1)}
        track = struct.unpack(">I", moof[parts[b"tfhd"][0] + 4: parts[b"tfhd"][0] + 8])[0]
        start = struct.unpack(">Q", moof[parts[b"tfdt"][0] + 4: parts[b"tfdt"][0] + 12])[0]
        at = parts[b"trun"][0]
        count, offset = struct.unpack(">Ii", moof[at + 4: at + 12])
        rows = [struct.unpack(">III", moof[at + 12 + 12 * i: at + 24 + 12 * i]) for i in range(count)]
        runs[track] = RunInfo(track, start, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], offset)
    return runs


class BoxReader:
    """Split a byte stream that arrives in arbitrary chunks into whole top-level boxes."""

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """Add bytes; returns the (type, whole box bytes) completed by them, in order."""
        self._buffer += chunk
        out = []
        while len(self._buffer) >= 8:
            size, kind = struct.unpack(">I4s", self._buffer[:8])
            if size < 8:
                raise ValueError(f"box {bytes(kind)!r} has a bad size {size}")
            if len(self._buffer) < size:
                break
            out.append((bytes(kind), bytes(self._buffer[:size])))
            del self._buffer[:size]
        return out
