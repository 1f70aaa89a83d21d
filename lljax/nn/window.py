"""Window attention helpers (Swin/Uformer conventions) on NHWC arrays.

* ``window_partition``: (B, H, W, C) -> (B, nH * nW, ws, ws, C), windows in row-major order
  (torch's ``window_partition`` flattens the same order into its batch axis).
* ``relative_position_index(ws)``: the (ws^2, ws^2) index into a ((2 ws - 1)^2, heads) bias
  table that Swin registers as the buffer ``relative_position_index``.
* ``shift_attention_mask``: the shifted-window mask (0 within a region, ``-100`` across the
  regions a cyclic shift brings together), computed once per static shape with NumPy.
"""

import numpy as np


def window_partition(x, ws):
  """(B, H, W, C) -> (B, (H/ws) * (W/ws), ws, ws, C); H and W must be multiples of ws."""
  b, h, w, c = x.shape
  if h % ws or w % ws:
    raise ValueError(f"window_partition: {h}x{w} is not a multiple of the window size {ws}")
  x = x.reshape(b, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // ws) * (w // ws), ws, ws, c)


def window_merge(windows, h, w):
  """Inverse of ``window_partition``: (B, nW, ws, ws, C) -> (B, h, w, C)."""
  b, _, ws, _, c = windows.shape
  x = windows.reshape(b, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h, w, c)


def relative_position_index(ws):
  """int (ws^2, ws^2): index[i, j] = (dy + ws - 1) * (2 ws - 1) + (dx + ws - 1) with
  (dy, dx) = position(i) - position(j), positions row-major in the window."""
  coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
  rel = coords[:, :, None] - coords[:, None, :] + ws - 1  # (2, N, N)
  return (rel[0] * (2 * ws - 1) + rel[1]).astype(np.int32)


def shift_attention_mask(h, w, ws, shift, value=-100.0):
  """float32 (nW, ws^2, ws^2) additive mask for windows of an (h, w) map rolled by -shift.

  Swin's labelling: rows [0, h-ws), [h-ws, h-shift), [h-shift, h) times the same column bands
  give 9 regions; token pairs from different regions get ``value`` (-100, not -inf).
  """
  labels = np.zeros((h, w), np.float32)
  bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
  count = 0
  for rows in bands:
    for cols in bands:
      labels[rows, cols] = count
      count += 1
  windows = window_partition(labels[None, :, :, None], ws).reshape(-1, ws * ws)
  diff = windows[:, None, :] - windows[:, :, None]
  return np.where(diff != 0, np.float32(value), np.float32(0.0))
