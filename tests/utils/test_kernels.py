"""Blur-kernel files and validation (non-blind deblurring inputs)."""

import numpy as np
import pytest
from PIL import Image

from lljax.utils import kernels


def test_png_and_npy_kernels_are_read_and_normalised(tmp_path):
  k = np.zeros((5, 4), np.uint8)
  k[2, 1:3] = 200
  k[1, 1] = 100
  Image.fromarray(k).save(tmp_path / "a_kernel.png")
  out = kernels.read_kernel(tmp_path / "a_kernel.png", 37)
  assert out.dtype == np.float32 and out.shape == (5, 4)
  np.testing.assert_allclose(out, k / k.sum(), rtol=1e-6)
  k16 = (k.astype(np.uint16) * 257)
  Image.fromarray(k16).save(tmp_path / "b_kernel.png")
  np.testing.assert_allclose(kernels.read_kernel(tmp_path / "b_kernel.png", 37), k / k.sum(), rtol=1e-5)
  np.save(tmp_path / "c_kernel.npy", k.astype(np.float64) * 3)
  np.testing.assert_allclose(kernels.read_kernel(tmp_path / "c_kernel.npy", 37), k / k.sum(), rtol=1e-6)


def test_kernel_file_next_to_image(tmp_path):
  image = tmp_path / "photo.jpg"
  with pytest.raises(FileNotFoundError, match="photo_kernel.png or photo_kernel.npy"):
    kernels.kernel_path_for(image)
  np.save(tmp_path / "photo_kernel.npy", np.ones((3, 3)))
  assert kernels.kernel_path_for(image) == tmp_path / "photo_kernel.npy"
  assert kernels.is_kernel_file(tmp_path / "photo_kernel.npy") and not kernels.is_kernel_file(image)


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 3)), "empty"), (np.zeros((4, 4)), "all zero"), (-np.eye(3), "negative"),
    (np.ones((38, 5)), "larger than the model's 37x37"), (np.full((3, 3), np.nan), "NaN"),
    (np.ones((2, 3, 3, 3)), "2-D"),
])
def test_bad_kernels_are_named_in_the_error(tmp_path, array, message):
  path = tmp_path / "x_kernel.npy"
  np.save(path, array)
  with pytest.raises(ValueError, match=message) as info:
    kernels.read_kernel(path, 37)
  assert str(path) in str(info.value)


def test_empty_or_unreadable_kernel_files(tmp_path):
  (tmp_path / "e_kernel.png").write_bytes(b"")
  with pytest.raises(ValueError, match="file is empty"):
    kernels.read_kernel(tmp_path / "e_kernel.png", 37)
  (tmp_path / "g_kernel.png").write_bytes(b"not a png")
  with pytest.raises(ValueError, match="not a readable kernel image"):
    kernels.read_kernel(tmp_path / "g_kernel.png", 37)
  with pytest.raises(FileNotFoundError):
    kernels.read_kernel(tmp_path / "missing_kernel.npy", 37)


def test_check_kernels_broadcasts_one_kernel_over_a_batch():
  out = kernels.check_kernels(np.ones((3, 3)), 4, 37)
  assert out.shape == (4, 3, 3)
  np.testing.assert_allclose(out.sum(axis=(1, 2)), 1.0, rtol=1e-6)
