"""Temporal consistency across a clip's frames: scene-cut detection (``CutDetector``), the centred
moving mean of per-frame values within a shot (``smooth``: the global context and the exposure
gain are smoothed with it), and one exposure gain per frame (``exposure_gain``, ``apply_gain``).
"""

import collections

import numpy as np


class CutDetector:
  """Detects scene cuts from input frames, one ``update(frame)`` per frame (HWC float [0, 1]).

  A frame starts a new shot when, against the previous frame, the mean absolute change of its
  ``grid x grid`` thumbnail of block-mean colours, each thumbnail divided by its own mean (so a
  uniform change of light does not count), exceeds ``layout_threshold``, or its mean brightness
  changes by more than a factor ``light_ratio`` (a light switched on or off). A slow pan changes
  the thumbnail a little per frame; a cut changes it whole. The first frame starts a shot.
  """

  def __init__(self, layout_threshold=0.25, light_ratio=1.5, grid=8):
    self.layout_threshold, self.light_ratio, self.grid = layout_threshold, light_ratio, grid
    self._previous = None
    self.scores = None  # (layout change, brightness ratio) of the latest update

  def _thumbnail(self, frame):
    h, w = frame.shape[:2]
    rows, cols = np.linspace(0, h, min(self.grid, h) + 1).astype(int), np.linspace(0, w, min(self.grid, w) + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(np.asarray(frame, np.float64)[..., :3], rows[:-1], 0), cols[:-1], 1)
    return sums / (np.diff(rows)[:, None, None] * np.diff(cols)[None, :, None])

  def update(self, frame):
    thumb = self._thumbnail(frame)
    mean = float(thumb.mean()) + 1.0 / 255
    current = (thumb / mean, mean)
    previous, self._previous = self._previous, current
    if previous is None:
      return True
    layout = float(np.mean(np.abs(current[0] - previous[0])))
    ratio = max(current[1], previous[1]) / min(current[1], previous[1])
    self.scores = (layout, ratio)
    return layout > self.layout_threshold or ratio > self.light_ratio


def _tree_mean(trees, own=None):
  """Leaf-by-leaf mean of pytrees; given ``own`` (the frame's value), statistics named in
  ``lljax.nn.image_stats.PER_FRAME`` (instance-norm moments) keep ``own``'s leaves."""
  import jax  # pylint: disable=import-outside-toplevel
  from lljax.nn.image_stats import PER_FRAME  # pylint: disable=import-outside-toplevel

  mean = lambda leaves: np.mean(np.stack([np.asarray(x, np.float32) for x in leaves]), 0)
  if own is None:
    return jax.tree.map(lambda *leaves: mean(leaves), *trees)
  per_frame = lambda path: any(getattr(k, "key", None) in PER_FRAME for k in path)
  return jax.tree_util.tree_map_with_path(lambda path, mine, *leaves: mine if per_frame(path) else mean(leaves),
                                          own, *trees)


def smooth(stream, window):
  """(item, value, new_shot) in order -> (item, smoothed value, new_shot), ``window // 2`` frames late.

  The smoothed value of frame t is the mean (leaf by leaf, ``jax.tree.map``) of the values of
  frames t - window // 2 .. t + window // 2 of the same shot (a frame with ``new_shot`` starts
  one), except per-frame statistics, which keep frame t's (``_tree_mean``). ``value`` None passes
  through. Holds at most ``window`` entries.
  """
  half, entries, shot, emitted = max(int(window), 1) // 2, collections.deque(), -1, 0

  def emit(t):
    entry = entries[t - entries[0][0]]
    peers = [e[3] for e in entries if e[1] == entry[1] and abs(e[0] - t) <= half]
    value = None if entry[3] is None else (peers[0] if len(peers) == 1 else _tree_mean(peers, entry[3]))
    out, entry[2] = (entry[2], value, entry[4]), None
    while entries and entries[0][0] < t + 1 - half:
      entries.popleft()
    return out

  for t, (item, value, new_shot) in enumerate(stream):
    shot += bool(new_shot or t == 0)
    entries.append([t, shot, item, value, bool(new_shot)])
    while emitted <= t - half:
      yield emit(emitted)
      emitted += 1
  while entries and emitted <= entries[-1][0]:
    yield emit(emitted)
    emitted += 1


def exposure_gain(rgb, target, max_pixels=1 << 16):
  """The linear-light gain ``lljax.imaging.exposure.adjust_exposure`` would give HWC float ``rgb``
  to reach ``target`` mean brightness, searched on a box-downscaled copy (at most ``max_pixels``)."""
  from lljax import tiling  # pylint: disable=import-outside-toplevel
  from lljax.imaging import exposure, srgb  # pylint: disable=import-outside-toplevel

  factor = max(1, int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / max_pixels))))
  linear = srgb.srgb_to_linear(np.clip(tiling.box_downscale(rgb[..., :3], factor), 0.0, 1.0).astype(np.float64))
  lo, hi = -np.log(256.0), np.log(256.0)
  for _ in range(40):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if exposure.brightness(exposure._apply(linear, np.exp(mid))) < target else (lo, mid)  # pylint: disable=protected-access
  return np.float32(np.exp(0.5 * (lo + hi)))


def apply_gain(rgb, gain):
  """HWC float sRGB [0, 1] times ``gain`` in linear light with exposure's highlight roll-off."""
  from lljax.imaging import exposure, srgb  # pylint: disable=import-outside-toplevel
  return exposure._apply(srgb.srgb_to_linear(np.clip(rgb, 0.0, 1.0)), gain).astype(np.float32)  # pylint: disable=protected-access
