"""Progress of long loops: a tqdm bar on a terminal, a plain line every N seconds elsewhere.

A bar redraws itself with carriage returns, which a log file or a pipe keeps as one
endless line. When the stream is not a terminal, :func:`progress` instead writes a
line such as ::

    decode: 120/500 utt (24%), 312 s audio, 00:45 elapsed, ETA 02:22

every ``ASR_PROGRESS_SECONDS`` seconds (default 30), and a last one when the loop ends
if it wrote any before or it lasted that long. Both objects take the same calls: iteration, ``update``,
``set_postfix``, ``set_postfix_str``, ``set_description``, ``close`` and ``with``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)

ENVIRONMENT = "ASR_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0


def progress_seconds() -> float:
    """Seconds between plain progress lines: ``ASR_PROGRESS_SECONDS``, default 30."""
    value = os.environ.get(ENVIRONMENT, "").strip()
    if not value:
        return DEFAULT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        log.warning("%s=%r is not a number of seconds >= 0: using %g", ENVIRONMENT, value, DEFAULT_SECONDS)
        return DEFAULT_SECONDS
    return seconds


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(
    iterable: Iterable | None = None,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    stream: TextIO | None = None,
    interval: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    **tqdm_options: Any,
):
    """``tqdm(iterable, total=..., desc=..., unit=...)`` when ``stream`` (default stderr) is a
    terminal, a :class:`PlainProgress` writing a line every ``interval`` seconds (default
    :func:`progress_seconds`) when it is not, and a silent tqdm when ``enabled`` is false.
    Other keyword arguments (``leave``, ``initial``, ``unit_scale``, ``mininterval``...) go to
    tqdm; the plain logger uses ``initial`` and ``unit_scale`` and ignores the rest."""
    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            pass
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, **tqdm_options)
    return PlainProgress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        stream=stream,
        interval=progress_seconds() if interval is None else interval,
        clock=clock,
        initial=tqdm_options.get("initial", 0),
        unit_scale=bool(tqdm_options.get("unit_scale", False)),
    )


class PlainProgress:
    """Progress as whole lines, at most one per ``interval`` seconds (checked when it advances)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
        interval: float = DEFAULT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        initial: float = 0,
        unit_scale: bool = False,
    ):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.stream = sys.stderr if stream is None else stream
        self.interval, self.clock, self.unit_scale = interval, clock, unit_scale
        self.n = self.initial = initial
        self.postfix = ""
        self.started = self.last_line = clock()
        self.lines = 0  # lines written so far
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return int(self.total) if self.total is not None else len(self.iterable)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last_line >= self.interval and self.n != self.total:  # the end is close()'s to say
            self._write(self.line(now))
            self.last_line = now

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        if self.lines or now - self.last_line >= self.interval:  # the reader saw it start, or it took a while
            self._write(self.line(now, done=True))

    def _amount(self, value: float) -> str:
        if self.unit_scale:  # 12.3MB
            return tqdm.format_sizeof(value) + self.unit
        return f"{value:g}" if isinstance(value, float) else str(value)

    def line(self, now: float, done: bool = False) -> str:
        elapsed = now - self.started
        count = self._amount(self.n)
        if self.total:
            count += f"/{self._amount(self.total)}"
        if not self.unit_scale:
            count += f" {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        parts = [count] + ([self.postfix] if self.postfix else [])
        parts.append(f"{tqdm.format_interval(elapsed)} elapsed")
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        if done:
            parts.append("done")
        elif self.total and rate > 0:
            parts.append(f"ETA {tqdm.format_interval(max(0.0, self.total - self.n) / rate)}")
        return f"{self.desc}: " * bool(self.desc) + ", ".join(parts)

    def _write(self, line: str) -> None:
        self.lines += 1
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: progress is not worth failing for
            pass
