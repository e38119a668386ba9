"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) set up for WebRTC tests.

    with webrtc_namespace() as ns, chromium_browser(fake_audio=wav) as browser:
        page = browser.new_page()

or in a test module, as fixtures (the browser's after the namespace's; see support.netns):

    ns = namespace_fixture()
    browser = browser_fixture()

Start it inside `support.netns.webrtc_namespace()`: Playwright's node driver is a child of the
calling thread and Chromium a child of the driver, so both land in the namespace only when the
driver is started there (a browser launched earlier, e.g. by a fixture outside the namespace,
stays outside and sees no usable ICE candidate on a loopback-only host).

`npx playwright install` cannot download a browser here; Playwright launches the system Chromium
through `executable_path`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

CHROMIUM = Path("/usr/bin/chromium")
HEADLESS_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # as tests/test_web.py
WEBRTC_ARGS = [
    # Without it, host candidates carry random "<uuid>.local" mDNS names instead of IPs, which the
    # other peer (aiortc, or Chromium in the namespace without an mDNS responder) cannot resolve.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-ui-for-media-stream",  # getUserMedia is granted without a prompt
    "--use-fake-device-for-media-stream",  # a synthetic camera and microphone instead of real ones
    "--autoplay-policy=no-user-gesture-required",  # <video>/<audio> with sound play without a click
]


def chromium_args(fake_audio: Path | None = None, fake_video: Path | None = None) -> list[str]:
    """Chromium's command line: headless + WebRTC flags; the fake microphone plays `fake_audio`
    (a WAV file, looped) and the fake camera shows `fake_video` (a .y4m or .mjpeg file) when given."""
    args = HEADLESS_ARGS + WEBRTC_ARGS
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={_existing(fake_audio)}")
    if fake_video is not None:
        args.append(f"--use-file-for-fake-video-capture={_existing(fake_video)}")
    return args


@contextmanager
def chromium_browser(fake_audio: Path | None = None, fake_video: Path | None = None,
                     extra_args: Sequence[str] = ()) -> Iterator:
    """A Playwright `Browser` (sync API) on the system Chromium with `chromium_args()`; closed on exit.

    Raises FileNotFoundError when Chromium is missing and ImportError when Playwright is.
    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: run scripts/install-browser.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=chromium_args(fake_audio, fake_video) + list(extra_args))
        try:
            yield browser
        finally:
            browser.close()


def skip_without_chromium() -> None:
    """pytest.skip (from a test or fixture) when Chromium or Playwright is missing."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run scripts/install-browser.sh")
    pytest.importorskip("playwright.sync_api", reason="pip install -r requirements/test-web.txt")


def browser_fixture(scope: str = "module") -> Callable:
    """A pytest fixture (assign it to a name in a test module) that yields a `chromium_browser()`
    started inside the module's `ns` fixture (support.netns.namespace_fixture, which it depends on);
    skips when Chromium or Playwright is missing.

        ns = namespace_fixture()
        browser = browser_fixture()
    """
    import pytest

    @pytest.fixture(scope=scope)
    def _browser(ns) -> Iterator:
        skip_without_chromium()
        with chromium_browser() as browser:
            yield browser

    return _browser


@contextmanager
def checked_page(browser, url: str, timeout_s: float | None = None) -> Iterator:
    """A new page of `browser` at `url` (its default timeout `timeout_s` when given); closed on exit.
    Raises AssertionError at exit if the page threw a script error meanwhile."""
    page = browser.new_page()
    if timeout_s is not None:
        page.set_default_timeout(timeout_s * 1000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        yield page
    finally:
        page.close()
    assert not errors, errors


def descendants(pid: int) -> list[int]:
    """The ids of all living descendants of process `pid` (from /proc/*/stat), e.g. to check that
    Playwright's driver and every Chromium process are in the namespace."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _existing(path: Path) -> Path:
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"fake capture file not found: {path}")
    return path
