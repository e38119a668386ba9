"""Live portrait core on real media: filters, pose fit, mesh warp, driver motion, retargeting."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from conftest import portrait, talking
from facecast.avatar import topology as topo
from facecast.errors import InvalidArgument
from facecast.portrait.animator import PortraitAnimator
from facecast.portrait.driver import (EYE_PAIRS, DriverMotion, DriverTracker, FilterSettings, closed_estimate,
                                     eye_openness, lip_gap)
from facecast.portrait.filters import OneEuroFilter
from facecast.portrait.mesh_warp import MeshWarp
from facecast.portrait.pose import BROW_LOWER, euler_deg, fit_similarity, rotation_from_euler, skull_indices
from facecast.portrait.renderer import PortraitRenderer
from facecast.portrait.source import load_avatar, still_of
from facecast.avatar.face_frame import FaceFrame
from facecast.face.warp import WarpGrid
from probe import mouth_openings


def driver_frames(name: str, limit: int, size: int = 480) -> list[np.ndarray]:
    """The first `limit` frames of a talking clip, (size, size, 3) uint8 BGR."""
    out = []
    with av.open(str(talking(name))) as c:
        for frame in c.decode(video=0):
            out.append(cv2.resize(frame.to_ndarray(format="bgr24"), (size, size), interpolation=cv2.INTER_AREA))
            if len(out) == limit:
                break
    return out


@pytest.fixture(scope="module")
def woman():
    return still_of(load_avatar(portrait("woman_frontal_slight_turn_01.jpg")), 512)


@pytest.fixture(scope="module")
def renderer(woman):
    return PortraitRenderer(woman.frame, woman.mesh)


def rest_motion(mesh: np.ndarray, **changes) -> DriverMotion:
    fields = dict(angles=np.zeros(3), shift=np.zeros(2), scale=1.0, offsets=np.zeros((468, 3)),
                  eyes=np.ones(2), reference=mesh.astype(np.float64))
    fields.update(changes)
    return DriverMotion(**fields)


def face_of(image: np.ndarray) -> np.ndarray:
    from facecast.avatar.landmarks import FaceMesher

    with FaceMesher(static=True) as mesher:
        pts = mesher.landmarks(image)
    assert pts is not None, "no face found in the rendered frame"
    return pts


def nose_offset(pts: np.ndarray) -> float:
    """Nose tip across from the eye-corner midpoint, in eye distances (> 0: toward image-right)."""
    a, b = pts[topo.EYE_OUTER_CORNERS[0], :2], pts[topo.EYE_OUTER_CORNERS[1], :2]
    across = (b - a) / np.linalg.norm(b - a)
    return float((pts[topo.NOSE_TIP, :2] - (a + b) / 2) @ across / np.linalg.norm(b - a))


# -- building blocks --------------------------------------------------------------------------

def test_one_euro_filter_removes_jitter_at_rest_and_keeps_up_with_fast_moves():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.1)
    t = np.arange(200) / 30.0
    noisy = 5.0 + rng.normal(0, 0.2, size=t.size)
    still = np.array([f(x, ti) for x, ti in zip(noisy, t)])
    assert still[30:].std() < 0.45 * noisy[30:].std()
    step = np.where(t < 1.0, 0.0, 20.0)  # a fast head turn: 20 units at once
    first = int(np.argmax(t >= 1.0))
    f.reset()
    adaptive = np.array([f(x, ti) for x, ti in zip(step, t)])
    plain = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)  # a fixed low-pass with the same rest cutoff
    fixed = np.array([plain(x, ti) for x, ti in zip(step, t)])
    assert adaptive[first + 1] > 0.85 * 20.0  # one frame later it is (nearly) there
    assert fixed[first + 1] < 0.5 * 20.0  # a fixed low-pass would lag


def test_one_euro_filter_validates_settings():
    with pytest.raises(ValueError, match="min_cutoff_hz"):
        OneEuroFilter(min_cutoff_hz=0.0)


def test_similarity_fit_recovers_rotation_scale_and_shift():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(80, 3)) * 40
    rot = rotation_from_euler([12.0, -7.0, 4.0])
    dst = 1.2 * src @ rot.T + [3.0, -5.0, 8.0]
    fit = fit_similarity(src, dst)
    np.testing.assert_allclose(euler_deg(fit.rotation), [12.0, -7.0, 4.0], atol=1e-6)
    assert fit.scale == pytest.approx(1.2)
    np.testing.assert_allclose(fit.invert(dst), src, atol=1e-9)


def test_mesh_warp_is_exact_for_an_affine_motion():
    rng = np.random.default_rng(2)
    src = np.concatenate([rng.uniform(30, 170, (40, 2)), [[-4, -4], [204, -4], [204, 204], [-4, 204]]])
    face = FaceFrame(np.zeros(2), np.array([1.0, 0.0]), np.array([0.0, 1.0]), 1.0)
    warp = MeshWarp(src, WarpGrid.over(np.array([0, 0, 199, 199.0]), (200, 200), face))
    matrix, shift = np.array([[1.04, 0.03], [-0.02, 0.95]]), np.array([2.0, -1.5])
    field = warp.field(src @ matrix.T + shift, np.zeros(len(src)))  # every point, corners too
    xy = np.stack(np.meshgrid(np.arange(200.0), np.arange(200.0)), axis=-1)
    expected = xy - (xy - shift) @ np.linalg.inv(matrix).T  # output x shows source x - D(x)
    inner = (slice(10, 190), slice(10, 190))
    np.testing.assert_allclose(field[inner], expected[inner], atol=1e-3)
    assert not warp.field(src, np.zeros(len(src))).any()  # nothing moved: no displacement


# -- the driver ---------------------------------------------------------------------------------

def test_driver_tracker_validates_its_mode():
    with pytest.raises(InvalidArgument, match="mode='sideways'"):
        DriverTracker("sideways")
    with pytest.raises(InvalidArgument, match="absolute"):
        DriverTracker("absolute")


def test_closed_estimate_closes_an_open_mouth():
    avatar = still_of(load_avatar(portrait("man_frontal_mouth_open_01.jpg")))
    mesh = avatar.mesh[:468].astype(np.float64)
    assert lip_gap(mesh, avatar.mesh) > 0.1 * np.linalg.norm(mesh[33, :2] - mesh[263, :2])
    assert abs(lip_gap(closed_estimate(mesh, avatar.mesh), avatar.mesh)) < 1e-6


def test_driver_motion_is_zero_on_the_neutral_frame_and_sees_a_real_head_turn():
    from facecast.avatar.landmarks import FaceMesher

    frames = driver_frames("woman_glasses_5s.mp4", 122)
    tracker = DriverTracker()
    yaws, noses = [], []
    with FaceMesher(static=False) as mesher:
        for i, frame in enumerate(frames):
            pts = mesher.landmarks(frame)
            motion = tracker.update(pts, i / 25)
            if i == 0:
                np.testing.assert_allclose(motion.angles, 0.0, atol=1e-6)
                np.testing.assert_allclose(motion.eyes, 1.0, atol=1e-6)
            yaws.append(motion.angles[0])
            noses.append(nose_offset(pts))
    assert np.ptp(yaws) > 8.0  # this speaker turns her head
    assert np.corrcoef(yaws, noses)[0, 1] < -0.8  # yaw > 0 turns the nose toward image-left


# -- rendering ------------------------------------------------------------------------------------

def test_rest_leaves_the_avatar_as_it_is(woman, renderer):
    np.testing.assert_array_equal(renderer.render(None), woman.frame)
    still = renderer.render(rest_motion(woman.mesh))
    assert np.abs(still.astype(int) - woman.frame).max() <= 2


def test_background_outside_the_head_never_moves(woman, renderer):
    motion = rest_motion(woman.mesh, angles=np.array([25.0, 12.0, -15.0]), shift=np.array([0.2, -0.1]),
                         scale=1.15, eyes=np.zeros(2))
    out = renderer.render(motion)
    head = np.zeros(woman.frame.shape[:2], np.uint8)
    cv2.fillPoly(head, [np.round(cv2.convexHull(renderer.retarget.rings.still.astype(np.float32))).astype(np.int32)], 1)
    outside = cv2.dilate(head, np.ones((5, 5), np.uint8)) == 0
    assert outside.mean() > 0.1
    np.testing.assert_array_equal(out[outside], woman.frame[outside])
    assert np.abs(out.astype(int) - woman.frame).max() > 60  # while the head did move


def test_head_turn_and_roll_show_in_the_rendered_face(woman, renderer):
    rest = face_of(woman.frame)
    left = face_of(renderer.render(rest_motion(woman.mesh, angles=np.array([15.0, 0.0, 0.0]))))
    right = face_of(renderer.render(rest_motion(woman.mesh, angles=np.array([-15.0, 0.0, 0.0]))))
    assert nose_offset(left) < nose_offset(rest) - 0.04 < nose_offset(right) - 0.08
    rolled = face_of(renderer.render(rest_motion(woman.mesh, angles=np.array([0.0, 0.0, 10.0]))))

    def eye_angle(p):
        d = p[263, :2] - p[33, :2]
        return np.degrees(np.arctan2(d[1], d[0]))

    assert eye_angle(rolled) - eye_angle(rest) == pytest.approx(10.0, abs=2.5)


def test_driver_angles_add_to_a_tilted_avatars_own_angles(woman):
    """A nod of the driver is a nod of the avatar even when the avatar's head is tilted and
    turned relative to the driver's reference (its Euler angles add, nothing leaks into yaw)."""
    from facecast.portrait.retarget import Retargeter

    retarget = Retargeter(woman.mesh)
    mesh = retarget.mesh
    tilt = rotation_from_euler([10.0, 0.0, 20.0])  # the driver's reference: the avatar turned and tilted
    reference = (mesh - retarget.pivot) @ tilt.T + retarget.pivot
    own = euler_deg(fit_similarity(reference[retarget.skull], mesh[retarget.skull]).rotation)
    for angles in ([0.0, 0.0, 0.0], [0.0, 12.0, 0.0], [8.0, -5.0, 6.0]):
        motion = rest_motion(reference, angles=np.array(angles))
        moved = retarget.head_motion(mesh[:468], motion)
        pose = fit_similarity(reference[:468], moved).rotation  # the avatar's new pose vs. the reference
        np.testing.assert_allclose(euler_deg(pose), own + angles, atol=1e-6)
    assert np.abs(own).max() > 5.0

