"""Tile geometry, seam weights, box down/upscaling and the self-ensemble transforms."""

import numpy as np
import pytest

from lljax import tiling


@pytest.mark.parametrize("h,w,tile,overlap", [(64, 64, 64, 16), (200, 312, 64, 16), (56, 800, 128, 32),
                                              (8, 8, 16, 8), (512, 520, 128, 0)])
def test_tiles_cover_the_image_on_the_grid(h, w, tile, overlap):
  th, tw, corners = tiling.tile_grid(h, w, tile, overlap, 8)
  assert (th, tw) == (min(tile, h), min(tile, w))
  covered = np.zeros((h, w), int)
  weight = np.zeros((h, w, 1), np.float32)
  for y, x in corners:
    assert y % 8 == 0 and x % 8 == 0 and y + th <= h and x + tw <= w
    covered[y:y + th, x:x + tw] += 1
    weight[y:y + th, x:x + tw] += tiling.tile_weights(th, tw, y, x, h, w, overlap)
  assert covered.min() >= 1
  assert weight.min() > 0  # every pixel gets a positive total weight
  xs = sorted({x for _, x in corners})
  assert all(b - a <= tile - overlap for a, b in zip(xs, xs[1:]))  # neighbours overlap enough


def test_regular_grid_weights_partition_unity():
  h, w, tile, overlap = 64, 160, 64, 16  # tiles at x = 0, 48, 96: every overlap is exactly 16
  th, tw, corners = tiling.tile_grid(h, w, tile, overlap, 8)
  assert [x for _, x in corners] == [0, 48, 96]
  total = sum(np.pad(tiling.tile_weights(th, tw, y, x, h, w, overlap), ((y, h - y - th), (x, w - x - tw), (0, 0)))
              for y, x in corners)
  np.testing.assert_allclose(total, 1.0, atol=1e-6)
  wts = tiling.tile_weights(th, tw, 0, 48, h, w, overlap)[0, :, 0]
  assert np.all(wts[:4] == 0) and np.all(wts[12:52] == 1) and np.all(wts[-4:] == 0)  # skip, ramp, 1
  np.testing.assert_array_equal(tiling.tile_weights(th, tw, 0, 0, h, w, overlap)[:, :40], 1.0)  # image border


def test_blending_reconstructs_a_field():
  h, w, tile, overlap = 96, 136, 48, 16
  field = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
  th, tw, corners = tiling.tile_grid(h, w, tile, overlap, 8)
  acc, wsum = np.zeros_like(field), np.zeros((h, w, 1), np.float32)
  for y, x in corners:
    wgt = tiling.tile_weights(th, tw, y, x, h, w, overlap)
    acc[y:y + th, x:x + tw] += field[y:y + th, x:x + tw] * wgt
    wsum[y:y + th, x:x + tw] += wgt
  np.testing.assert_allclose(acc / wsum, field, rtol=1e-6)


def test_grid_errors():
  with pytest.raises(ValueError, match="multiples of 8"):
    tiling.tile_grid(60, 64, 32, 8, 8)
  with pytest.raises(ValueError, match="overlap"):
    tiling.tile_grid(64, 64, 32, 32, 8)


def test_box_down_and_bilinear_up():
  x = np.random.default_rng(1).random((10, 13, 3)).astype(np.float32)
  small = tiling.box_downscale(x, 3)
  assert small.shape == (4, 5, 3)
  np.testing.assert_allclose(small[1, 2], x[3:6, 6:9].mean(axis=(0, 1)), rtol=1e-6)
  np.testing.assert_allclose(small[3, 4], np.full(3, x[9, 12]), rtol=1e-6)  # edge padding
  const = np.full((4, 5, 2), 0.25, np.float32)
  np.testing.assert_allclose(tiling.upscale_bilinear(const, 4, 14, 19), 0.25)
  ramp = np.arange(6, dtype=np.float32)[None, :, None] * np.ones((2, 1, 1), np.float32)
  up = tiling.upscale_bilinear(ramp, 2, 4, 12)[0, :, 0]
  np.testing.assert_allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4.25, 4.75, 5])
  np.testing.assert_allclose(tiling.box_downscale(tiling.upscale_bilinear(ramp, 2, 4, 12), 2)[0, 1:-1, 0],
                             ramp[0, 1:-1, 0])
  np.testing.assert_array_equal(tiling.box_downscale(x, 1), x)


def test_transforms_form_the_dihedral_group():
  x = np.arange(2 * 3 * 2).reshape(2, 3, 2)
  outs = [tiling.transform(x, t) for t in tiling.TRANSFORMS]
  assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
  for t, o in zip(tiling.TRANSFORMS, outs):
    np.testing.assert_array_equal(tiling.invert_transform(o, t), x)
  rotations = [np.rot90(x, k).tobytes() for k in range(4)]
  assert all(r in {o.tobytes() for o in outs} for r in rotations)


def test_pad_reflect():
  x = np.arange(12).reshape(3, 4, 1)
  np.testing.assert_array_equal(tiling.pad_reflect(x, 5, 4)[3:, :, 0], x[[1, 0], :, 0])
  assert tiling.pad_reflect(np.ones((1, 3, 3)), 8, 8).shape == (8, 8, 3)  # edge mode for 1-pixel sides
  with pytest.raises(ValueError, match="cannot pad"):
    tiling.pad_reflect(x, 2, 4)
