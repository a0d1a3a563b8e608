"""Sweep progress: a bar with rate and ETA on a terminal; plain lines (about every 10%) in a pipe or a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, *, label: str = "designs", stream: TextIO | None = None, enabled: bool = True):
        self.total, self.label, self.done = total, label, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._next_line = 0.0

    def update(self, count: int) -> None:
        self.done += count
        if not self.enabled or count == 0:
            return
        if self.tty:
            self.stream.write("\r" + self._line(bar=True))
            self.stream.flush()
        elif self.done >= self._next_line or self.done >= self.total:
            self.stream.write(self._line(bar=False) + "\n")
            self.stream.flush()
            self._next_line = self.done + max(1, self.total // 10)

    def _line(self, *, bar: bool) -> str:
        elapsed = time.perf_counter() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = f"ETA {left:.0f}s" if left != float("inf") else "ETA ?"
        pct = 100 * self.done / self.total
        head = ""
        if bar:
            filled = int(30 * self.done / self.total)
            head = "[" + "#" * filled + "." * (30 - filled) + "] "
        return f"{head}{self.done}/{self.total} {self.label} ({pct:.0f}%) {rate:,.0f}/s {eta}"

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
