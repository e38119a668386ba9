"""Queues that prefer the newest frame (thread -> thread, thread -> event loop), and live telemetry
(percentiles, rates, profile log)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from facecast.streaming.queues import Channel, LatestQueue
from facecast.streaming.telemetry import PROFILE_EVERY, LatencyWindow, RateMeter, SessionStats, Telemetry, live_stats


def test_latest_queue_returns_the_newest_and_drops_stale_items():
    q = LatestQueue(maxsize=3)
    for i in range(10):
        q.put(i)
    assert len(q) == 3  # bounded however fast items arrive
    assert q.get() == 9  # the newest
    assert len(q) == 0 and q.dropped == 9  # 7 pushed out while full, 2 stale at get()


def test_latest_queue_in_order_mode_keeps_fifo():
    q = LatestQueue(maxsize=2, newest_only=False)
    for i in range(5):
        q.put(i)
    assert [q.get(), q.get()] == [3, 4]
    assert q.dropped == 3


def test_latest_queue_get_blocks_until_put_without_spinning():
    q = LatestQueue(maxsize=1)
    got = []
    reader = threading.Thread(target=lambda: got.append(q.get()))
    start = time.process_time()
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive() and not got  # still waiting
    q.put("frame")
    reader.join(2)
    assert got == ["frame"]
    assert time.process_time() - start < 0.2  # waiting used no CPU (no busy-wait)


def test_latest_queue_close_wakes_the_reader_and_refuses_items():
    q = LatestQueue(maxsize=2)
    got = []
    reader = threading.Thread(target=lambda: got.append(q.get()))
    reader.start()
    time.sleep(0.05)
    q.close()
    reader.join(2)
    assert got == [None] and not reader.is_alive()
    assert q.put("late") == 1 and len(q) == 0
    assert q.get(timeout=0.01) is None


def test_latest_queue_get_times_out():
    assert LatestQueue(1).get(timeout=0.05) is None


def test_queues_refuse_a_zero_size():
    with pytest.raises(ValueError, match="maxsize"):
        LatestQueue(0)
    with pytest.raises(ValueError, match="maxsize"):
        Channel(0)


def test_async_queue_drops_old_frames_but_never_messages():
    async def scenario():
        q = Channel(maxsize=2)
        q.put("hello", droppable=False)
        for i in range(5):
            q.put(i)
        q.put("bye", droppable=False)
        q.close()
        return [item async for item in _drain(q)], q.dropped

    items, dropped = asyncio.run(scenario())
    assert items == ["hello", 3, 4, "bye"] and dropped == 3


async def _drain(q):
    while (item := await q.get()) is not None:
        yield item


def test_async_queue_get_waits_for_a_put():
    async def scenario():
        q = Channel(maxsize=1)
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        asyncio.get_running_loop().call_soon(q.put, "frame")
        return await asyncio.wait_for(waiter, 1)

    assert asyncio.run(scenario()) == "frame"


def test_latency_window_percentiles():
    w = LatencyWindow(size=100)
    assert w.summary()["p50"] is None
    for v in range(1, 201):  # only the last 100 are kept: 101..200
        w.add(v)
    s = w.summary()
    assert s["count"] == 100 and s["p50"] == pytest.approx(150.5) and s["p95"] == pytest.approx(195.05)
    assert s["max"] == 200


def test_rate_meter_counts_events_per_second():
    m = RateMeter(window_s=5.0)
    for i in range(26):
        m.tick(10.0 + i * 0.04)  # 25 frames/s for one second
    assert m.rate(now=11.0) == pytest.approx(25.0, rel=0.01)  # while the stream runs
    assert m.rate(now=12.5) == pytest.approx(26 / 5.0)  # stopped: the count over the window
    assert m.rate(now=20.0) == 0.0  # nothing recent


def test_profile_log_every_30_frames(monkeypatch, caplog):
    stats = SessionStats("test")
    stats.record_stages({"decode": 1.0, "landmarks": 5.0, "warp": 4.0, "encode": 2.0})
    with caplog.at_level(logging.INFO, logger="facecast.live"):
        for _ in range(PROFILE_EVERY):
            stats.record_sent(20.0)
        assert not caplog.records  # off unless FACECAST_PROFILE=1
        monkeypatch.setenv("FACECAST_PROFILE", "1")
        for _ in range(PROFILE_EVERY):
            stats.record_sent(20.0)
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "loop p50/p95/p99 20.0/20.0/20.0 ms" in line and "landmarks=5.0" in line
    snap = stats.snapshot()
    assert snap["sent"] == 2 * PROFILE_EVERY and set(snap["stages_ms"]) == {"decode", "landmarks", "warp", "encode"}


def test_async_queue_stays_bounded_when_nobody_reads():
    async def scenario():
        q = Channel(maxsize=2, max_kept=8)
        for i in range(1000):
            q.put(f"message {i}", droppable=False)
            q.put(i)
        return len(q), q.dropped

    size, dropped = asyncio.run(scenario())
    assert size <= 10 and dropped == 2000 - size


def test_live_session_reports_the_input_queue_emptied_by_the_worker():
    """/stats' `in_queue` is the depth now: 2 while frames wait, 0 once the worker took the newest."""
    from conftest import portrait
    from facecast.portrait.session import LiveFrame, LiveSession, encode_jpeg
    from facecast.portrait.source import load_avatar, still_of

    avatar = load_avatar(portrait("woman_frontal_slight_turn_01.jpg"))
    frame = encode_jpeg(still_of(avatar, 480).frame)  # the portrait itself drives it
    gate, telemetry = threading.Event(), Telemetry()
    session = LiveSession(lambda: gate.wait(30) and avatar, telemetry, max_side=256)
    session.start()
    try:
        for _ in range(3):
            session.submit(frame)
        assert session.stats.snapshot()["in_queue"] == 2  # the worker is still loading the avatar
        assert live_stats(telemetry)["active_sessions"] == 1
        gate.set()
        items = asyncio.run(_until_frame(session))
        assert isinstance(items[-1], LiveFrame), items
        assert session.stats.snapshot()["in_queue"] == 0
        assert "queues in/out 0/" in session.stats.profile_line()
    finally:
        session.close()
        session.join(10)
    assert live_stats(telemetry)["active_sessions"] == 0 and live_stats(telemetry)["finished_sessions"] == 1


