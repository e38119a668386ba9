"""Queues that prefer the newest frame, and live telemetry (percentiles, rates, profile log)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from facecast.portrait.queues import AsyncLatestQueue, LatestQueue
from facecast.portrait.telemetry import PROFILE_EVERY, LatencyWindow, RateMeter, SessionStats


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
        AsyncLatestQueue(0)


def test_async_queue_drops_old_frames_but_never_messages():
    async def scenario():
        q = AsyncLatestQueue(maxsize=2)
        q.put_nowait("hello", droppable=False)
        for i in range(5):
            q.put_nowait(i)
        q.put_nowait("bye", droppable=False)
        q.close()
        return [item async for item in _drain(q)], q.dropped

    items, dropped = asyncio.run(scenario())
    assert items == ["hello", 3, 4, "bye"] and dropped == 3


async def _drain(q):
    while (item := await q.get()) is not None:
        yield item


def test_async_queue_get_waits_for_a_put():
    async def scenario():
        q = AsyncLatestQueue(maxsize=1)
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        asyncio.get_running_loop().call_soon(q.put_nowait, "frame")
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
        q = AsyncLatestQueue(maxsize=2, max_messages=8)
        for i in range(1000):
            q.put_nowait(f"message {i}", droppable=False)
            q.put_nowait(i)
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
    gate, done, items = threading.Event(), threading.Event(), []

    def emit(item) -> None:
        items.append(item)
        if isinstance(item, LiveFrame):
            done.set()

    session = LiveSession(lambda: gate.wait(30) and avatar, emit, max_side=256)
    session.start()
    try:
        for _ in range(3):
            session.submit(frame)
        assert session.stats.snapshot()["in_queue"] == 2  # the worker is still loading the avatar
        gate.set()
        assert done.wait(60), f"no frame came back: {items}"
        assert session.stats.snapshot()["in_queue"] == 0
        assert "queues in/out 0/" in session.stats.profile_line()
    finally:
        session.close()
        session.join(10)


def test_output_depth_and_drops_are_read_at_each_report():
    outbox = AsyncLatestQueue(maxsize=2)
    stats = SessionStats("t")
    assert stats.out_depth == 0 and stats.dropped_out == 0  # no transport attached yet
    stats.output_queue = outbox
    for frame in range(5):  # a client that does not read: 3 of 5 frames dropped
        outbox.put_nowait(frame)
    outbox.put_nowait("message", droppable=False)
    assert stats.out_depth == 3 and stats.dropped_out == 3
    assert stats.snapshot()["out_queue"] == 3