def test_eyes_close_and_mouth_opens(woman, renderer):
    rest = face_of(woman.frame)
    half = face_of(renderer.render(rest_motion(woman.mesh, eyes=np.full(2, 0.5))))
    closed = face_of(renderer.render(rest_motion(woman.mesh, eyes=np.zeros(2))))
    # the face mesh never sees lids fully meet; a closed eye reads about 0.65 of an open one
    assert (eye_openness(closed) < eye_openness(half)).all() and (eye_openness(half) < eye_openness(rest)).all()
    assert (eye_openness(closed) < 0.75 * eye_openness(rest)).all()
    offsets = np.zeros((468, 3))
    below = FaceFrame.from_landmarks(woman.mesh).to_face(woman.mesh[:468, :2])[:, 1] > 0.0
    offsets[below, 1] = 0.12 * np.linalg.norm(woman.mesh[33, :2] - woman.mesh[263, :2])  # jaw drop
    opened = renderer.render(rest_motion(woman.mesh, offsets=offsets))
    gaps = mouth_openings(np.stack([woman.frame, opened]))
    assert gaps[1] > gaps[0] + 0.06


def test_animation_follows_a_real_driver(woman):
    frames = driver_frames("woman_glasses_5s.mp4", 90)
    outs = []
    with PortraitAnimator(woman) as animator:
        for i, frame in enumerate(frames):
            result = animator.animate(frame, i / 25)
            assert result.face_found
            outs.append(result.image)
    driver_gap, render_gap = mouth_openings(np.stack(frames)), mouth_openings(np.stack(outs))
    assert np.corrcoef(driver_gap, render_gap)[0, 1] > 0.8
    driver_nose = [nose_offset(face_of(f)) for f in frames[::3]]
    render_nose = [nose_offset(face_of(f)) for f in outs[::3]]
    assert np.corrcoef(driver_nose, render_nose)[0, 1] > 0.8