async def _until_frame(session, timeout: float = 60.0) -> list:
    """The session's output items up to and including its first frame."""
    from facecast.portrait.session import LiveFrame

    items = []
    async with asyncio.timeout(timeout):
        while not items or not isinstance(items[-1], LiveFrame):
            item = await session.output.get()
            assert item is not None, f"the output closed without a frame: {items}"
            items.append(item)
    return items


def test_live_session_answers_in_the_order_it_was_told():
    """A bad frame, an oversized frame and a bad message are answered in the order they were sent:
    every reply goes out through the worker (the race behind 'bad_frame' == 'bad_message')."""
    from conftest import portrait
    from facecast.portrait.session import MAX_FRAME_BYTES, LiveMessage, LiveSession
    from facecast.portrait.source import load_avatar

    avatar = load_avatar(portrait("woman_frontal_slight_turn_01.jpg"))
    gate = threading.Event()
    session = LiveSession(lambda: gate.wait(30) and avatar, Telemetry(), max_side=256)
    session.start()
    try:
        session.submit(b"\x00not a jpeg")
        session.submit(b"\xff" * (MAX_FRAME_BYTES + 1))
        session.control('{"type": "dance"}')
        session.control('{"type": "ping"}')
        gate.set()

        async def replies(n: int) -> list:
            got = []
            async with asyncio.timeout(60):
                while len(got) < n:
                    item = await session.output.get()
                    if isinstance(item, LiveMessage) and item.body["type"] != "ready":
                        got.append(item.body)
            return got

        got = asyncio.run(replies(4))
    finally:
        session.close()
        session.join(10)
    assert [(m["type"], m.get("code")) for m in got] == [("error", "bad_frame"), ("error", "bad_frame"),
                                                         ("error", "bad_message"), ("pong", None)]
    assert "larger than" in got[1]["message"] and got[3]["stats"]["bad_frames"] == 2


def test_latest_queue_keeps_commands_in_order_and_skips_stale_frames_only():
    q = LatestQueue(maxsize=2)
    q.put("frame 1")
    q.put("pause", droppable=False)
    q.put("frame 2")
    assert [q.get(timeout=1), q.get(timeout=1)] == ["frame 1", "pause"]  # in order
    for i in range(3, 8):
        q.put(f"frame {i}")
        q.put(f"ping {i}", droppable=False)
    got = [q.get(timeout=1) for _ in range(len(q))]
    assert [g for g in got if g.startswith("ping")] == [f"ping {i}" for i in range(3, 8)]  # never dropped
    assert [g for g in got if g.startswith("frame")] == ["frame 6", "frame 7"]  # at most 2 frames wait
    assert q.dropped == 4  # frames 2..5 pushed out while full


def test_channel_wakes_the_event_loop_from_another_thread():
    async def scenario():
        q = Channel(maxsize=1, max_kept=100)
        putter = threading.Thread(target=lambda: [q.put(i, droppable=False) for i in range(100)] and q.close())
        getter = asyncio.create_task(_collect(q))
        putter.start()
        got = await asyncio.wait_for(getter, 10)
        putter.join()
        return got

    assert asyncio.run(scenario()) == list(range(100))  # none lost, in order


async def _collect(q) -> list:
    return [item async for item in _drain(q)]


def test_channel_as_a_doorbell_coalesces_rings():
    async def scenario():
        bell = Channel(maxsize=1)
        for _ in range(5):
            bell.put(True)
        first = await asyncio.wait_for(bell.get(), 1)
        return first, len(bell), bell.get_nowait()

    assert asyncio.run(scenario()) == (True, 0, None)


def test_output_depth_and_drops_are_read_at_each_report():
    outbox = Channel(maxsize=2)
    stats = SessionStats("t")
    assert stats.out_depth == 0 and stats.dropped_out == 0  # no queue attached
    stats.output_queue = outbox
    for frame in range(5):  # a client that does not read: 3 of 5 frames dropped
        outbox.put(frame)
    outbox.put("message", droppable=False)
    assert stats.out_depth == 3 and stats.dropped_out == 3
    assert stats.snapshot()["out_queue"] == 3
