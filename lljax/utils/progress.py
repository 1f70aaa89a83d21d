"""Throttled, single-line training progress reports with rate and ETA.

Typical use::

    progress = Progress(total_steps, start_step=start_step)
    for step in range(start_step + 1, total_steps + 1):
      state, metrics = train_step(state, batch)
      progress.update(step, loss=metrics["loss"], lr=lr_schedule(step))
    progress.close()

which prints lines such as::

    step 1/4000 (0.0%)  first step took 12.3s (includes compilation)  loss=0.5123
    step 120/4000 (3.0%)  2.41 steps/s  ETA 26m50s  loss=-3.2100  lr=5.0e-04
    done: 4000 steps in 27m49s; first step 12.3s (includes compilation), then 2.40 steps/s

Timing rules:

* The first ``update`` is timed from construction (so construct the
  ``Progress`` right before the loop) and reported on its own, because it
  includes XLA compilation; it never enters a rate.
* A line is printed at the first and the last step and otherwise at most once
  per ``every_seconds``. Steps/s is measured over the window since the
  previously printed line, and the ETA is the remaining steps at that rate.
* Scalars are only converted to Python floats for lines that are printed
  (including the first step's).
  For JAX arrays this waits for the device, so rates are measured at
  points where the computation has actually caught up (JAX dispatches
  asynchronously, so the time of an ``update`` call alone says little).

On a non-TTY stream (CI logs, files) every report is a plain line ending in
``\\n``. On a TTY the periodic lines overwrite each other with ``\\r``.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from typing import Any, Callable, TextIO

import numpy as np

__all__ = ["Progress", "format_duration"]

_CLEAR_TO_EOL = "\x1b[K"


def format_duration(seconds: float) -> str:
  """Formats whole seconds as ``50s``, ``26m50s`` or ``1h02m03s``."""
  total = max(0, int(round(seconds)))
  hours, rest = divmod(total, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f"{hours}h{minutes:02d}m{secs:02d}s"
  if minutes:
    return f"{minutes}m{secs:02d}s"
  return f"{secs}s"


def _format_rate(steps_per_second: float | None, unit: str = "step") -> str:
  if steps_per_second is None:
    return f"-- {unit}s/s"
  if steps_per_second < 1:
    return f"{1 / steps_per_second:.2f} s/{unit}"
  return f"{steps_per_second:.2f} {unit}s/s"


def _format_value(value: Any) -> str:
  """``-3.2100`` for ordinary magnitudes, ``5.0e-04`` for tiny/huge ones."""
  if isinstance(value, numbers.Integral) and not isinstance(value, bool):
    return str(int(value))
  number = float(np.asarray(value).reshape(()))  # waits for JAX arrays
  if not math.isfinite(number):
    return str(number)
  if number != 0 and not 1e-3 <= abs(number) < 1e5:
    return f"{number:.1e}"
  return f"{number:.4f}"


class Progress:
  """Prints progress of a loop of ``total_steps`` steps; see the module docstring.

  Args:
    total_steps: Step number of the last step.
    start_step: Steps already done before this run (resuming); ``update``
      is then first called with ``start_step + 1``.
    every_seconds: Minimum time between periodic lines.
    stream: Text stream; defaults to ``sys.stderr`` as of construction.
    clock: Monotonic time source in seconds (injectable for tests).
    tty: Force (True) or forbid (False) ``\\r`` line rewriting; by default
      it is used when ``stream.isatty()``.
    unit: What a step is called in the lines (e.g. ``"image"``: "image 3/40
      ... 1.20 images/s").
  """

  def __init__(
      self,
      total_steps: int,
      *,
      start_step: int = 0,
      every_seconds: float = 10.0,
      stream: TextIO | None = None,
      clock: Callable[[], float] = time.monotonic,
      tty: bool | None = None,
      unit: str = "step",
  ):
    if total_steps <= start_step:
      raise ValueError(f"total_steps ({total_steps}) must exceed start_step ({start_step})")
    self.total_steps = int(total_steps)
    self.start_step = int(start_step)
    self.every_seconds = float(every_seconds)
    self._stream = sys.stderr if stream is None else stream
    self._clock = clock
    if tty is None:
      isatty = getattr(self._stream, "isatty", None)
      tty = bool(isatty and isatty())
    self._tty = tty
    self.unit = unit
    self._start_time = clock()
    self._first = None  # (step, time) of the first update
    self._anchor = None  # (step, time) of the last printed line
    self._last = None  # (step, time) of the latest update
    self._open_line = False  # a \r-line is on screen without its newline
    self._closed = False

  def update(self, step: int, **scalars: Any) -> None:
    """Records that ``step`` has finished; prints a line if one is due.

    Args:
      step: Number of the step just completed (``start_step < step <=
        total_steps``).
      **scalars: Values to show, e.g. ``loss=...``; numbers or size-1 arrays.
    """
    step = int(step)
    if self._closed:
      return
    if self._first is None:
      text = _format_scalars(scalars)  # waits for the first step to finish
      now = self._clock()
      self._first = self._anchor = self._last = (step, now)
      took = now - self._start_time
      self._print_line(
          [self._position(step), f"first {self.unit} took {took:.1f}s (includes compilation)", text], {})
      return
    now = self._clock()
    self._last = (step, now)
    anchor_step, anchor_time = self._anchor
    if now - anchor_time < self.every_seconds and step < self.total_steps:
      return
    text = [_format_scalars(scalars)]  # may block on the device: do it first
    now = self._clock()
    self._last = (step, now)
    rate = _rate(step - anchor_step, now - anchor_time)
    eta = "ETA --" if rate is None else f"ETA {format_duration((self.total_steps - step) / rate)}"
    self._anchor = (step, now)
    self._print_status(
        [self._position(step), _format_rate(rate, self.unit), eta] + text,
        last=step >= self.total_steps)

  def close(self) -> None:
    """Prints a summary line (total time, mean steps/s after the first step)."""
    if self._closed:
      return
    self._closed = True
    if self._first is None:
      self._print_line([f"done: no {self.unit}s were run"], {})
      return
    first_step, first_time = self._first
    last_step, last_time = self._last
    steps = last_step - self.start_step
    parts = [f"done: {steps} {self.unit}{'s' if steps != 1 else ''} in "
             f"{format_duration(last_time - self._start_time)}; first {self.unit} "
             f"{first_time - self._start_time:.1f}s (includes compilation)"]
    rate = _rate(last_step - first_step, last_time - first_time)
    if rate is not None:
      parts[0] += f", then {_format_rate(rate, self.unit)}"
    self._print_line(parts, {})

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def _position(self, step: int) -> str:
    percent = 100.0 * step / self.total_steps
    return f"{self.unit} {step}/{self.total_steps} ({percent:.1f}%)"

  def _print_line(self, parts: list[str], scalars: dict) -> None:
    """Writes a line of its own (after ending any open rewritable line)."""
    text = "  ".join(p for p in parts + [_format_scalars(scalars)] if p)
    self._write(("\n" if self._open_line else "") + text + "\n", open_line=False)

  def _print_status(self, parts: list[str], last: bool) -> None:
    """Writes a periodic line; on a TTY it overwrites the previous one."""
    text = "  ".join(p for p in parts if p)
    if not self._tty:
      self._write(text + "\n", open_line=False)
    else:
      self._write("\r" + text + _CLEAR_TO_EOL + ("\n" if last else ""), open_line=not last)

  def _write(self, text: str, open_line: bool) -> None:
    self._stream.write(text)
    self._stream.flush()
    self._open_line = open_line

def _rate(steps: int, seconds: float) -> float | None:
  """Steps per second, or None when it cannot be measured."""
  if steps <= 0 or seconds <= 0:
    return None
  return steps / seconds


def _format_scalars(scalars: dict) -> str:
  return "  ".join(f"{name}={_format_value(value)}" for name, value in scalars.items())
