"""Tests for lljax.utils.images: conversion, grids, PNG writing and robust reading."""

import io
import os
import struct
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps
from skimage import data as skdata

from lljax.utils import images
from lljax.utils import png16
from lljax.utils.images import (
    ImageReadError, make_grid, read_image, save_png, to_float01, to_uint8)

RNG = np.random.default_rng(0)


def _quadrants(height=32, width=48):
  """uint8 RGB image with four flat, very different quadrant colors (JPEG-proof)."""
  image = np.zeros((height, width, 3), np.uint8)
  image[:height // 2, :width // 2] = (255, 0, 0)
  image[:height // 2, width // 2:] = (0, 255, 0)
  image[height // 2:, :width // 2] = (0, 0, 255)
  image[height // 2:, width // 2:] = (255, 255, 255)
  return image


def _save_pil(path, image, **kwargs):
  image.save(path, **kwargs)
  return path


def _png_chunk(kind, body):
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a, b, c):
  pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
  return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _png_with_filters(pixels, color_type, filters, extra_chunks=()):
  """Test-side PNG encoder applying the given filter type to each row.

  pixels: uint8 or uint16 [H, W, C]; filters: one type (0-4) per row.
  """
  height, width, channels = pixels.shape
  depth = 16 if pixels.dtype == np.uint16 else 8
  bpp = channels * depth // 8
  rows = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
  x = rows.astype(np.int32)
  up = np.vstack([np.zeros_like(x[:1]), x[:-1]])
  left = np.pad(x, ((0, 0), (bpp, 0)))[:, :-bpp]
  up_left = np.pad(up, ((0, 0), (bpp, 0)))[:, :-bpp]
  predictions = [0 * x, left, up, (left + up) // 2, _paeth(left, up, up_left)]
  filtered = np.stack([predictions[f][i] for i, f in enumerate(filters)])
  raw = np.concatenate([np.asarray(filters, np.uint8)[:, None], (x - filtered) % 256], axis=1)
  header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
  return b"".join([
      b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header), *extra_chunks,
      _png_chunk(b"IDAT", zlib.compress(raw.astype(np.uint8).tobytes())),
      _png_chunk(b"IEND", b"")])


# --- conversion --------------------------------------------------------------


def test_to_uint8_rounding_and_clipping():
  k = np.arange(256)
  np.testing.assert_array_equal(to_uint8(k / 255), k)
  np.testing.assert_array_equal(to_uint8((k / 255).astype(np.float32)), k)
  # Half-way values round up (np.round would give 0 and 2).
  np.testing.assert_array_equal(to_uint8(np.array([0.5, 1.5]) / 255), [1, 2])
  np.testing.assert_array_equal(to_uint8(np.array([-0.5, 1.7, np.nan, np.inf])), [0, 255, 0, 255])
  out = to_uint8(jnp.full((2, 3), 0.5, jnp.bfloat16))
  assert out.dtype == np.uint8 and out.shape == (2, 3) and np.all(out == 128)
  with pytest.raises(TypeError):
    to_uint8(np.zeros(3, np.int32))


def test_to_float01():
  np.testing.assert_array_equal(to_float01(np.array([0, 255], np.uint8)), [0.0, 1.0])
  out = to_float01(np.array([0, 32768, 65535], np.uint16))
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, [0.0, 32768 / 65535, 1.0])
  k = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(to_uint8(to_float01(k)), k)
  with pytest.raises(TypeError):
    to_float01(np.zeros(3, np.float32))


# --- grids -------------------------------------------------------------------


def test_make_grid_layout():
  a = np.full((10, 20, 3), 10, np.uint8)
  b = np.full((12, 8), 0.5, np.float32)  # gray float
  c = np.full((5, 5, 1), 30, np.uint8)
  grid = make_grid([[a, b], [c]], pad=2, pad_value=255)
  # Row heights 12 and 5; column widths 20 and 8.
  assert grid.shape == (2 + 12 + 2 + 5 + 2, 2 + 20 + 2 + 8 + 2, 3)
  assert grid.dtype == np.uint8
  assert np.all(grid[2:12, 2:22] == 10)
  assert np.all(grid[12:14, 2:22] == 255)  # a is shorter than its row
  assert np.all(grid[2:14, 24:32] == 128)
  assert np.all(grid[16:21, 2:7] == 30)
  assert np.all(grid[16:21, 7:22] == 255)  # c is narrower than its column
  assert np.all(grid[16:21, 24:32] == 255)  # missing cell
  assert np.all(grid[0:2] == 255) and np.all(grid[:, -2:] == 255)


def test_make_grid_pad_options():
  cells = [[np.zeros((4, 4, 3), np.uint8)] * 3] * 2
  grid = make_grid(cells, pad=0)
  assert grid.shape == (8, 12, 3) and not grid.any()
  grid = make_grid(cells, pad=1, pad_value=(1, 2, 3))
  assert grid.shape == (11, 16, 3)
  np.testing.assert_array_equal(grid[0, 0], [1, 2, 3])
  with pytest.raises(ValueError):
    make_grid([[]])
  with pytest.raises(ValueError, match="HxWx3"):
    make_grid([[np.zeros((4, 4, 4), np.uint8)]])


# --- PNG round trips -----------------------------------------------------------


@pytest.mark.parametrize("dtype,shape", [
    (np.uint8, (13, 17, 3)), (np.uint8, (13, 17)),
    (np.uint16, (13, 17, 3)), (np.uint16, (13, 17)),
])
def test_png_round_trip(tmp_path, dtype, shape):
  image = RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
  path = tmp_path / "x.png"
  save_png(path, image)
  got, info = read_image(path)
  expected = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
  assert got.dtype == dtype and got.shape == (13, 17, 3)
  np.testing.assert_array_equal(got, expected)
  assert info["format"] == "PNG" and info["alpha"] is None and info["orientation"] == 1
  assert info["bit_depth"] == (16 if dtype == np.uint16 else 8)
  if image.ndim == 2:
    assert info["mode"] == ("I;16" if dtype == np.uint16 else "L")


def test_16bit_rgb_png_is_standard(tmp_path):
  """Our 16-bit RGB encoder's output is what Pillow (lossily) decodes too."""
  image = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
  save_png(tmp_path / "x.png", image)
  with Image.open(tmp_path / "x.png") as pil:
    np.testing.assert_array_equal(np.asarray(pil.convert("RGB")), image >> 8)


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("color_type,channels", [(0, 1), (2, 3), (4, 2), (6, 4)])
def test_png_decoder_all_filter_types(depth, color_type, channels):
  dtype = np.uint16 if depth == 16 else np.uint8
  image = RNG.integers(0, np.iinfo(dtype).max + 1, (23, 7, channels), dtype=dtype)
  filters = [0, 1, 2, 3, 4] * 4 + [3, 4, 1]
  data = _png_with_filters(image, color_type, filters)
  np.testing.assert_array_equal(png16.decode(data), image)
  for single in range(5):  # long runs of one filter type
    data = _png_with_filters(image, color_type, [single] * 23)
    np.testing.assert_array_equal(png16.decode(data), image)


def test_png_decoder_matches_pillow_on_adaptive_filters():
  yy, xx = np.mgrid[:64, :80]
  image = np.stack([xx * 3, yy * 4, (xx * yy) % 256, (xx + yy) % 256], -1).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  np.testing.assert_array_equal(png16.decode(buffer.getvalue()), image)


def test_third_party_16bit_rgb_png():
  """skimage ships a 16-bit RGB PNG written by another encoder (mixed filters)."""
  path = os.path.join(os.path.dirname(skdata.__file__), "chessboard_RGB.png")
  if not os.path.exists(path):
    pytest.skip("skimage data file not installed")
  got, info = read_image(path)
  assert got.dtype == np.uint16 and got.shape == (200, 200, 3) and info["mode"] == "RGB"
  with Image.open(path) as pil:  # Pillow keeps only the high bytes
    np.testing.assert_array_equal(got >> 8, np.asarray(pil.convert("RGB")))
  assert got.min() == 0 and got.max() == 65535


def test_16bit_rgba_png(tmp_path):
  image = RNG.integers(0, 65536, (6, 5, 4), dtype=np.uint16)
  path = tmp_path / "rgba16.png"
  path.write_bytes(_png_with_filters(image, 6, [4, 3, 1, 2, 0, 4]))
  got, info = read_image(path)
  assert got.dtype == np.uint16 and info["bit_depth"] == 16 and info["mode"] == "RGBA"
  np.testing.assert_array_equal(got, image[..., :3])
  np.testing.assert_array_equal(info["alpha"], image[..., 3])


# --- modes ---------------------------------------------------------------------


def test_gray_rgba_palette_handling(tmp_path):
  rgb = _quadrants(8, 10)
  gray = rgb[..., 1]
  alpha = RNG.integers(0, 256, (8, 10), dtype=np.uint8)

  got, info = read_image(_save_pil(tmp_path / "l.png", Image.fromarray(gray)))
  assert info["mode"] == "L" and got.shape == (8, 10, 3)
  assert all(np.array_equal(got[..., i], gray) for i in range(3))

  got, info = read_image(_save_pil(tmp_path / "rgba.png", Image.fromarray(np.dstack([rgb, alpha]))))
  assert info["mode"] == "RGBA"
  np.testing.assert_array_equal(got, rgb)
  np.testing.assert_array_equal(info["alpha"], alpha)

  got, info = read_image(
      _save_pil(tmp_path / "la.png", Image.fromarray(np.dstack([gray, alpha]), mode="LA")))
  assert info["mode"] == "LA"
  np.testing.assert_array_equal(got[..., 2], gray)
  np.testing.assert_array_equal(info["alpha"], alpha)

  palette = Image.fromarray(rgb).quantize(colors=4)
  got, info = read_image(_save_pil(tmp_path / "p.png", palette))
  assert info["mode"] == "P" and info["alpha"] is None
  np.testing.assert_array_equal(got, rgb)

  got, info = read_image(_save_pil(tmp_path / "pt.png", palette, transparency=0))
  assert info["mode"] == "P"
  np.testing.assert_array_equal(got, rgb)
  np.testing.assert_array_equal(info["alpha"], np.where(np.asarray(palette) == 0, 0, 255))

  got, info = read_image(_save_pil(tmp_path / "one.png", Image.fromarray(gray > 100)))
  assert info["mode"] == "1" and got.dtype == np.uint8
  np.testing.assert_array_equal(got[..., 0], np.where(gray > 100, 255, 0))


# --- EXIF orientation --------------------------------------------------------


def _exif(orientation):
  exif = Image.Exif()
  exif[0x0112] = orientation
  return exif


def test_jpeg_exif_orientation(tmp_path):
  stored = _quadrants(32, 48)  # as the camera stored it: red top-left
  path = _save_pil(
      tmp_path / "o.jpg", Image.fromarray(stored), quality=95, subsampling=0, exif=_exif(6))
  got, info = read_image(path)
  # Orientation 6: the stored image must be turned 90 degrees clockwise.
  assert info["orientation"] == 6 and info["format"] == "JPEG"
  assert got.shape == (48, 32, 3)
  error = lambda expected: np.abs(got.astype(int) - expected).mean()
  assert error(np.rot90(stored, k=-1)) < 3
  assert error(np.rot90(stored, k=1)) > 100  # the other direction is far off
  assert tuple(got[2, -3]) == pytest.approx((255, 0, 0), abs=30)  # red is now top-right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(tmp_path, orientation):
  stored = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  pil = Image.fromarray(stored)
  pil.getexif()[0x0112] = orientation
  expected = np.asarray(ImageOps.exif_transpose(pil))
  # Our NumPy path (used for 16-bit color PNGs) against Pillow's.
  np.testing.assert_array_equal(images._orient(stored, orientation), expected)
  path = _save_pil(tmp_path / "o.png", Image.fromarray(stored), exif=_exif(orientation))
  got, info = read_image(path)
  np.testing.assert_array_equal(got, expected)
  assert info["orientation"] == orientation


def test_16bit_png_exif_orientation(tmp_path):
  stored = RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
  exif_chunk = _png_chunk(b"eXIf", _exif(8).tobytes())
  path = tmp_path / "o16.png"
  path.write_bytes(_png_with_filters(stored, 2, [1] * 5, extra_chunks=[exif_chunk]))
  got, info = read_image(path)
  assert info["orientation"] == 8 and got.dtype == np.uint16
  np.testing.assert_array_equal(got, np.rot90(stored, k=1))  # 90 degrees counter-clockwise


# --- broken files --------------------------------------------------------------


def _assert_read_error(path):
  with pytest.raises(ImageReadError) as excinfo:
    read_image(path)
  assert str(path) in str(excinfo.value) and excinfo.value.path == str(path)
  assert isinstance(excinfo.value, ValueError)
  return excinfo.value


def _photo_bytes(fmt, **kwargs):
  yy, xx = np.mgrid[:96, :128]
  image = np.stack([xx * 2, yy * 2, RNG.integers(0, 256, (96, 128))], -1).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


@pytest.mark.parametrize("allow_truncated_elsewhere", [False, True])
@pytest.mark.parametrize("name,data", [
    ("cut.png", _photo_bytes("PNG")[:2000]),
    ("cut.jpg", _photo_bytes("JPEG", quality=90)[:2000]),
    ("cut16.png",
     png16.encode(RNG.integers(0, 65536, (40, 50, 3), dtype=np.uint16))[:-200]),
    ("noise.png", RNG.integers(0, 256, 5000, dtype=np.uint8).tobytes()),
    ("empty.jpg", b""),
])
def test_broken_files_raise(tmp_path, monkeypatch, name, data, allow_truncated_elsewhere):
  # tensorflow-datasets switches this Pillow global on; we must still notice truncation.
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", allow_truncated_elsewhere)
  path = tmp_path / name
  path.write_bytes(data)
  error = _assert_read_error(path)
  assert error.reason
  assert ImageFile.LOAD_TRUNCATED_IMAGES is allow_truncated_elsewhere  # restored


def test_corrupt_16bit_png_crc(tmp_path):
  data = bytearray(png16.encode(RNG.integers(0, 65536, (8, 8, 3), dtype=np.uint16)))
  data[60] ^= 0xFF  # inside the IDAT data
  path = tmp_path / "crc.png"
  path.write_bytes(bytes(data))
  _assert_read_error(path)


def test_interlaced_16bit_rgb_is_refused(tmp_path):
  data = bytearray(png16.encode(np.zeros((4, 4, 3), np.uint16)))
  data[28] = 1  # IHDR interlace method (Adam7)
  data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
  path = tmp_path / "adam7.png"
  path.write_bytes(bytes(data))
  with pytest.raises(ImageReadError):
    read_image(path)


def test_missing_file_is_not_a_decode_error(tmp_path):
  with pytest.raises(FileNotFoundError):
    read_image(tmp_path / "nope.png")


# --- atomic, protected writes --------------------------------------------------


def test_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch):
  path = tmp_path / "sample.png"
  save_png(path, np.zeros((4, 4, 3), np.uint8))
  save_png(path, np.full((4, 4, 3), 7, np.uint8))  # overwrite
  assert os.listdir(tmp_path) == ["sample.png"]
  assert read_image(path)[0][0, 0, 0] == 7
  umask = os.umask(0)
  os.umask(umask)
  assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)

  def failing_replace(src, dst):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", failing_replace)
  with pytest.raises(OSError, match="disk full"):
    save_png(tmp_path / "other.png", np.zeros((4, 4, 3), np.uint8))
  assert os.listdir(tmp_path) == ["sample.png"]
  assert read_image(path)[0][0, 0, 0] == 7


