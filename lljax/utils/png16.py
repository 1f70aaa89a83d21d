"""NumPy/zlib PNG codec for the 16-bit colour images Pillow cannot handle.

Pillow (13.x) reads 16-bit-per-channel RGB, RGBA and gray+alpha PNGs only as
8-bit images and cannot write them; `lljax.utils.images` uses this module for
those cases:

* `encode(image)`: a 16-bit gray, gray+alpha, RGB or RGBA PNG.
* `is_16bit_color(data)`: whether a PNG is one Pillow would truncate.
* `decode(data)`: non-interlaced 8/16-bit PNGs (an interlaced 16-bit colour
  PNG raises ``ValueError``).

The Average/Paeth unfiltering sweeps the image one anti-diagonal at a time:
fine for occasional files, slow for bulk decoding of large 16-bit images
(``benchmarks/README.md``).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # color type -> samples per pixel


def _png_chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode(image: np.ndarray) -> bytes:
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


def is_16bit_color(data: bytes) -> bool:
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


def decode(data: bytes) -> np.ndarray:
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
