"""A private network namespace in which WebRTC peers can find each other on a loopback-only host.

Why: neither aiortc (aioice) nor Chromium offers an ICE candidate on loopback. aioice drops
127.0.0.1 by name; Chromium skips the `lo` interface (in a namespace with only `lo`, it gathers
nothing and never completes gathering). So on a machine (or CI container) whose only interface is
`lo`, two peers have no candidate to exchange and never connect. A veth pair is not a loopback
interface, and Chromium (measured: Chromium 156) and aioice both offer 127.x addresses on it as
host candidates; the kernel treats each as a local address and delivers through `lo`, so no
sysctl (route_localnet) is needed and no packet leaves the namespace, which holds nothing but `lo`
and the veth pair and has no route anywhere else.

    with webrtc_namespace() as ns:            # the calling thread now lives in the namespace
        ns.addresses                          # ("127.1.0.1", "127.1.0.2")
        subprocess.Popen([...])               # children inherit it: servers, Playwright's driver
        threading.Thread(...).start()         # threads started from here inherit it too
    # back in the original namespace; the namespace is gone once its last process has exited

or, in a test module, the fixture factory:

    ns = namespace_fixture()                  # module scope; skips when not root

How: a holder process (`unshare -n sh -c '...'`) makes the namespace, sets up `lo` and the veth
pair, says "ready" and then waits on its stdin; closing that pipe (or this process dying) ends it.
The calling thread enters the namespace with setns(2) (network namespaces belong to a thread, and
Python 3.11 has no os.setns) and returns to the namespace it came from on exit, also when the body
raises. Threads of the test process other than the caller stay where they were.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

CLONE_NEWNET = 0x40000000  # <linux/sched.h>
READY_TIMEOUT_S = 30.0  # s for unshare + three `ip` commands (milliseconds when idle)
VETH = ("fcveth0", "fcveth1")  # names inside the new namespace, so they never clash with the host's
ADDRESSES = ("127.1.0.1", "127.1.0.2")
PREFIX = 24

# The holder's script: `set -e` so a failing step ends it before "ready"; then it blocks on stdin.
_SETUP = f"""set -e
ip link set lo up
ip link add {VETH[0]} type veth peer name {VETH[1]}
ip addr add {ADDRESSES[0]}/{PREFIX} dev {VETH[0]}
ip addr add {ADDRESSES[1]}/{PREFIX} dev {VETH[1]}
ip link set {VETH[0]} up
ip link set {VETH[1]} up
echo ready
read -r _ || true
"""


class NamespaceUnavailable(RuntimeError):
    """The namespace could not be made or entered (not root, no unshare/ip, a kernel without netns)."""


@dataclass(frozen=True)
class WebrtcNamespace:
    """The namespace the calling thread is in, while the `webrtc_namespace()` block runs."""

    holder_pid: int
    inode: int  # identifies the namespace: equal /proc/<pid>/ns/net inodes mean the same one
    addresses: tuple[str, ...] = ADDRESSES

    def contains(self, pid: int) -> bool:
        """Whether process `pid` is in this namespace (False when it has exited)."""
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == self.inode
        except (FileNotFoundError, ProcessLookupError):
            return False

    def thread_inside(self) -> bool:
        """Whether the calling thread is in this namespace."""
        return os.stat("/proc/thread-self/ns/net").st_ino == self.inode


def _libc_setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NamespaceUnavailable(f"setns(CLONE_NEWNET) failed: {os.strerror(errno)} (errno {errno})")


# Loopback only (Ray): nothing but `lo`, so no packet can leave and no address but 127.0.0.1 exists.
_LOOPBACK_SETUP = """set -e
ip link set lo up
echo ready
read -r _ || true
"""


def _start_holder(script: str = _SETUP) -> subprocess.Popen:
    if os.geteuid() != 0:
        raise NamespaceUnavailable("making a network namespace needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN)")
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            raise NamespaceUnavailable(f"`{tool}` is not installed (util-linux / iproute2)")
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # readline() blocks, so a timer kills a holder that never answers; EOF then ends the wait.
    timer = threading.Timer(READY_TIMEOUT_S, holder.kill)
    timer.start()
    try:
        line = holder.stdout.readline().strip()
    finally:
        timer.cancel()
    if line != "ready":
        holder.stdin.close()
        holder.wait(timeout=READY_TIMEOUT_S)  # it has said all it will (EOF on stdout)
        reason = holder.stderr.read().strip() or "no message"
        _stop_holder(holder)
        raise NamespaceUnavailable(f"could not set up the network namespace (exit {holder.returncode}): {reason}")
    return holder


def _stop_holder(holder: subprocess.Popen) -> None:
    """Idempotent: close the holder's stdin (it exits), kill it if it lingers, reap it."""
    for pipe in (holder.stdin, holder.stdout):
        try:
            pipe.close()
        except OSError:  # closing an already closed pipe is fine; a broken one too
            pass
    try:
        holder.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait()
    holder.stderr.close()


@contextmanager
def webrtc_namespace() -> Iterator[WebrtcNamespace]:
    """Run the block with the calling thread inside a fresh namespace (`lo` + a 127.x veth pair).

    Everything the thread starts inside the block (processes, threads, sockets) lives in the
    namespace. Raises NamespaceUnavailable with the reason when it cannot be made or entered.
    Must be left from the thread that entered it (a `with` block always is).
    """
    with _entered(_start_holder()) as ns:
        yield ns


@contextmanager
def loopback_namespace() -> Iterator[WebrtcNamespace]:
    """Run the block with the calling thread inside a fresh namespace holding only `lo` (up).

    For Ray, which binds the machine's non-loopback address even when told 127.0.0.1 and probes a
    public address for its own IP: inside, 127.0.0.1 is all there is and nothing can leave.
    `addresses` of the yielded namespace is ("127.0.0.1",). Same rules as webrtc_namespace().
    """
    with _entered(_start_holder(_LOOPBACK_SETUP), ("127.0.0.1",)) as ns:
        yield ns


@contextmanager
def _entered(holder: subprocess.Popen, addresses: tuple[str, ...] = ADDRESSES) -> Iterator[WebrtcNamespace]:
    """Enter the calling thread into the holder's namespace for the block; stop the holder after."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    thread = threading.get_native_id()
    try:
        target = os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            inode = os.fstat(target).st_ino
            _libc_setns(target)
        finally:
            os.close(target)
        try:
            yield WebrtcNamespace(holder_pid=holder.pid, inode=inode, addresses=addresses)
        finally:
            if threading.get_native_id() != thread:
                raise RuntimeError("webrtc_namespace() left from another thread than the one that entered it")
            _libc_setns(original)
    finally:
        os.close(original)
        _stop_holder(holder)


def namespace_fixture(scope: str = "module") -> Callable:
    """A pytest fixture (assign it to a name in a test module) that yields a `WebrtcNamespace`.

        ns = namespace_fixture()

        def test_x(ns): ...

    Skips when not root (nothing else could make the namespace); any other failure fails the test.
    pytest runs fixtures and tests of one module in the same thread, so the test body, and the
    fixtures set up after this one, run inside the namespace (order fixtures that start processes,
    e.g. Playwright, after it: list `ns` first, or depend on it).
    """
    import pytest

    @pytest.fixture(scope=scope)
    def _namespace() -> Iterator[WebrtcNamespace]:
        if os.geteuid() != 0:
            pytest.skip("a network namespace needs root (the WebRTC tests run as root in CI)")
        with webrtc_namespace() as ns:
            yield ns

    return _namespace
