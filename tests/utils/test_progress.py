"""Tests for lljax.utils.progress with an injected fake clock."""

import io

import jax.numpy as jnp
import pytest

from lljax.utils.progress import Progress, format_duration


class FakeClock:
  """A clock that only moves when told to."""

  def __init__(self, t=1000.0):
    self.t = t

  def __call__(self):
    return self.t


class FakeTTY(io.StringIO):

  def isatty(self):
    return True


def _lines(stream):
  return stream.getvalue().splitlines()


def test_example_line_format():
  clock, out = FakeClock(), io.StringIO()
  progress = Progress(4000, every_seconds=40, stream=out, clock=clock)
  clock.t += 12.25
  progress.update(1, loss=0.5)
  clock.t += 119 / 2.41
  progress.update(120, loss=jnp.float32(-3.21), lr=5e-4, epoch=3)
  assert _lines(out) == [
      "step 1/4000 (0.0%)  first step took 12.2s (includes compilation)  loss=0.5000",
      "step 120/4000 (3.0%)  2.41 steps/s  ETA 26m50s  loss=-3.2100  lr=5.0e-04  epoch=3",
  ]


def test_throttling_window_rate_and_eta():
  clock, out = FakeClock(0.0), io.StringIO()
  progress = Progress(100, every_seconds=10, stream=out, clock=clock)
  clock.t = 12.5  # first step: compilation
  progress.update(1)
  for step in range(2, 101):
    # 4 steps/s until step 41, then 2 steps/s: each window sees only its own rate.
    clock.t += 0.25 if step <= 41 else 0.5
    progress.update(step)
  progress.close()
  lines = _lines(out)
  assert lines == [
      "step 1/100 (1.0%)  first step took 12.5s (includes compilation)",
      "step 41/100 (41.0%)  4.00 steps/s  ETA 15s",    # 40 steps in 10 s; 59 left
      "step 61/100 (61.0%)  2.00 steps/s  ETA 20s",    # 20 steps in 10 s; 39 left
      "step 81/100 (81.0%)  2.00 steps/s  ETA 10s",
      "step 100/100 (100.0%)  2.00 steps/s  ETA 0s",   # last step: always printed
      # 99 steps after the first took 10 + 29.5 s; total 12.5 + 39.5 = 52 s.
      "done: 100 steps in 52s; first step 12.5s (includes compilation), then 2.51 steps/s",
  ]
  assert "\r" not in out.getvalue()


def test_quiet_between_lines_and_no_device_sync_when_not_printing():
  clock, out = FakeClock(), io.StringIO()
  progress = Progress(1000, every_seconds=10, stream=out, clock=clock)
  progress.update(1)

  class Exploding:
    def __float__(self):
      raise AssertionError("formatted a scalar for a line that was not printed")

    __array__ = None  # np.asarray must not be able to fetch it either

  for step in range(2, 20):
    clock.t += 0.5
    progress.update(step, loss=Exploding())
  assert len(_lines(out)) == 1


def test_resume_slow_steps_and_single_step_summary():
  clock, out = FakeClock(), io.StringIO()
  progress = Progress(4000, start_step=3000, every_seconds=10, stream=out, clock=clock)
  clock.t += 3.0
  progress.update(3001)
  clock.t += 25.0
  progress.update(3002)  # 25 s per step: shown as s/step
  progress.close()
  progress.close()  # idempotent
  lines = _lines(out)
  assert lines[0].startswith("step 3001/4000 (75.0%)  first step took 3.0s")
  assert lines[1] == "step 3002/4000 (75.0%)  25.00 s/step  ETA 6h55m50s"
  assert lines[2] == (
      "done: 2 steps in 28s; first step 3.0s (includes compilation), then 25.00 s/step")
  assert len(lines) == 3

  out = io.StringIO()
  progress = Progress(10, stream=out, clock=clock)
  progress.close()
  assert _lines(out) == ["done: no steps were run"]


def test_tty_rewrites_periodic_lines():
  clock, out = FakeClock(), FakeTTY()
  progress = Progress(3, every_seconds=1, stream=out, clock=clock)
  for step in (1, 2, 3):
    clock.t += 2
    progress.update(step)
  progress.close()
  text = out.getvalue()
  first, rest = text.split("\n", 1)
  assert first.startswith("step 1/3") and "\r" not in first
  assert rest.startswith("\rstep 2/3") and "\rstep 3/3" in rest
  assert rest.count("\n") == 2  # the last step line, then the summary
  assert rest.endswith("then 2.00 s/step\n")


def test_tty_summary_does_not_overwrite_an_unfinished_line():
  clock, out = FakeClock(), FakeTTY()
  progress = Progress(100, every_seconds=1, stream=out, clock=clock)
  for step in (1, 2):
    clock.t += 2
    progress.update(step)
  progress.close()  # stopped early: line 2 is still open
  assert "\n\x1b" not in out.getvalue()
  assert out.getvalue().split("\n")[-2].startswith("done: 2 steps")
  assert "\rstep 2/100" in out.getvalue().split("\n")[1]


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (0.4, "0s"), (59.6, "1m00s"), (1610, "26m50s"), (3723, "1h02m03s"),
    (100 * 3600, "100h00m00s"), (-5, "0s"),
])
def test_format_duration(seconds, text):
  assert format_duration(seconds) == text


def test_rejects_empty_range():
  with pytest.raises(ValueError, match="must exceed"):
    Progress(10, start_step=10)


def test_unit_names_the_items():
  clock, out = FakeClock(), io.StringIO()
  progress = Progress(3, every_seconds=0, stream=out, clock=clock, unit="image")
  for step, dt in ((1, 4.0), (2, 0.5), (3, 0.5)):
    clock.t += dt
    progress.update(step)
  progress.close()
  assert _lines(out) == [
      "image 1/3 (33.3%)  first image took 4.0s (includes compilation)",
      "image 2/3 (66.7%)  2.00 images/s  ETA 0s",
      "image 3/3 (100.0%)  2.00 images/s  ETA 0s",
      "done: 3 images in 5s; first image 4.0s (includes compilation), then 2.00 images/s",
  ]
