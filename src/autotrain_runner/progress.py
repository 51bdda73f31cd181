"""Progress on long work: plain periodic lines (a log file, a pipe, CI and a sweep's workers read
them alike), or on a terminal what the CLI draws instead (`cli.printing.lines` gives its `echo` a
rich bar and spinner; the core draws nothing itself).

`meter` is for work of known size (samples evaluated, bytes read); `waiting` for work of unknown
length (a server starting, a model converting).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class Meter:
    """Work done out of a total, as a line at most every `every_s` seconds while it lasts, e.g.
    `run r1: 128/512 samples, 3.2 samples/s, 85 tokens/s, about 2 min left`. Work that ends sooner
    says nothing. Called with the items just done (and the tokens they made), from any thread."""

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
        self.done = self.tokens = 0
        self.started = self.last = clock()
        self._lock = threading.Lock()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, items: int, tokens: int = 0) -> None:
        with self._lock:
            self.done += items
            self.tokens += tokens
            self.show(self.clock())

    def show(self, now: float) -> None:
        """Say how far the work is (a line, at most every `every_s` seconds, none at its end)."""
        if now - self.last < self.every_s or self.done >= self.total:
            return
        self.last = now
        self.echo(f"{self.label}: {self.done}/{self.total} {self.unit}, {self.rates(now)}")

    def rates(self, now: float) -> str:
        """`3.2 samples/s, 85 tokens/s, about 2 min left` (tokens where the work counts them)."""
        seconds = now - self.started
        rate = self.done / seconds if seconds > 0 else 0.0
        said = f"{rate:.3g} {self.unit}/s"
        if self.tokens and seconds > 0:
            said += f", {self.tokens / seconds:.3g} tokens/s"
        if rate > 0 and self.done < self.total:
            said += f", about {_duration((self.total - self.done) / rate)} left"
        return said


def meter(total: int, label: str, unit: str, echo: Callable[[str], None], every_s: float = 15.0) -> Any:
    """The bar `echo` brings (the CLI's, on a terminal), else a `Meter`'s lines; a `with` block,
    called with the items done and their tokens."""
    bar = getattr(echo, "bar", None)
    return bar(total, label, unit) if bar is not None else Meter(total, label, unit, echo, every_s)


@contextlib.contextmanager
def waiting(
    label: str, echo: Callable[[str], None], detail: Callable[[], str] | None = None, every_s: float = 15.0
) -> Iterator[None]:
    """While the block runs: a spinner with the seconds so far on a terminal, else a line every
    `every_s` seconds (`vLLM starting: 30 s so far; its log says: ...`). Quick work says nothing."""
    spinner = getattr(echo, "spinner", None)  # the CLI's, on a terminal
    if spinner is not None:
        with spinner(label):
            yield
        return
    stop = threading.Event()
    started = time.monotonic()

    def say() -> None:
        while not stop.wait(every_s):
            more = detail() if detail else ""
            echo(f"{label}: {_duration(time.monotonic() - started)} so far" + (f"; {more}" if more else ""))

    ticker = threading.Thread(target=say, name="atr-waiting", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
