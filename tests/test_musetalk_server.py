"""A real `facecast serve --backend musetalk` on a CPU, with a tiny seeded random-weight model.

The server runs in a child process with the weights saved by the test in the release layout; the
test talks to it over HTTP only, as a client would.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import av  # noqa: E402
import httpx  # noqa: E402

from facecast.media import fmp4  # noqa: E402
from support.server_process import served  # noqa: E402

FPS = 25  # the server's default stream rate
TEXT = "Hello from the neural mouth."
MARGIN = 16  # px around the lower face where H.264 blocks and the deblocking filter may spill over
TILE = 32  # px: the unchanged part of a frame is compared tile by tile
SLACK = 3.0  # grey levels a tile's mean error may exceed the still avatar's own encoding error by


def decoded(data: bytes) -> tuple[np.ndarray, int, int, list[str]]:
    """Decode an MP4 held in memory.

    returns (frames (N, H, W, 3) uint8 BGR, audio samples per channel, audio rate, [video codec, audio codec])
    """
    with av.open(io.BytesIO(data)) as container:
        codecs = [container.streams.video[0].codec_context.name, container.streams.audio[0].codec_context.name]
        frames = np.stack([f.to_ndarray(format="bgr24") for f in container.decode(video=0)])
    with av.open(io.BytesIO(data)) as container:
        audio = [f for f in container.decode(audio=0)]
    return frames, sum(f.samples for f in audio), audio[0].sample_rate, codecs


def lower_face(avatar) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) px: where the musetalk backend may redraw a still avatar, the lower half of
    its crop box, which the feathered paste mask never leaves."""
    from facecast.lipsync.musetalk import crops

    x0, y0, x1, y1 = (int(v) for v in crops.layout(avatar.landmarks, avatar.size).boxes[0])
    return x0, (y0 + y1) // 2, x1, y1


def encoded_still(avatar, folder) -> np.ndarray:
    """The still avatar as facecast's own H.264 writer leaves it (crf 23, ultrafast): the compression
    noise an unchanged pixel may show. returns (H, W, 3) uint8 BGR, the last of 10 decoded frames."""
    from facecast.media.writer import Mp4Writer

    with Mp4Writer(folder / "still.mp4", avatar.size, FPS) as writer:
        writer.write(np.repeat(avatar.frames[:1], 10, axis=0))
    with av.open(str(folder / "still.mp4")) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)][-1]


def assert_only_the_lower_face_changed(frames: np.ndarray, avatar, still: np.ndarray) -> None:
    """Outside the lower face (and MARGIN), every TILE x TILE tile of every frame (N, H, W, 3) uint8 BGR
    is within SLACK grey levels as close to the still avatar as its plain H.264 encoding `still`
    (H, W, 3) uint8 BGR is (head motion or a shifted paste would show); inside it, the mouth was redrawn."""
    x0, y0, x1, y1 = lower_face(avatar)
    source = avatar.frames[0].astype(np.int16)
    diff = np.abs(frames.astype(np.int16) - source).max(axis=-1)  # (N, H, W) colour difference per pixel
    noise = np.abs(still.astype(np.int16) - source).max(axis=-1)  # (H, W) the encoder's own
    outside = np.ones(noise.shape, bool)
    outside[max(0, y0 - MARGIN): y1 + MARGIN, max(0, x0 - MARGIN): x1 + MARGIN] = False
    tiles = 0
    for ty in range(0, noise.shape[0], TILE):
        for tx in range(0, noise.shape[1], TILE):
            tile = np.s_[ty: ty + TILE, tx: tx + TILE]
            if outside[tile].all():
                tiles += 1
                worst = diff[(slice(None), *tile)].mean(axis=(1, 2)).max()
                assert worst <= noise[tile].mean() + SLACK, (ty, tx, worst, noise[tile].mean())
    assert tiles > 100  # most of the 512x512 frame was compared
    mouth = diff[:, y0:y1, x0:x1].mean(axis=(1, 2))  # (N,) mean change in the lower face per frame
    assert mouth.min() > noise[y0:y1, x0:x1].mean() + 10, (mouth.min(), noise[y0:y1, x0:x1].mean())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`facecast serve --backend musetalk` on the CPU, eager float32, batch 4, tiny random weights."""
    from facecast.lipsync.musetalk.random_weights import write_model_dir

    models = write_model_dir(tmp_path_factory.mktemp("musetalk-models"), "tiny", "v1.5")
    data = tmp_path_factory.mktemp("musetalk-server")
    env = {"FACECAST_MUSETALK_DIR": str(models), "FACECAST_MUSETALK_DEVICE": "cpu",
           "FACECAST_MUSETALK_DTYPE": "float32", "FACECAST_MUSETALK_COMPILE": "none",
           "FACECAST_MUSETALK_BATCH": "4"}
    with served(data, env, args=["--backend", "musetalk"]) as proc:
        yield proc


def test_server_renders_and_streams_with_the_musetalk_backend(server, tmp_path):
    """/health names the backend; POST /generate returns an H.264 + AAC MP4 with a frame per 40 ms of
    the spoken text whose pixels change only in the lower face; a clip session streams fragmented MP4
    with the same number of video samples."""
    from facecast.avatar.prepare import prepare
    from facecast.demo import demo_portrait
    from facecast.engine import speech_from_text

    avatar = prepare(demo_portrait())  # the server's default avatar, from the shared avatar cache
    still = encoded_still(avatar, tmp_path)
    expected = speech_from_text(TEXT).audio.frame_count(FPS)  # the offline voice is deterministic
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["backend"] == "musetalk", health

        response = client.post("/generate", data={"text": TEXT})
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4", response.text
        frames, samples, rate, codecs = decoded(response.content)
        assert codecs == ["h264", "aac"]
        assert frames.shape == (expected, avatar.size[1], avatar.size[0], 3)
        assert abs(samples / rate * FPS - expected) <= 1.5  # AAC pads to whole 1024-sample frames
        assert_only_the_lower_face_changed(frames, avatar, still)

        session = client.post("/sessions", data={"text": TEXT})
        assert session.status_code == 201, session.text
        reader, boxes = fmp4.BoxReader(), []
        with client.stream("GET", session.json()["stream_url"]) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith('video/mp4; codecs="avc1.')
            for chunk in stream.iter_bytes():
                boxes += reader.feed(chunk)
        assert [kind for kind, _ in boxes[:2]] == [b"ftyp", b"moov"]
        runs = [fmp4.read_moof(b)[fmp4.VIDEO_TRACK_ID] for kind, b in boxes
                if kind == b"moof" and fmp4.VIDEO_TRACK_ID in fmp4.read_moof(b)]
        assert runs and runs[0].keyframe and sum(len(r.durations) for r in runs) == expected
        streamed, _, _, codecs = decoded(b"".join(b for _, b in boxes))
        assert codecs == ["h264", "aac"] and len(streamed) == expected
        assert_only_the_lower_face_changed(streamed, avatar, still)
        assert client.get(f"/sessions/{session.json()['id']}").json()["state"] == "finished"
