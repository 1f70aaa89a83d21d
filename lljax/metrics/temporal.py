"""Flicker of a video: how much its global brightness and colour jump from frame to frame.

NumPy, streaming (bounded memory whatever the clip's length). Frames are HWC RGB, uint8 or float
in [0, 1] (uint8 is divided by 255). For frames ``t = 1 .. T-1`` (pairs across a scene cut are
left out: pass ``cut=True`` with the first frame of a new shot):

* ``brightness_flicker``: mean over pairs of ``|b_t - b_{t-1}|``, ``b`` the frame's mean grey
  level (0.299 R + 0.587 G + 0.114 B, as ``lljax.imaging.exposure.brightness``), in [0, 1];
* ``colour_flicker``: mean over pairs of ``max_c |k_t,c - k_{t-1},c|``, ``k`` the chromaticity of
  the frame's mean colour (mean R, G, B divided by their sum), in [0, 1];
* ``tde`` (temporal-difference error, only with a reference clip, e.g. the normal-light frames
  a low-light clip was made from): mean over pairs and pixels of
  ``|(out_t - out_{t-1}) - (ref_t - ref_{t-1})|``, so motion and light changes that the
  reference has are not counted, in [0, 1];
* ``brightness_tde``: mean over pairs of ``|(b_t - b_{t-1}) - (b_ref,t - b_ref,t-1)|``.

A still scene under constant light has all of them 0 for a perfect enhancer; a frame-by-frame
enhancer whose global estimates follow the sensor noise has them above 0.
"""

import numpy as np

_GREY = np.array([0.299, 0.587, 0.114], np.float64)


def _float01(frame):
  """HWC uint8 or float [0, 1] -> float32 [0, 1] (RGB only)."""
  frame = np.asarray(frame)
  frame = frame.astype(np.float32) / np.float32(255.0) if frame.dtype == np.uint8 else frame.astype(np.float32)
  if frame.ndim != 3 or frame.shape[-1] < 3:
    raise ValueError(f"frames must be HWC RGB, got shape {frame.shape}")
  return frame[..., :3]


def global_stats(frame):
  """(mean grey level, chromaticity of the mean colour [3]) of one HWC RGB frame."""
  mean = _float01(frame).reshape(-1, 3).mean(axis=0, dtype=np.float64)
  return float(mean @ _GREY), mean / max(float(mean.sum()), 1e-8)


class FlickerMeter:
  """Accumulates the flicker metrics of a clip one frame at a time (see the module docstring).

  ``update(frame, reference=None, cut=False)`` for each frame in order; ``result()`` -> dict of
  ``frames``, ``pairs`` (frame pairs counted), ``brightness_flicker``, ``colour_flicker`` and,
  when every frame came with a reference, ``tde`` and ``brightness_tde``.
  """

  def __init__(self):
    self.frames = 0
    self._sums = {"brightness_flicker": 0.0, "colour_flicker": 0.0, "tde": 0.0, "brightness_tde": 0.0}
    self._pairs = 0
    self._previous = None  # (frame, brightness, chroma, reference, reference brightness)
    self._with_reference = True

  def update(self, frame, reference=None, cut=False):
    frame = _float01(frame)
    bright, chroma = global_stats(frame)
    ref = None if reference is None else _float01(reference)
    if ref is not None and ref.shape != frame.shape:
      raise ValueError(f"reference frame {ref.shape} and frame {frame.shape} differ in shape")
    self._with_reference &= ref is not None
    ref_bright = None if ref is None else global_stats(ref)[0]
    if self._previous is not None and not cut:
      self._add(self._previous, (frame, bright, chroma, ref, ref_bright))
    self._previous = (frame, bright, chroma, ref, ref_bright)
    self.frames += 1

  def _add(self, prev, cur):
    self._pairs += 1
    self._sums["brightness_flicker"] += abs(cur[1] - prev[1])
    self._sums["colour_flicker"] += float(np.max(np.abs(cur[2] - prev[2])))
    if cur[3] is not None and prev[3] is not None:
      self._sums["tde"] += float(np.mean(np.abs((cur[0] - prev[0]) - (cur[3] - prev[3])), dtype=np.float64))
      self._sums["brightness_tde"] += abs((cur[1] - prev[1]) - (cur[4] - prev[4]))

  def result(self):
    keys = ("brightness_flicker", "colour_flicker") + (("tde", "brightness_tde") if self._with_reference else ())
    pairs = max(self._pairs, 1)
    return {"frames": self.frames, "pairs": self._pairs, **{k: self._sums[k] / pairs for k in keys}}


def flicker(frames, references=None, cuts=()):
  """The ``FlickerMeter`` result of a sequence of HWC frames (and of their references);
  ``cuts``: indices of frames that start a new shot."""
  meter = FlickerMeter()
  references = [None] * len(frames) if references is None else references
  for t, (frame, ref) in enumerate(zip(frames, references, strict=True)):
    meter.update(frame, ref, cut=t in set(cuts))
  return meter.result()
