"""Progress of long loops: a tqdm bar with ETA on a terminal, periodic log lines otherwise (CI, log files).

One helper for every stage (data generation, training steps, eval requests, export checks)::

    with Progress("eval bfcl:simple_python tuned-constrained", total=len(requests), unit="req") as bar:
        for batch in batches:
            ...
            bar.update(len(batch), tok=output_tokens)   # extra amounts are shown as rates (tok/s)

Where ``sys.stderr`` is not a terminal, a line is logged each time another ``log_every_fraction`` of the total
is done (at most one per ``min_interval_s``) or ``log_every_s`` seconds have passed since the last line, and when
it finishes.
``SLMTUNE_PROGRESS=bar|log|off`` overrides the terminal check.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger("slmtune")

MODES = ("bar", "log", "off")


def progress_mode() -> str:
    """``bar`` on a terminal, ``log`` otherwise; the ``SLMTUNE_PROGRESS`` environment variable overrides."""
    mode = os.environ.get("SLMTUNE_PROGRESS", "").strip().lower()
    if mode:
        if mode not in MODES:
            raise ValueError(f"SLMTUNE_PROGRESS: {mode!r} is not one of {', '.join(MODES)}")
        return mode
    return "bar" if sys.stderr.isatty() else "log"


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Count of work done out of ``total`` with rate and ETA (see the module docstring).

    ``initial``: work already done when it starts (a resumed run); ETA and rates count only this run's work.
    ``mode``: ``bar``, ``log`` or ``off`` (default: :func:`progress_mode`). ``unit`` is plural (``requests``).
    """

    def __init__(self, desc: str, total: int, *, unit: str = "it", initial: int = 0, mode: str | None = None,
                 log_every_s: float = 30.0, log_every_fraction: float = 0.1, min_interval_s: float = 5.0) -> None:
        self.desc, self.total, self.unit = desc, max(int(total), 0), unit
        self.done = self.initial = int(initial)
        self.mode = mode or progress_mode()
        self.log_every_s, self.log_every_fraction, self.min_interval_s = log_every_s, log_every_fraction, min_interval_s
        self.amounts: dict[str, float] = {}
        self.note: str | None = None
        self.started = time.perf_counter()
        self._last_log, self._logged_done = self.started, self.done
        self._next_fraction = self._fraction_after(self.done)
        self._closed = self._logged_total = False
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.initial, desc=desc, unit=unit, file=sys.stderr,
                             dynamic_ncols=True, leave=True)

    def _fraction_after(self, done: int) -> float:
        if not self.total or self.log_every_fraction <= 0:
            return float("inf")
        steps = int(done / self.total / self.log_every_fraction + 1e-9) + 1
        return steps * self.log_every_fraction

    def update(self, n: int = 1, *, note: str | None = None, **amounts: float) -> None:
        """``n`` more units done; ``amounts`` (e.g. ``tok=123``) add to counters shown per second; ``note`` names
        what was just done (an export check)."""
        self.done += n
        for name, value in amounts.items():
            self.amounts[name] = self.amounts.get(name, 0.0) + value
        if note is not None:
            self.note = note
        if self._bar is not None:
            postfix = self._postfix()
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
        elif self.mode == "log":
            now = time.perf_counter()
            finished = self.done >= self.total and not self._logged_total
            since = now - self._last_log
            if finished or since >= self.log_every_s or since >= self.min_interval_s and self.total \
                    and self.done / self.total >= self._next_fraction - 1e-9:
                self._logged_total = self._logged_total or finished
                self._log_line(now)

    def _postfix(self) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        parts = [f"{name}/s {value / elapsed:.1f}" for name, value in self.amounts.items()]
        return ", ".join(parts + ([self.note] if self.note else []))

    def _log_line(self, now: float) -> None:
        elapsed = now - self.started
        this_run = self.done - self.initial
        line = f"{self.desc}: {self.done}/{self.total} {self.unit}"
        if self.total:
            line += f" ({100 * self.done / self.total:.0f}%)"
        line += f", {format_seconds(elapsed)} elapsed"
        if this_run > 0 and elapsed > 0:
            line += f", {this_run / elapsed:.2f} {self.unit}/s"
            if self.done < self.total:
                line += f", ETA {format_seconds((self.total - self.done) * elapsed / this_run)}"
        postfix = self._postfix()
        log.info("%s%s", line, f", {postfix}" if postfix else "")
        self._last_log, self._logged_done = now, self.done
        self._next_fraction = self._fraction_after(self.done)

    def close(self) -> None:
        """End the bar (or log a last line if the count changed since the last one: it stopped short)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log" and self.done != self._logged_done:
            self._log_line(time.perf_counter())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