def test_protect_refuses(tmp_path, monkeypatch):
  original = tmp_path / "gt.png"
  save_png(original, np.full((4, 4, 3), 9, np.uint8))
  before = original.read_bytes()
  os.symlink(original, tmp_path / "link.png")
  os.link(original, tmp_path / "hard.png")
  monkeypatch.chdir(tmp_path)
  image = np.zeros((4, 4, 3), np.uint8)
  for target in (original, "gt.png", "./sub/../gt.png", tmp_path / "link.png", "hard.png"):
    with pytest.raises(ValueError, match="protected"):
      save_png(target, image, protect=[str(original)])
  assert original.read_bytes() == before
  save_png(tmp_path / "out.png", image, protect=[original])  # other paths are fine
  assert (tmp_path / "out.png").exists()


def test_save_png_rejects_bad_images(tmp_path):
  with pytest.raises(ValueError, match="uint8 or uint16"):
    save_png(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
  with pytest.raises(ValueError, match="HxWxC"):
    save_png(tmp_path / "f.png", np.zeros((4, 4, 5), np.uint8))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [2, 4])
def test_png_with_alpha_round_trip(tmp_path, dtype, channels):
  image = RNG.integers(0, np.iinfo(dtype).max + 1, (9, 11, channels), dtype=dtype)
  save_png(tmp_path / "a.png", image)
  got, info = read_image(tmp_path / "a.png")
  color = image[..., :-1] if channels == 4 else np.repeat(image[..., :1], 3, axis=-1)
  np.testing.assert_array_equal(got, color)
  np.testing.assert_array_equal(info["alpha"], image[..., -1])
  assert got.dtype == info["alpha"].dtype == dtype
