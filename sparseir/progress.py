"""One progress bar for every long step (reading, building, encoding, searching): tqdm's, on
stderr, so that stdout stays clean for pipes."""

from __future__ import annotations

import sys

# A terminal redraws one line in place; a log file gets a line per redraw, so fewer of them.
TERMINAL_REDRAW_S = 0.5
LOG_REDRAW_S = 30.0
# With a known total: phase, share, count, elapsed time and an ETA spelled out as such.
BAR_FORMAT = "{desc}: {percentage:5.1f}%|{bar:24}| {n_fmt}/{total_fmt} [{elapsed} elapsed, ETA {remaining}]"


class Progress:
    """A bar over `total` items with elapsed time and ETA (total None: a count and a rate),
    moved by steps (advance) or to a position (advance_to); disabled, it draws nothing."""

    def __init__(self, phase: str, total: int | None = None, unit: str = "it", enabled: bool = True):
        self._bar = None
        if enabled:
            from tqdm import tqdm

            stream = sys.stderr
            terminal = getattr(stream, "isatty", lambda: False)()
            self._bar = tqdm(total=total, desc=phase, unit=unit, file=stream, dynamic_ncols=terminal,
                             mininterval=TERMINAL_REDRAW_S if terminal else LOG_REDRAW_S,
                             bar_format=None if total is None else BAR_FORMAT)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def advance_to(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