def test_absolute_mode_on_the_avatars_own_face_is_near_rest(woman):
    with PortraitAnimator(woman, mode="absolute") as animator:
        result = animator.animate(woman.frame, 0.0)
    assert np.abs(result.motion.angles).max() < 3.0
    assert np.abs(result.image.astype(np.int16) - woman.frame).mean() < 2.0


def test_no_face_holds_the_last_pose_and_reset_takes_a_new_neutral(woman):
    frames = driver_frames("man_suit_6s.mp4", 40)
    blank = np.full_like(frames[0], 128)
    with PortraitAnimator(woman) as animator:
        first = animator.animate(blank, 0.0)
        assert not first.face_found and first.motion is None
        np.testing.assert_array_equal(first.image, woman.frame)  # no driver yet: at rest
        last = None
        for i, frame in enumerate(frames):
            last = animator.animate(frame, 0.04 * (i + 1))
        held = animator.animate(blank, 2.0)
        assert not held.face_found
        np.testing.assert_array_equal(held.image, last.image)
        animator.reset()
        fresh = animator.animate(frames[-1], 2.1)
        assert np.abs(fresh.image.astype(np.int16) - woman.frame).mean() < 2.0
        assert np.abs(last.image.astype(np.int16) - woman.frame).mean() > np.abs(
            fresh.image.astype(np.int16) - woman.frame).mean()


