"""Spatial padding of NHWC arrays by index gathering.

``pad2d`` gives exactly what ``jnp.pad`` gives for the border-copying modes, but builds the
padded array with one static gather per axis: the indices are those ``np.pad`` produces for
``arange(n)``. The gradient is then a single scatter-add per axis, which XLA compiles in a
fraction of the time it needs for the transpose of ``jnp.pad(mode="edge"/"reflect")`` (seconds
per call site on CPU), and runs faster too.
"""

import jax.numpy as jnp
import numpy as np

# torch F.pad / nn.*Pad2d mode names -> numpy names; "symmetric" is OpenCV's BORDER_REFLECT.
MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect", "replicate": "edge",
         "edge": "edge", "circular": "wrap", "wrap": "wrap", "symmetric": "symmetric"}


def _pads(pad):
  if isinstance(pad, int):
    return (pad, pad), (pad, pad)
  top, bottom, left, right = pad
  return (top, bottom), (left, right)


def pad2d(x, pad, mode="replicate"):
  """Pads H and W of x (B, H, W, C).

  Args:
    pad: int (all sides) or (top, bottom, left, right).
    mode: a key of ``MODES`` (torch or numpy names).
  """
  if mode not in MODES:
    raise ValueError(f"unknown padding mode {mode!r}; expected one of {sorted(MODES)}")
  (top, bottom), (left, right) = _pads(pad)
  if MODES[mode] == "constant":
    return jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  for axis, (before, after) in ((1, (top, bottom)), (2, (left, right))):
    if before or after:
      index = np.pad(np.arange(x.shape[axis]), (before, after), mode=MODES[mode])
      x = jnp.take(x, index, axis=axis)
  return x
