"""ConvTranspose2d, PReLU, Dense (torch Linear) and pad2d against direct NumPy versions of the torch definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lljax.nn import ConvTranspose2d, Dense, PReLU, init_variables, pad2d


def _conv_transpose_reference(x, w, stride, pad, out_pad):
  """torch.nn.ConvTranspose2d by definition: x (B,C,H,W), w (C,O,k,k); scatter each input pixel."""
  b, _, h, wd = x.shape
  k = w.shape[2]
  full = np.zeros((b, w.shape[1], (h - 1) * stride + k + out_pad, (wd - 1) * stride + k + out_pad))
  for i in range(h):
    for j in range(wd):
      full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum("bc,cokl->bokl", x[:, :, i, j], w)
  ho, wo = (h - 1) * stride - 2 * pad + k + out_pad, (wd - 1) * stride - 2 * pad + k + out_pad
  return full[:, :, pad:pad + ho, pad:pad + wo]


@pytest.mark.parametrize("k,stride,pad,out_pad", [(3, 2, 1, 1), (3, 1, 1, 0), (4, 2, 1, 0), (3, 2, 0, 0)])
def test_conv_transpose_matches_torch_definition(k, stride, pad, out_pad):
  rng = np.random.default_rng(k + stride)
  x = rng.normal(size=(2, 3, 5, 4))
  conv = ConvTranspose2d(4, k, stride, pad, out_pad)
  params = init_variables(conv, 0, jnp.zeros((1, 5, 4, 3)))["params"]
  w = np.asarray(params["kernel"]).transpose(2, 3, 0, 1)  # back to torch (in, out, kh, kw)
  got = np.asarray(conv.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)))
  want = _conv_transpose_reference(x, w, stride, pad, out_pad) + np.asarray(params["bias"])[None, :, None, None]
  np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, atol=1e-5)


def test_conv_transpose_default_init_uses_torch_fan_in():
  """torch's fan-in of a transposed conv is out_channels * k * k (dim 1 of its (in, out, k, k) weight)."""
  params = init_variables(ConvTranspose2d(2, 3), 0, jnp.zeros((1, 4, 4, 50)))["params"]
  bound = 1 / np.sqrt(2 * 9)
  kernel = np.asarray(params["kernel"])
  assert kernel.shape == (3, 3, 50, 2) and kernel.max() <= bound and kernel.max() > 0.9 * bound


def test_prelu_and_linear():
  prelu = PReLU()
  params = init_variables(prelu, 0, jnp.zeros((1, 3)))["params"]
  assert params["weight"].shape == (1,) and float(params["weight"][0]) == 0.25
  np.testing.assert_allclose(prelu.apply({"params": {"weight": jnp.array([0.1])}}, jnp.array([-2.0, 0.0, 3.0])),
                             [-0.2, 0.0, 3.0], rtol=1e-6)
  linear = Dense(3, use_bias=False)
  params = init_variables(linear, 0, jnp.zeros((2, 5)))["params"]
  assert set(params) == {"kernel"} and params["kernel"].shape == (5, 3)
  assert np.abs(params["kernel"]).max() <= 1 / np.sqrt(5)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5)), jnp.float32)
  np.testing.assert_allclose(linear.apply({"params": params}, x), np.asarray(x) @ params["kernel"], rtol=1e-5)


@pytest.mark.parametrize("mode,np_mode", [("replicate", "edge"), ("reflect", "reflect"), ("circular", "wrap"),
                                          ("symmetric", "symmetric"), ("zeros", "constant")])
@pytest.mark.parametrize("pad", [2, (1, 0, 3, 2)])
def test_pad2d_equals_numpy_pad(mode, np_mode, pad):
  x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
  t, b, l, r = (pad,) * 4 if isinstance(pad, int) else pad
  want = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), mode=np_mode)
  np.testing.assert_array_equal(pad2d(jnp.asarray(x), pad, mode), want)


def test_pad2d_gradient_sums_copies():
  g = jax.grad(lambda x: jnp.sum(pad2d(x, 1, "replicate")))(jnp.zeros((1, 3, 3, 1)))
  np.testing.assert_array_equal(g[0, :, :, 0], [[4, 2, 4], [2, 1, 2], [4, 2, 4]])
  with pytest.raises(ValueError, match="unknown padding mode"):
    pad2d(jnp.zeros((1, 3, 3, 1)), 1, "mirror")
