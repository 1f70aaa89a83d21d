"""Image file I/O, dtype conversion and sample grids.

* ``read_image(path) -> (array, info)``: any format Pillow reads, as RGB
  ``uint8`` (8-bit files) or ``uint16`` (16-bit PNGs), ``[H, W, 3]``, with
  the EXIF orientation applied; corrupt or truncated files raise
  ``ImageReadError``.
* ``save_png(path, image, protect=())``: atomic 8/16-bit PNG writes (gray,
  gray+alpha, RGB, RGBA) that refuse to replace protected files (e.g.
  dataset originals).
* ``to_uint8`` / ``to_float01``: float ``[0, 1]`` <-> integer images.
* ``make_grid``: "input | output | target" sample sheets.

Pillow (13.x) reads 16-bit-per-channel RGB, RGBA and gray+alpha PNGs only
as 8-bit images and cannot write them, so those two cases use the small
NumPy/zlib PNG codec at the end of this module (non-interlaced images only;
an interlaced 16-bit color PNG is refused with a clear ``ImageReadError``).
Its Average/Paeth unfiltering sweeps the image one anti-diagonal at a time,
about 0.3 s for a 1052x744 RGBA file: fine for occasional files, slow for
bulk decoding of large 16-bit images. 16-bit grayscale PNGs go through
Pillow (mode ``I;16``).
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

__all__ = [
    "ImageReadError",
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


def _encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a validated uint8/uint16 ``[H, W]`` or ``[H, W, C]`` (C = 2, 3, 4) image."""
  if image.dtype == np.uint16:
    return _encode_png16(image)
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
  image = np.asarray(image)
  if image.dtype not in (np.uint8, np.uint16):
    raise ValueError(f"save_png needs uint8 or uint16, got {image.dtype}")
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (2, 3, 4))):
    raise ValueError(f"save_png needs an HxW or HxWxC image with C in 2..4, got {image.shape}")
  data = _encode_png(image)
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
  if img.format == "PNG" and _needs_png16_decoder(data):
    return _orient(_decode_png(data), orientation), orientation
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
  try:
    with _pillow_rejects_truncation(), Image.open(io.BytesIO(data)) as img:
      img.load()
      array, orientation = _read_loaded(img, data)
      file_format, mode = img.format, img.mode
  except Image.UnidentifiedImageError as e:
    # Pillow's own message names the in-memory buffer, not the file.
    raise ImageReadError(path, "not an image in any format Pillow recognizes") from e
  except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error,
          Image.DecompressionBombError) as e:
    raise ImageReadError(path, f"{type(e).__name__}: {e}") from e
  rgb, alpha = _split_alpha(array)
  info = {
      "path": os.fspath(path),
      "format": file_format,
      "mode": mode,
      "bit_depth": 16 if rgb.dtype == np.uint16 else 8,
      "alpha": alpha,
      "orientation": orientation,
  }
  return rgb, info


# ----------------------------------------------------------------------------
# 16-bit PNG codec (the cases Pillow cannot handle)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # color type -> samples per pixel


def _png_chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _encode_png16(image: np.ndarray) -> bytes:
  """16-bit gray, gray+alpha, RGB or RGBA PNG (``[H, W]`` or ``[H, W, 2|3|4]``), 'Up' filter."""
  height, width = image.shape[:2]
  color_type = 0 if image.ndim == 2 else {1: 0, 2: 4, 3: 2, 4: 6}[image.shape[-1]]
  rows = image.astype(">u2").reshape(height, -1).view(np.uint8)
  # 'Up' (filter 2): each byte minus the byte above it, modulo 256.
  filtered = np.diff(rows, axis=0, prepend=np.zeros_like(rows[:1]))
  raw = np.concatenate([np.full((height, 1), 2, np.uint8), filtered], axis=1)
  header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
  return b"".join([
      _PNG_SIGNATURE,
      _png_chunk(b"IHDR", header),
      _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)),
      _png_chunk(b"IEND", b""),
  ])


def _needs_png16_decoder(data: bytes) -> bool:
  """True for 16-bit color PNGs (color types 2, 4, 6), which Pillow truncates to 8 bits."""
  if len(data) < 33 or data[12:16] != b"IHDR":
    return False
  bit_depth, color_type = data[24], data[25]
  return bit_depth == 16 and color_type in (2, 4, 6)


def _png_parts(data: bytes) -> tuple[tuple[int, ...], bytes]:
  """(IHDR fields, concatenated IDAT bytes), with every chunk CRC checked."""
  if not data.startswith(_PNG_SIGNATURE):
    raise ValueError("not a PNG file")
  pos, header, idat = len(_PNG_SIGNATURE), None, []
  while True:
    if pos + 8 > len(data):
      raise ValueError("truncated PNG: no IEND chunk")
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    end = pos + 12 + length
    if end > len(data):
      raise ValueError(f"truncated PNG: {kind!r} chunk is cut off")
    body = data[pos + 8:pos + 8 + length]
    if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
      raise ValueError(f"PNG {kind!r} chunk fails its CRC check")
    if kind == b"IHDR":
      header = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
      idat.append(body)
    elif kind == b"IEND":
      break
    pos = end
  if header is None or not idat:
    raise ValueError("PNG without IHDR or IDAT")
  return header, b"".join(idat)


