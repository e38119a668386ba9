"""The command line's progress bar: a tqdm bar on stderr as a `progress(done, total)` callback."""

from __future__ import annotations

import sys


class ProgressBar:
    """`with ProgressBar("rendering", quiet) as progress:` gives a Progress callback (None when
    quiet); the bar (frames) appears on the first call, stays silent when stderr is not a TTY,
    follows a total that grows, and always draws its last count (tqdm skips redraws closer than
    0.1 s apart, so a fast job would otherwise vanish at 0/N)."""

    def __init__(self, label: str, quiet: bool = False, unit: str = "frame"):
        self.label, self.quiet, self.bar, self.unit = label, quiet, None, unit

    def __enter__(self):
        return None if self.quiet else self.update

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.label, unit=self.unit, leave=False, file=sys.stderr, disable=None)
        if total and total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)
        if total and done >= total:
            self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