# -- motion transfer from a real driver mesh, modified synthetically ------------------------------

HOLD_FRAMES = 20  # frames (30 fps) a modified driver mesh is held, so the filters settle
BROWS = np.unique(np.concatenate([topo.BROW_L, topo.BROW_R, BROW_LOWER]))
LIPS = np.unique(np.concatenate([topo.LIPS_OUTER, topo.LIPS_INNER_UPPER, topo.LIPS_INNER_LOWER]))


@pytest.fixture(scope="module")
def driver_mesh() -> np.ndarray:
    """A real driver's neutral face: the (478, 3) float64 px mediapipe mesh of a portrait (mouth closed)."""
    return still_of(load_avatar(portrait("man_glasses_01.jpg"))).mesh.astype(np.float64)


def transfer(renderer: PortraitRenderer, neutral: np.ndarray, changed: np.ndarray):
    """Drive a fresh DriverTracker with `neutral`, then hold `changed` (both (478, 3) px) for
    HOLD_FRAMES frames at 30 fps: (the last DriverMotion, the avatar's moved (468, 3) px mesh)."""
    tracker = DriverTracker()
    tracker.update(neutral, 0.0)
    for i in range(1, HOLD_FRAMES + 1):
        motion = tracker.update(changed, i / 30)
    return motion, renderer.moved_mesh(motion)[0]


def rise(mesh: np.ndarray, rest: np.ndarray, points: np.ndarray) -> float:
    """Mean upward move (px, along the face's up axis of `rest`) of `points` from `rest` to `mesh`."""
    up = -FaceFrame.from_landmarks(rest).y_axis
    return float(((mesh[points, :2] - rest[points, :2]) @ up).mean())


def mouth_width(mesh: np.ndarray) -> float:
    """Distance between the outer mouth corners of a (468+, 2+) px mesh, in its face units."""
    a, b = topo.MOUTH_CORNERS
    return float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]) / FaceFrame.from_landmarks(mesh).scale)


def skull_centre(mesh: np.ndarray, skull: np.ndarray) -> np.ndarray:
    """(2,) px: the mean image position of the `skull` points of a (468+, 2+) px mesh."""
    return mesh[skull, :2].mean(0)


def test_the_neutral_driver_mesh_leaves_the_avatar_at_rest(woman, renderer, driver_mesh):
    """The baseline of the tests below: an unchanged (closed-mouthed) driver moves nothing."""
    motion, moved = transfer(renderer, driver_mesh, driver_mesh)
    assert np.abs(moved - woman.mesh[:468]).max() < 0.5  # px
    assert np.abs(renderer.render(motion).astype(int) - woman.frame).max() <= 2