def _decode_png(data: bytes) -> np.ndarray:
  """Decodes a non-interlaced 8/16-bit gray/RGB/gray+alpha/RGBA PNG.

  Returns:
    uint8 or uint16 ``[H, W, C]``, C = 1, 3, 2 or 4 (file order).
  """
  (width, height, depth, color_type, compression, filtering, interlace), idat = _png_parts(data)
  if color_type not in _PNG_CHANNELS or depth not in (8, 16) or compression or filtering:
    raise ValueError(f"unsupported PNG variant (bit depth {depth}, color type {color_type})")
  if interlace:
    raise ValueError(f"interlaced (Adam7) {depth}-bit color PNGs are not supported")
  channels = _PNG_CHANNELS[color_type]
  bpp = channels * depth // 8  # bytes per pixel
  decompressor = zlib.decompressobj()
  raw = decompressor.decompress(idat)
  if not decompressor.eof or len(raw) != height * (1 + width * bpp):
    raise ValueError("truncated or corrupt PNG image data")
  rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * bpp)
  pixels = _unfilter(rows[:, 0], rows[:, 1:].reshape(height, width, bpp))
  if depth == 16:
    return pixels.view(">u2").astype(np.uint16).reshape(height, width, channels)
  return pixels.reshape(height, width, channels)


def _unfilter(filters: np.ndarray, data: np.ndarray) -> np.ndarray:
  """Reverses PNG row filtering.

  Args:
    filters: uint8 ``[H]`` filter type per row (0 None, 1 Sub, 2 Up,
      3 Average, 4 Paeth).
    data: uint8 ``[H, W, bpp]`` filtered bytes.

  Returns:
    uint8 ``[H, W, bpp]`` reconstructed bytes.
  """
  if filters.size and filters.max() > 4:
    raise ValueError(f"invalid PNG filter type {filters.max()}")
  height, width, _ = data.shape
  out = np.zeros((height + 1, width + 1, data.shape[2]), np.int16)  # zero row/column border
  data = data.astype(np.int16)
  # Rows from the first to the last Average/Paeth row go through the slower
  # diagonal sweep (each extra sweep would cost ``width`` steps); the rest
  # are vectorized row by row.
  sequential = np.flatnonzero(filters >= 3)
  first_seq, end_seq = (sequential[0], sequential[-1] + 1) if sequential.size else (height, height)
  for row in range(height):
    if row == first_seq:
      _unfilter_sequential(filters[row:end_seq], data[row:end_seq], out[row:end_seq + 1])
    if first_seq <= row < end_seq:
      continue
    kind = filters[row]
    if kind == 0:
      out[row + 1, 1:] = data[row]
    elif kind == 1:
      out[row + 1, 1:] = np.cumsum(data[row], axis=0, dtype=np.int32) % 256
    else:
      out[row + 1, 1:] = (data[row] + out[row, 1:]) % 256
  return out[1:, 1:].astype(np.uint8)


def _unfilter_sequential(filters: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
  """Unfilters rows of any filter type, one anti-diagonal of pixels at a time.

  A pixel depends on its left, upper and upper-left neighbours only, so all
  pixels on an anti-diagonal (row + column constant) can be reconstructed
  together: ``n + W - 1`` NumPy steps instead of ``n * W`` Python steps. In
  the row-major flattened arrays an anti-diagonal is a strided slice.

  Args:
    filters: ``[n]`` filter types (0-4) of the rows.
    data: int16 ``[n, W, bpp]`` filtered bytes.
    out: int16 ``[n + 1, W + 1, bpp]`` contiguous block of the output: the
      already reconstructed row above, then the ``n`` rows, each after a
      zero column. Filled in place.
  """
  n, width, bpp = data.shape
  flat_out = out.reshape(-1, bpp)  # a view: out is contiguous
  flat_data = data.reshape(-1, bpp)
  kinds = filters.astype(np.int16)[:, None]
  for diagonal in range(n + width - 1):
    first, last = max(0, diagonal - width + 1), min(n - 1, diagonal)
    count = last - first + 1

    def strided(start, step, count=count):
      step = step if count > 1 else 1
      return slice(start, start + (count - 1) * step + 1, step)

    # Pixel (r, x = diagonal - r) is flat_out[(r + 1) * (width + 1) + x + 1].
    here = strided((first + 1) * (width + 1) + diagonal - first + 1, width)
    a = flat_out[here.start - 1:here.stop - 1:here.step]  # left
    b = flat_out[here.start - width - 1:here.stop - width - 1:here.step]  # up
    c = flat_out[here.start - width - 2:here.stop - width - 2:here.step]  # up-left
    average = (a + b) >> 1
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    kind = kinds[first:last + 1]
    predictor = np.where(kind == 4, paeth, np.where(kind == 3, average, np.where(
        kind == 2, b, np.where(kind == 1, a, np.int16(0)))))
    filtered = flat_data[strided(first * width + diagonal - first, width - 1)]
    flat_out[here] = (filtered + predictor) % 256
