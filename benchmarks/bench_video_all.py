"""All video-avatar benchmarks in one table (each number against its bar), with the machine.

Run: python benchmarks/bench_video_all.py        (about a minute on a 2-core CPU)
Each bench_video_<part>.py also runs on its own and prints its own table.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTS = ("stabilize", "segments", "temporal", "plate", "footlock")


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}, "
            f"no GPU; load average {load:.1f} at the start")


def print_table(title: str, rows: list[tuple[str, str, str, bool | None]]) -> None:
    """rows: (measure, value, bar, passed or None when there is no bar)."""
    print(f"\n### {title}\n")
    print("| measure | value | bar | |")
    print("|---|---|---|---|")
    for name, value, bar, ok in rows:
        mark = "" if ok is None else ("PASS" if ok else "**below bar**")
        print(f"| {name} | {value} | {bar} | {mark} |")


def main() -> int:
    import importlib

    print(machine())
    failed = 0
    for part in PARTS:
        module = importlib.import_module(f"bench_video_{part}")
        start = time.perf_counter()
        rows = module.measure()
        print_table(f"{module.TITLE} ({time.perf_counter() - start:.0f} s)", rows)
        failed += sum(1 for *_, ok in rows if ok is False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
