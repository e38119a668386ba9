"""The classic renderer: what changes, what must not, and mouth behaviour on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import portrait, speech
from facecast.audio.decode import load_audio
from facecast.audio.pcm import Audio
from facecast.avatar.masks import rasterize
from facecast.avatar.prepare import prepare
from facecast.config import RenderSettings
from facecast.engine import Speech, render_to_file
from facecast.idle import idle_motion
from facecast.lipsync.classic import ClassicBackend
from facecast.lipsync.classic.rig import FaceRig
from probe import decode_frames, mouth_openings, probe

SHAPES = np.array([[0, 0, 0], [0.4, 0, 0], [1, 1, 0], [0.8, -1, 1], [1, 0, 1]], np.float32)


@pytest.fixture(scope="module")
def backend():
    return ClassicBackend()


@pytest.mark.parametrize("name", ["man_glasses_01.jpg", "woman_face_near_left_edge_01.jpg",
                                  "man_head_turned_up_01.jpg", "woman_frontal_lowres_01.png"])
def test_pixels_outside_lower_face_are_untouched(backend, name):
    avatar = prepare(portrait(name))
    outside = ~rasterize(avatar.lower_face[0], avatar.frames.shape[1:3])  # the cached mask
    frames = backend.render(avatar, SHAPES, np.zeros(len(SHAPES), int))
    for frame in frames:
        np.testing.assert_array_equal(frame[outside], avatar.frames[0][outside])
    assert np.abs(frames[2].astype(int) - avatar.frames[0]).max() > 40  # the open mouth did change pixels


def test_idle_changes_only_the_head(backend):
    avatar = prepare(portrait("man_webcam_offcenter_01.jpg"))
    rig = FaceRig.from_landmarks(avatar.landmarks[0])
    x0, y0, x1, y1 = np.round(rig.head_box()).astype(int)
    outside = np.ones(avatar.frames.shape[1:3], bool)
    outside[max(0, y0 - 2): y1 + 2, max(0, x0 - 2): x1 + 2] = False
    numbers = np.arange(0, 250, 5)
    motion = idle_motion(numbers, 25)
    assert motion[:, 0].max() == pytest.approx(1.0) and motion[:, 0].min() == 0.0  # a full blink in 10 s
    frames = backend.render(avatar, np.zeros((len(numbers), 3), np.float32), np.zeros(len(numbers), int), idle=motion)
    for frame in frames:
        np.testing.assert_array_equal(frame[outside], avatar.frames[0][outside])
    moved = [np.abs(f.astype(int) - avatar.frames[0]).mean() for f in frames]
    assert max(moved) > 0.05  # the head sways


def test_blink_closes_the_eyes(backend):
    from facecast.avatar import topology as topo
    from facecast.avatar.landmarks import FaceMesher

    avatar = prepare(portrait("woman_frontal_slight_turn_01.jpg"))
    openness = []
    with FaceMesher(static=True) as mesher:
        for amount in (0.0, 1.0):
            frame = backend.render(avatar, np.zeros((1, 3), np.float32), np.zeros(1, int),
                                   idle=np.array([[amount, 0, 0, 0]], np.float32))[0]
            pts = mesher.landmarks(frame)[:, :2]
            lids = np.linalg.norm(pts[159] - pts[145]) + np.linalg.norm(pts[386] - pts[374])
            width = np.linalg.norm(pts[topo.EYE_OUTER_CORNERS[0]] - pts[topo.EYE_OUTER_CORNERS[1]])
            openness.append(lids / width)
    assert openness[1] < 0.5 * openness[0], openness


def _padded(audio: Audio, before: float, after: float) -> Audio:
    sr = audio.sample_rate
    samples = np.concatenate([np.zeros(int(before * sr), np.float32), audio.samples,
                              np.zeros(int(after * sr), np.float32)])
    return Audio(samples, sr)


@pytest.mark.parametrize("avatar_name", ["woman_frontal_slight_turn_01.jpg", "man_frontal_mouth_open_01.jpg"])
def test_mouth_closed_in_silence_and_moving_in_speech(tmp_path, avatar_name):
    audio = _padded(load_audio(speech("en_radio_address_01_8s.wav")), 1.5, 1.5)
    out = render_to_file(prepare(portrait(avatar_name)), Speech(audio), tmp_path / "out.mp4",
                         RenderSettings(idle=False))
    avatar = prepare(portrait(avatar_name))
    opening = mouth_openings(decode_frames(out))
    source_opening = mouth_openings(avatar.frames[:1])[0]
    fps = 25
    silence = np.concatenate([opening[5: int(1.3 * fps)], opening[-int(1.3 * fps):]])
    talking = opening[int(2 * fps): -int(2 * fps)]
    # Closed: as a closed-lipped face measures, or for a wide-open source mouth, 20% of it.
    limit = max(0.05, 0.2 * source_opening)
    closed = np.nanpercentile(silence, 95)  # one-frame mesh glitches are not the renderer
    assert closed < limit, f"mouth not closed in silence: {closed:.3f}"
    assert np.nanpercentile(talking, 90) > 0.08, "mouth barely opens during speech"  # closed: ~0.005
    assert np.nanstd(talking) > 0.03, "mouth does not move during speech"


def test_every_portrait_renders(tmp_path, portraits):
    audio = load_audio(speech("zh_short_01_3s.wav"))
    for path in portraits:
        out = render_to_file(prepare(path), Speech(audio), tmp_path / f"{path.stem}.mp4")
        p = probe(out)
        assert p.video_codec == "h264" and p.audio_codec == "aac", path.name
        assert abs(p.frames - audio.duration * 25) <= 1, (path.name, p.frames)


def test_every_speech_clip_gives_the_right_length(tmp_path, speech_clips):
    avatar = prepare(portrait("man_webcam_offcenter_01.jpg"))
    for clip in speech_clips:
        audio = load_audio(clip)
        out = render_to_file(avatar, Speech(audio), tmp_path / f"{clip.stem}.mp4")
        p = probe(out)
        assert abs(p.frames - audio.duration * 25) <= 1, (clip.name, p.frames, audio.duration)
        assert p.fps == pytest.approx(25)
        assert p.video_start == 0.0 and p.audio_start == pytest.approx(0.0, abs=0.03)
        assert p.audio_duration == pytest.approx(audio.duration, abs=0.1)
        assert p.size == avatar.size


def test_video_avatars_loop_and_keep_length(tmp_path, talking_clips):
    audio = load_audio(speech("en_male_02_19s.mp3"))
    for clip in talking_clips:
        avatar = prepare(clip)
        assert audio.duration * 25 > 2 * avatar.frame_count * 25 / max(avatar.fps, 1) - 10  # long enough to loop
        out = render_to_file(avatar, Speech(audio), tmp_path / f"{clip.stem}.mp4")
        p = probe(out)
        assert abs(p.frames - audio.duration * 25) <= 1, clip.name
        assert p.size == avatar.size


def _panning_clip(path, frames: int) -> None:
    """A short 25 fps video of a real portrait, the camera panning 6 px per frame, so every
    source frame differs visibly outside the face."""
    import av
    import cv2

    image = cv2.imread(str(portrait("man_webcam_offcenter_01.jpg")))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 320
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for k in range(frames):
            frame = np.ascontiguousarray(image[60:380, 40 + 6 * k: 360 + 6 * k])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_avatar_plays_forward_then_backward(tmp_path):
    import cv2

    n = 7
    _panning_clip(tmp_path / "pan.mp4", n)
    avatar = prepare(tmp_path / "pan.mp4")
    assert avatar.frame_count == n
    audio = load_audio(speech("de_01_9s.wav"))
    audio = Audio(audio.samples[: 2 * audio.sample_rate], audio.sample_rate)  # 50 frames: 4 turns
    out = decode_frames(render_to_file(avatar, Speech(audio), tmp_path / "out.mp4"))
    assert len(out) == 50
    # Compare away from every frame's lower face (the only part the mouth may change).
    keep = np.ones(avatar.frames.shape[1:3], np.uint8)
    for polygon in avatar.lower_face:
        keep[rasterize(polygon, keep.shape)] = 0
    keep = cv2.erode(keep, np.ones((9, 9), np.uint8)).astype(bool)
    sources = avatar.frames[:, keep].astype(np.float32)
    nearest = []
    for number, frame in enumerate(out):
        error = np.abs(sources - frame[keep]).mean(axis=1).mean(axis=1)  # per source frame
        best, second = np.sort(error)[:2]
        assert best < 4 and second > 2 * best, (number, error)  # one clear match, up to H.264 noise
        nearest.append(int(np.argmin(error)))
    one_trip = list(range(n)) + list(range(n - 2, 0, -1))  # 0 1 .. 6 5 .. 1, then again
    assert nearest == (one_trip * 5)[:50], nearest
    turn = n - 1
    for k in range(1, n):  # after each turn, output turn + k shows source turn - k
        assert nearest[turn + k] == turn - k


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in a 1-D bool array; (0, 0) when none."""
    best, start = (0, 0), None
    for i, flag in enumerate(np.append(flags, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            best = max(best, (start, i - start), key=lambda run: run[1])
            start = None
    return best


@pytest.mark.parametrize("name", ["woman_frontal_slight_turn_01.jpg", "man_glasses_01.jpg"])  # closed lips
def test_open_mouth_shows_a_dark_cavity_and_teeth(backend, name):
    import cv2

    from facecast.avatar import topology as topo

    avatar = prepare(portrait(name))
    closed, opened = backend.render(avatar, np.array([[0, 0, 0], [1, 0, 0]], np.float32), np.zeros(2, int))
    pts, scale = avatar.landmarks[0, :, :2], avatar.face_scale()
    lips = np.zeros(avatar.frames.shape[1:3], np.uint8)
    cv2.fillPoly(lips, [np.round(pts[topo.LIPS_OUTER]).astype(np.int32)], 1)
    lip = cv2.cvtColor(avatar.frames[0], cv2.COLOR_BGR2GRAY)[lips.astype(bool)].mean()  # the avatar's lips

    # Brightness down the middle of the mouth, from above the upper lip to the chin: per-row medians.
    x = int(round(pts[list(topo.INNER_LIP_CENTER), 0].mean()))
    half = int(0.1 * scale)
    top, bottom = int(pts[topo.LIPS_OUTER, 1].min() - 0.1 * scale), int(pts[topo.CHIN, 1])

    def profile(frame):
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[top:bottom, x - half: x + half + 1]
        return np.median(grey.astype(np.float32), axis=1)

    shut, wide = profile(closed), profile(opened)
    assert shut.min() > 0.5 * lip, "a closed mouth shows no cavity"
    start, length = _longest_run(wide < 0.35 * lip)
    assert length >= 0.05 * scale, f"no dark cavity: {length} dark rows"
    cavity = float(np.median(wide[start: start + length]))
    teeth = wide[max(0, start - int(0.06 * scale)): start]  # the band just above the cavity
    assert teeth.max() > 1.2 * lip and teeth.max() > 3 * cavity, (teeth, lip, cavity)  # brighter than the lips
    below = wide[start + length: start + length + int(0.1 * scale)]
    assert below.max() > 0.6 * lip, "the cavity is not closed by the lower lip"


# -- compositing ---------------------------------------------------------------------------

def test_one_blend_for_numpy_and_torch_and_paste_keeps_unmasked_pixels():
    torch = pytest.importorskip("torch")  # the gpu extra; the numpy half needs nothing
    from facecast.compose import blend, paste

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (6, 7, 3)).astype(np.float32)
    over = rng.uniform(-20, 280, (6, 7, 3)).astype(np.float32)  # out of range: clipped, not wrapped
    alpha = rng.uniform(0, 1, (6, 7, 1)).astype(np.float32)
    alpha[0] = 0.0
    mixed = blend(base, over, alpha)
    assert mixed.dtype == np.uint8
    np.testing.assert_array_equal(mixed[0], base[0])
    expected = np.clip(np.round(base + (over - base) * alpha), 0, 255)
    assert np.abs(mixed.astype(np.float32) - expected).max() <= 1
    on_torch = blend(torch.from_numpy(base), torch.from_numpy(over), torch.from_numpy(alpha))
    assert on_torch.dtype == torch.uint8
    np.testing.assert_array_equal(on_torch.numpy(), mixed)

    frame = rng.integers(0, 256, (10, 10, 3)).astype(np.uint8)
    before = frame.copy()
    mask = np.zeros((6, 7), np.float32)
    mask[2:4, 3:5] = 1.0
    paste(frame, over, mask, x0=-2, y0=6)  # clipped at the left and bottom edges
    changed = np.argwhere((frame != before).any(-1))
    assert len(changed) and changed[:, 0].min() >= 8 and changed[:, 1].min() >= 1 and changed[:, 1].max() <= 2
    np.testing.assert_array_equal(frame[8:10, 1:3], np.clip(np.round(over[2:4, 3:5]), 0, 255).astype(np.uint8))