def test_raised_driver_brows_raise_the_avatars_in_proportion(woman, renderer, driver_mesh):
    """Brows raised N px on the driver rise N driver face units on the avatar, rendered too."""
    driver_unit, avatar_unit = FaceFrame.from_landmarks(driver_mesh).scale, FaceFrame.from_landmarks(woman.mesh).scale
    rest_face = face_of(woman.frame)
    still = np.setdiff1d(np.arange(468), np.concatenate([BROWS, np.flatnonzero(renderer.retarget.weights)]))
    mesh_rises, render_rises = [], []
    for n_px in (4.0, 8.0):
        raised = driver_mesh.copy()
        raised[BROWS, :2] -= n_px * FaceFrame.from_landmarks(driver_mesh).y_axis
        motion, moved = transfer(renderer, driver_mesh, raised)
        mesh_rises.append(rise(moved, woman.mesh, BROWS))
        assert mesh_rises[-1] / avatar_unit == pytest.approx(n_px / driver_unit, rel=0.15)
        assert np.abs(moved[still] - woman.mesh[still]).max() < 0.5  # px: only the brows moved
        render_rises.append(rise(face_of(renderer.render(motion)), rest_face, BROWS))
    assert mesh_rises[1] == pytest.approx(2 * mesh_rises[0], rel=0.03)  # proportional to N
    assert render_rises[0] > 0.6 * mesh_rises[0] and render_rises[1] > 1.6 * render_rises[0]


def test_a_wider_driver_mouth_widens_the_avatars(woman, renderer, driver_mesh):
    """Lips widened 20% about the mouth centre: the avatar's mouth widens by as many face units."""
    wide = driver_mesh.copy()
    across = FaceFrame.from_landmarks(driver_mesh).x_axis
    centre = driver_mesh[list(topo.MOUTH_CORNERS), :2].mean(0)
    wide[LIPS, :2] += 0.2 * ((driver_mesh[LIPS, :2] - centre) @ across)[:, None] * across
    assert mouth_width(wide) == pytest.approx(1.2 * mouth_width(driver_mesh), rel=0.02)
    motion, moved = transfer(renderer, driver_mesh, wide)
    widened = mouth_width(moved) - mouth_width(woman.mesh)
    assert widened == pytest.approx(mouth_width(wide) - mouth_width(driver_mesh), rel=0.2)
    assert mouth_width(face_of(renderer.render(motion))) > 1.07 * mouth_width(face_of(woman.frame))


def test_driver_head_shift_and_scale_move_and_scale_the_avatar(woman, renderer, driver_mesh):
    """The driver's head 10% larger and moved (0.1, -0.05) face units: the avatar's too, rendered."""
    skull = renderer.retarget.skull
    unit = FaceFrame.from_landmarks(driver_mesh).scale
    pivot = driver_mesh[skull_indices(driver_mesh)].mean(0)
    moved_driver = (driver_mesh - pivot) * 1.1 + pivot + np.array([0.1, -0.05, 0.0]) * unit
    motion, moved = transfer(renderer, driver_mesh, moved_driver)
    np.testing.assert_allclose(motion.shift, [0.1, -0.05], atol=1e-3)
    assert motion.scale == pytest.approx(1.1, abs=1e-3)
    avatar_unit = FaceFrame.from_landmarks(woman.mesh).scale
    shift = (skull_centre(moved, skull) - skull_centre(woman.mesh, skull)) / avatar_unit
    np.testing.assert_allclose(shift, [0.1, -0.05], atol=0.01)
    assert FaceFrame.from_landmarks(moved).scale / avatar_unit == pytest.approx(1.1, abs=0.01)
    rest_face, face = face_of(woman.frame), face_of(renderer.render(motion))
    rest_unit = FaceFrame.from_landmarks(rest_face).scale
    np.testing.assert_allclose((skull_centre(face, skull) - skull_centre(rest_face, skull)) / rest_unit,
                               [0.1, -0.05], atol=0.02)
    assert FaceFrame.from_landmarks(face).scale / rest_unit == pytest.approx(1.1, abs=0.03)


