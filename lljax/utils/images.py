"""Image file I/O, dtype conversion and sample grids.

* ``read_image(path) -> (array, info)``: any format Pillow reads, as RGB
  ``uint8`` (8-bit files) or ``uint16`` (16-bit PNGs), ``[H, W, 3]``, with
  the EXIF orientation applied; corrupt or truncated files raise
  ``ImageReadError``. ``decode_image(data, name)`` does the same for the
  bytes of a file (e.g. an upload).
* ``save_png(path, image, protect=())``: atomic 8/16-bit PNG writes (gray,
  gray+alpha, RGB, RGBA) that refuse to replace protected files (e.g.
  dataset originals); ``encode_png(image)`` returns the bytes.
* ``to_uint8`` / ``to_float01``: float ``[0, 1]`` <-> integer images.
* ``make_grid``: "input | output | target" sample sheets.

Pillow (13.x) reads 16-bit-per-channel RGB, RGBA and gray+alpha PNGs only
as 8-bit images and cannot write them, so those two cases use the small
NumPy/zlib codec ``lljax.utils.png16`` (non-interlaced images only; an
interlaced 16-bit color PNG is refused with a clear ``ImageReadError``).
16-bit grayscale PNGs go through Pillow (mode ``I;16``).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import struct
import threading
import zlib
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps

from lljax.utils import png16

__all__ = [
    "ImageReadError",
    "decode_image",
    "encode_png",
    "make_grid",
    "read_image",
    "save_png",
    "to_float01",
    "to_uint8",
]

_EXIF_ORIENTATION = 0x0112


class ImageReadError(ValueError):
  """An image file could not be decoded (corrupt, truncated or unsupported).

  Attributes:
    path: The file.
    reason: What went wrong.
  """

  def __init__(self, path: str | os.PathLike, reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"cannot read image {self.path}: {reason}")


# ----------------------------------------------------------------------------
# dtype conversion


def to_uint8(x: Any) -> np.ndarray:
  """Converts a float image in ``[0, 1]`` to ``uint8``.

  Values are clipped to ``[0, 1]`` and rounded as ``floor(x * 255 + 0.5)``
  (round half up), so ``to_uint8(k / 255) == k`` for every ``k`` and ties
  never depend on parity, unlike ``np.round`` (round half to even), which
  maps 0.5/255 to 0 but 1.5/255 to 2. NaN becomes 0.

  Args:
    x: Float array (NumPy or JAX) of any shape, nominally in ``[0, 1]``; a
      ``uint8`` array is returned unchanged.

  Returns:
    ``uint8`` NumPy array of the same shape.
  """
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x
  # ml_dtypes floats (bfloat16, float8_*) are not np.floating subtypes.
  if not x.dtype.name.startswith(("float", "bfloat")):
    raise TypeError(f"expected a float image in [0, 1], got dtype {x.dtype}")
  if x.dtype not in (np.float32, np.float64):
    x = x.astype(np.float32)  # float16 / bfloat16
  x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
  return np.floor(np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def to_float01(array: np.ndarray) -> np.ndarray:
  """Converts a ``uint8`` (/255) or ``uint16`` (/65535) image to float32 ``[0, 1]``."""
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array.astype(np.float32) / np.float32(255)
  if array.dtype == np.uint16:
    return array.astype(np.float32) / np.float32(65535)
  raise TypeError(f"expected uint8 or uint16, got {array.dtype}")


# ----------------------------------------------------------------------------
# grids


def _grid_cell(image: Any) -> np.ndarray:
  """Any supported cell image -> uint8 ``[H, W, 3]``."""
  image = np.asarray(image)
  if image.dtype == np.uint16:
    image = to_float01(image)
  image = to_uint8(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"grid cells must be HxWx3, HxWx1 or HxW, got {image.shape}")
  return image


def make_grid(
    rows: Sequence[Sequence[Any]],
    pad: int = 2,
    pad_value: int | Sequence[int] = 255,
) -> np.ndarray:
  """Tiles images into one ``uint8`` picture, e.g. one "input | output | target" row per sample.

  Row ``i`` is as tall as its tallest image and column ``j`` as wide as its
  widest image; each image sits at the top-left of its cell and the rest of
  the cell is ``pad_value``. Rows may have different lengths (missing cells
  are left blank). ``pad`` pixels separate cells and frame the grid.

  Args:
    rows: Rows of images; each ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]``,
      float in ``[0, 1]`` (converted with ``to_uint8``), ``uint8`` or
      ``uint16``. Sizes may differ.
    pad: Padding in pixels.
    pad_value: Padding gray level, or an RGB triple.

  Returns:
    ``uint8 [sum(row heights) + pad * (n_rows + 1),
    sum(column widths) + pad * (n_cols + 1), 3]``.
  """
  cells = [[_grid_cell(image) for image in row] for row in rows]
  if not any(cells):
    raise ValueError("make_grid needs at least one image")
  n_cols = max(len(row) for row in cells)
  heights = [max((c.shape[0] for c in row), default=0) for row in cells]
  widths = [max(row[j].shape[1] for row in cells if j < len(row)) for j in range(n_cols)]
  grid = np.empty(
      (sum(heights) + pad * (len(cells) + 1), sum(widths) + pad * (n_cols + 1), 3), np.uint8)
  grid[...] = np.asarray(pad_value, dtype=np.uint8)
  top = pad
  for row, height in zip(cells, heights):
    left = pad
    for image, width in zip(row, widths):
      grid[top:top + image.shape[0], left:left + image.shape[1]] = image
      left += width + pad
    top += height + pad
  return grid


# ----------------------------------------------------------------------------
# writing


def _is_protected(path: str, protect: Sequence[str | os.PathLike]) -> bool:
  target = os.path.realpath(path)
  for other in protect:
    if os.path.realpath(other) == target:
      return True
    with contextlib.suppress(OSError):  # hard links to a protected file
      if os.path.samefile(path, other):
        return True
  return False


def encode_png(image: Any) -> bytes:
  """PNG bytes of a ``uint8``/``uint16`` ``[H, W]`` or ``[H, W, C]`` (C = 2, 3, 4) image.

  ``uint16`` gives a 16-bit PNG. Raises ValueError for other shapes and dtypes.
  """
  image = np.asarray(image)
  if image.dtype not in (np.uint8, np.uint16):
    raise ValueError(f"a PNG needs uint8 or uint16 pixels, got {image.dtype}")
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (2, 3, 4))):
    raise ValueError(f"a PNG needs an HxW or HxWxC image with C in 2..4, got {image.shape}")
  if image.dtype == np.uint16:
    return png16.encode(image)
  buffer = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
  return buffer.getvalue()


def save_png(
    path: str | os.PathLike,
    image: Any,
    *,
    protect: Sequence[str | os.PathLike] = (),
) -> None:
  """Writes a PNG atomically: to a temporary file in the same directory, then ``os.replace``.

  Readers never see a partial file, and a failed write leaves no temporary
  file behind. The directory must exist.

  Args:
    path: Destination (``.png`` is not enforced).
    image: ``uint8`` or ``uint16`` array, ``[H, W]`` (gray), ``[H, W, 2]``
      (gray + alpha), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA);
      ``uint16`` is written as a 16-bit PNG.
    protect: Paths that must never be written, e.g. the source images of a
      dataset. Compared after resolving symlinks (and hard links when both
      exist).

  Raises:
    ValueError: If ``path`` is protected or the image has an unsupported
      shape/dtype.
  """
  path = os.fspath(path)
  if _is_protected(path, protect):
    raise ValueError(f"refusing to overwrite protected path {path}")
  data = encode_png(image)
  directory, name = os.path.split(os.path.abspath(path))
  tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
  # os.open with 0o666 lets the umask decide the final permissions
  # (tempfile would create the file 0o600).
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


# ----------------------------------------------------------------------------
# reading

_strict_lock = threading.Lock()
_strict_users = 0
_saved_load_truncated = False


@contextlib.contextmanager
def _pillow_rejects_truncation():
  """Forces ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` while reading.

  The flag is a process-wide Pillow global, and tensorflow-datasets sets it
  to True when it decodes images. With it set, Pillow pads truncated files
  instead of raising. The counter lets concurrent ``read_image`` calls
  overlap; the previous value is restored when the last one finishes.
  """
  global _strict_users, _saved_load_truncated
  with _strict_lock:
    if _strict_users == 0:
      _saved_load_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    _strict_users += 1
    ImageFile.LOAD_TRUNCATED_IMAGES = False
  try:
    yield
  finally:
    with _strict_lock:
      _strict_users -= 1
      if _strict_users == 0:
        ImageFile.LOAD_TRUNCATED_IMAGES = _saved_load_truncated


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
  """``[H, W, C]`` with C in 1..4 -> (RGB ``[H, W, 3]``, alpha ``[H, W]`` or None)."""
  if array.ndim == 2:
    array = array[..., None]
  alpha = None
  if array.shape[-1] in (2, 4):
    array, alpha = array[..., :-1], np.ascontiguousarray(array[..., -1])
  if array.shape[-1] == 1:
    array = np.repeat(array, 3, axis=-1)
  return np.ascontiguousarray(array), alpha


def _pillow_array(img: Image.Image) -> np.ndarray:
  """A loaded Pillow image -> uint8/uint16 ``[H, W]`` or ``[H, W, C]`` (C = 2, 3, 4)."""
  mode = img.mode
  if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
    return np.asarray(img).astype(np.uint16)
  if mode == "I":
    array = np.asarray(img)
    if array.size and (array.min() < 0 or array.max() > 65535):
      raise ValueError("32-bit integer image with values outside the uint16 range")
    return array.astype(np.uint16)
  if mode == "F":
    raise ValueError("floating-point images are not supported")
  if mode == "PA" or (mode in ("P", "L", "RGB") and "transparency" in img.info):
    img = img.convert("RGBA")  # palette/tRNS transparency -> alpha channel
  elif mode == "1":
    img = img.convert("L")
  elif mode in ("La", "RGBa"):  # premultiplied alpha
    img = img.convert(mode.upper())
  elif mode not in ("L", "LA", "RGB", "RGBA"):  # P, CMYK, YCbCr, LAB, HSV, RGBX
    img = img.convert("RGB")
  return np.asarray(img)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
  """Applies an EXIF orientation (1-8) to ``[H, W, ...]``, as ``ImageOps.exif_transpose``."""
  if orientation in (5, 6, 7, 8):
    array = np.swapaxes(array, 0, 1)  # transpose, then fix up below
    orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
  if orientation == 2:
    array = array[:, ::-1]
  elif orientation == 3:
    array = array[::-1, ::-1]
  elif orientation == 4:
    array = array[::-1]
  return np.ascontiguousarray(array)


def _read_loaded(img: Image.Image, data: bytes) -> tuple[np.ndarray, int]:
  """(array from a loaded image with orientation applied, orientation)."""
  orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
  if orientation not in range(1, 9):
    orientation = 1
  if img.format == "PNG" and png16.is_16bit_color(data):
    return _orient(png16.decode(data), orientation), orientation
  return _pillow_array(ImageOps.exif_transpose(img)), orientation


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
  """Reads an image file as RGB.

  The whole file is decoded (truncation is always detected, whatever
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says elsewhere in the process)
  and its EXIF orientation, if any, is applied.

  Args:
    path: Any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, ...).

  Returns:
    ``(image, info)``. ``image`` is ``[H, W, 3]`` ``uint8`` for 8-bit (and
    lower) files, ``uint16`` for 16-bit PNGs and 16-bit grayscale files of
    other formats (Pillow mode ``I;16``, e.g. TIFF); 16-bit color files other
    than PNG are reduced to 8 bits by Pillow. Gray images are replicated to
    3 channels, palettes expanded, alpha split off. ``info`` has
      ``path``: str; ``format``: Pillow's format name, e.g. ``"PNG"``;
      ``mode``: Pillow's mode of the file, e.g. ``"L"``, ``"RGBA"``, ``"P"``,
        ``"I;16"`` (16-bit RGB/RGBA PNGs report Pillow's ``"RGB"``/``"RGBA"``);
      ``bit_depth``: 8 or 16 (that of ``image``);
      ``alpha``: ``[H, W]`` alpha of the same dtype as ``image``, or None;
      ``orientation``: the EXIF orientation that was applied (1 = none).

  Raises:
    ImageReadError: The file is not a readable image (unknown format,
      corrupt, truncated, or an unsupported mode/variant); names the file.
    OSError: The file cannot be opened (e.g. ``FileNotFoundError``).
  """
  with open(path, "rb") as f:
    data = f.read()
  return decode_image(data, path)


def decode_image(data: bytes, name: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
  """``read_image`` for the bytes of an image file; ``name`` (e.g. the file name of an upload)
  stands for the path in ``info["path"]`` and in errors."""
  try:
    with _pillow_rejects_truncation(), Image.open(io.BytesIO(data)) as img:
      img.load()
      array, orientation = _read_loaded(img, data)
      file_format, mode = img.format, img.mode
  except Image.UnidentifiedImageError as e:
    # Pillow's own message names the in-memory buffer, not the file.
    raise ImageReadError(name, "not an image in any format Pillow recognizes") from e
  except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error,
          Image.DecompressionBombError) as e:
    raise ImageReadError(name, f"{type(e).__name__}: {e}") from e
  rgb, alpha = _split_alpha(array)
  info = {
      "path": os.fspath(name),
      "format": file_format,
      "mode": mode,
      "bit_depth": 16 if rgb.dtype == np.uint16 else 8,
      "alpha": alpha,
      "orientation": orientation,
  }
  return rgb, info
