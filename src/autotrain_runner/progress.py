"""Progress on long work, said as plain lines (a terminal, a log file and CI read them alike)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Meter:
    """Work done out of a total, as a line at most every `every_s` seconds while it lasts, e.g.
    `run r1: 128/512 samples, 3.2 samples/s, about 2 min left`. Work that ends sooner says nothing.
    Called with the items just done, from any thread."""

    def __init__(
        self,
        total: int,
        label: str,
        unit: str,
        echo: Callable[[str], None],
        every_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.label, self.unit, self.echo, self.every_s, self.clock = (
            total,
            label,
            unit,
            echo,
            every_s,
            clock,
        )
        self.done = 0
        self.started = self.last = clock()
        self._lock = threading.Lock()

    def __call__(self, items: int) -> None:
        with self._lock:
            self.done += items
            now = self.clock()
            if now - self.last < self.every_s or self.done >= self.total:
                return
            self.last = now
            rate = self.done / (now - self.started) if now > self.started else 0.0
            left = f", about {_duration((self.total - self.done) / rate)} left" if rate > 0 else ""
            self.echo(f"{self.label}: {self.done}/{self.total} {self.unit}, {rate:.3g} {self.unit}/s{left}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