def test_closed_driver_lids_close_the_avatars_eyes(woman, renderer, driver_mesh):
    """Upper lids lowered to 10% of their gap: the avatar's lids meet in its mesh, and its
    rendered eyes read as closed (the face mesh never sees lids meet: below 0.8 of open)."""
    closed = driver_mesh.copy()
    for upper, lower, _ in EYE_PAIRS:
        closed[upper] = closed[lower] + 0.1 * (closed[upper] - closed[lower])
    motion, moved = transfer(renderer, driver_mesh, closed)
    assert (motion.eyes < 0.05).all()
    assert (eye_openness(moved) < 0.1 * eye_openness(woman.mesh)).all()
    rendered = eye_openness(face_of(renderer.render(motion)))
    assert (rendered < 0.8 * eye_openness(face_of(woman.frame))).all()


# -- filtering at the tracker: no lag on a fast turn, no jitter at rest ---------------------------

REST_FRAMES, TURNED_FRAMES = 45, 30  # at 30 fps


def turning_head(neutral: np.ndarray, yaw_deg: float = 20.0, seed: int = 0) -> list[np.ndarray]:
    """A real mesh (478, 3) px at rest for REST_FRAMES, then turned by `yaw_deg` at once for
    TURNED_FRAMES, with tracking-like noise: the head's yaw jitters by 0.3 deg, each point by 0.3 px."""
    rng = np.random.default_rng(seed)
    pivot = neutral[skull_indices(neutral)].mean(0)
    yaws = np.repeat([0.0, yaw_deg], [REST_FRAMES, TURNED_FRAMES]) + rng.normal(0, 0.3, REST_FRAMES + TURNED_FRAMES)
    return [(neutral - pivot) @ rotation_from_euler([y, 0.0, 0.0]).T + pivot + rng.normal(0, 0.3, neutral.shape)
            for y in yaws]


def tracked_yaw(meshes: list[np.ndarray], filters: FilterSettings | None = None) -> np.ndarray:
    """(N,) yaw (degrees) a DriverTracker (its default filters when `filters` is None) reports at 30 fps."""
    tracker = DriverTracker() if filters is None else DriverTracker(filters=filters)
    return np.array([tracker.update(mesh, i / 30).angles[0] for i, mesh in enumerate(meshes)])


def raw_yaw(meshes: list[np.ndarray]) -> np.ndarray:
    """(N,) unfiltered yaw (degrees): the similarity fit of the skull points to the first mesh."""
    skull = skull_indices(meshes[0])
    return np.array([euler_deg(fit_similarity(meshes[0][skull], m[skull]).rotation)[0] for m in meshes])


def jitter(yaw: np.ndarray) -> float:
    """Standard deviation of the frame-to-frame change of a (N,) signal."""
    return float(np.diff(yaw).std())


def test_tracker_follows_a_fast_turn_within_a_frame_and_is_steady_at_rest(driver_mesh):
    """A 20-degree yaw step: the tracker's default One-Euro filters show >= 85% of it on the first
    frame that has it, where a fixed low-pass (beta 0, the same rest cutoff) lags several frames,
    and at rest, before and after the turn, they at least halve the frame-to-frame jitter."""
    meshes = turning_head(driver_mesh)
    raw, smooth = raw_yaw(meshes), tracked_yaw(meshes)
    fixed = tracked_yaw(meshes, FilterSettings(pose_beta=(0.0,) * 8))
    rest, turned = slice(5, REST_FRAMES), slice(REST_FRAMES + 10, None)
    step = raw[turned].mean() - raw[rest].mean()
    assert step == pytest.approx(20.0, abs=0.5)
    reached = (smooth[REST_FRAMES:] - smooth[rest].mean()) / step
    lagged = (fixed[REST_FRAMES:] - fixed[rest].mean()) / step
    assert reached[0] >= 0.85
    assert lagged[0] < 0.5 and int(np.argmax(lagged >= 0.85)) >= 4
    for part in (rest, turned):
        assert jitter(smooth[part]) < 0.5 * jitter(raw[part])
