"""Host-side geometry for whole-image inference: padding, tiles with blended seams, box
downscaling, bilinear upscaling and the eight geometric transforms of a self-ensemble.

Everything here is NumPy on ``[H, W, C]`` arrays; nothing knows about models.

Tiles: a padded image of ``H x W`` is covered by tiles of ``th x tw`` placed every
``stride = tile - overlap`` pixels, the last one flush with the far edge. Tile origins are
multiples of ``align`` (the model's size multiple, e.g. 8 for LLFlow's three squeezes), so a tile
sees the same pooling/squeeze grid as the whole image, and tiles far from any seam reproduce
untiled inference up to the receptive field. Seams are blended with per-tile weights (see
``tile_weights``): on a side that borders another tile, the first ``overlap // 4`` pixels (where
the tile's zero padding corrupts features most) get weight 0, the next ``overlap // 2`` a linear
ramp and the rest 1; image borders are not ramped. Outputs are ``sum(w * tile) / sum(w)``.
"""

import numpy as np

__all__ = ["TRANSFORMS", "box_downscale", "invert_transform", "pad_reflect", "round_up", "tile_grid",
           "tile_weights", "transform", "upscale_bilinear"]


def pad_reflect(x, height, width):
  """Pads ``[H, W, ...]`` at the bottom/right to ``height x width`` (reflect; edge if H or W is 1)."""
  ph, pw = height - x.shape[0], width - x.shape[1]
  if ph < 0 or pw < 0:
    raise ValueError(f"cannot pad {x.shape[:2]} down to {(height, width)}")
  if not (ph or pw):
    return x
  mode = "reflect" if min(x.shape[:2]) > 1 else "edge"
  return np.pad(x, ((0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 2), mode=mode)


def round_up(n, multiple):
  return -(-n // multiple) * multiple


def _starts(length, tile, stride, align):
  if tile >= length:
    return [0]
  starts = list(range(0, length - tile, stride))
  last = (length - tile) // align * align
  if starts[-1] != last:
    starts.append(last)
  return starts


def tile_grid(height, width, tile, overlap, align):
  """Tiles covering a ``height x width`` image (both multiples of ``align``).

  Args:
    tile: tile side (a multiple of ``align``); tiles are ``min(tile, H) x min(tile, W)``.
    overlap: minimum overlap between neighbouring tiles (a multiple of ``align``, < tile).

  Returns:
    ``(th, tw, [(y, x), ...])``: tile size and top-left corners.
  """
  if height % align or width % align or tile % align or overlap % align:
    raise ValueError(f"image {height}x{width}, tile {tile} and overlap {overlap} must be multiples of {align}")
  if not 0 <= overlap < tile:
    raise ValueError(f"overlap ({overlap}) must be in [0, tile={tile})")
  th, tw = min(tile, height), min(tile, width)
  stride = tile - overlap
  ys = _starts(height, th, stride, align)
  xs = _starts(width, tw, stride, align)
  if ys[-1] + th != height or xs[-1] + tw != width:  # cannot happen with aligned inputs
    raise AssertionError("tiles do not reach the image edge")
  return th, tw, [(y, x) for y in ys for x in xs]


def _ramp(n, overlap, interior):
  """1-D weights of length ``n``: 0/ramp/1 from a tile side that borders another tile."""
  w = np.ones(n, np.float32)
  if not interior or overlap == 0:
    return w
  skip, ramp = overlap // 4, max(overlap - 2 * (overlap // 4), 1)
  i = np.arange(n, dtype=np.float32)
  return np.clip((i - skip + 0.5) / ramp, 0.0, 1.0)


def tile_weights(th, tw, y, x, height, width, overlap):
  """Blending weights ``[th, tw, 1]`` of the tile at ``(y, x)`` in a ``height x width`` image."""
  wy = _ramp(th, overlap, y > 0) * _ramp(th, overlap, y + th < height)[::-1]
  wx = _ramp(tw, overlap, x > 0) * _ramp(tw, overlap, x + tw < width)[::-1]
  return (wy[:, None] * wx[None, :])[..., None]


def box_downscale(x, factor):
  """Mean over ``factor x factor`` blocks of ``[H, W, C]`` (edge-padded to a multiple) -> float32."""
  if factor <= 1:
    return np.asarray(x, np.float32)
  h, w = x.shape[:2]
  hp, wp = round_up(h, factor), round_up(w, factor)
  x = np.pad(x, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
  out = np.zeros((hp // factor, wp // factor, x.shape[2]), np.float32)
  for i in range(factor):  # accumulate row by row of the block: no float64 copy of the image
    for j in range(factor):
      out += x[i::factor, j::factor]
  return out / np.float32(factor * factor)


def upscale_bilinear(x, factor, height, width):
  """Bilinear ``factor`` x upscaling of ``[h, w, C]`` (half-pixel centres, edge clamped), cropped
  to ``height x width`` (<= h * factor, w * factor); the inverse of ``box_downscale``'s grid."""
  if factor <= 1:
    return np.asarray(x[:height, :width], np.float32)

  def coords(n_out, n_in):
    c = (np.arange(n_out, dtype=np.float64) + 0.5) / factor - 0.5
    c = np.clip(c, 0, n_in - 1)
    lo = np.floor(c).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (c - lo).astype(np.float32)

  y0, y1, fy = coords(height, x.shape[0])
  x0, x1, fx = coords(width, x.shape[1])
  rows = x[y0] * (1 - fy)[:, None, None] + x[y1] * fy[:, None, None]
  return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


# The dihedral group D4 as (transpose, flip rows, flip columns), applied in that order.
TRANSFORMS = tuple((t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True))


def transform(x, t):
  """Applies ``t = (transpose, flip_h, flip_w)`` to ``[H, W, ...]``."""
  transpose, flip_h, flip_w = t
  if transpose:
    x = np.swapaxes(x, 0, 1)
  if flip_h:
    x = x[::-1]
  if flip_w:
    x = x[:, ::-1]
  return np.ascontiguousarray(x)


def invert_transform(x, t):
  """Undoes ``transform(., t)``."""
  transpose, flip_h, flip_w = t
  if flip_w:
    x = x[:, ::-1]
  if flip_h:
    x = x[::-1]
  if transpose:
    x = np.swapaxes(x, 0, 1)
  return np.ascontiguousarray(x)
