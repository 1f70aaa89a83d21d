"""LayerNorm, Dense, GELU, CBAM, ECA and the window helpers against direct NumPy definitions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lljax import nn as lnn

RNG = np.random.default_rng(0)


def _apply(module, *args):
  params = lnn.init_variables(module, 0, *args)["params"]
  params = jax.tree.map(lambda p: p + 0.3 * RNG.normal(size=p.shape).astype(p.dtype), params)
  return module.apply({"params": params}, *args), params


def _sigmoid(v):
  return 1.0 / (1.0 + np.exp(-v))


def test_layer_norm_is_torch_layer_norm():
  x = RNG.normal(2.0, 3.0, size=(2, 3, 4, 6)).astype(np.float32)
  y, p = _apply(lnn.LayerNorm(), jnp.asarray(x))
  mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)  # population variance
  np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"], atol=1e-5)
  # eps 1e-5 (torch), not Flax's 1e-6: a constant row normalises to bias exactly
  const = jnp.ones((1, 1, 1, 6))
  np.testing.assert_allclose(lnn.LayerNorm().apply({"params": p}, const), np.broadcast_to(p["bias"], (1, 1, 1, 6)))


def test_dense_is_torch_linear_with_default_init():
  module = lnn.Dense(5)
  x = jnp.asarray(RNG.normal(size=(3, 8)), jnp.float32)
  params = lnn.init_variables(module, 0, x)["params"]
  assert params["kernel"].shape == (8, 5) and np.abs(params["kernel"]).max() <= 1 / math.sqrt(8)
  np.testing.assert_allclose(module.apply({"params": params}, x), np.asarray(x) @ params["kernel"] + params["bias"],
                             rtol=1e-5, atol=1e-6)


def test_gelu_is_exact_erf_form():
  x = np.linspace(-4, 4, 101).astype(np.float32)
  erf = np.vectorize(math.erf)
  np.testing.assert_allclose(lnn.gelu(jnp.asarray(x)), 0.5 * x * (1 + erf(x / math.sqrt(2))), atol=1e-6)
  assert abs(float(lnn.gelu(1.5)) - float(jax.nn.gelu(1.5))) > 1e-5  # not the tanh approximation


def test_eca_reference():
  x = RNG.normal(size=(2, 3, 4, 7)).astype(np.float32)
  y, p = _apply(lnn.ECA(), jnp.asarray(x))
  w = p["kernel"][:, 0, 0]
  pooled = np.pad(x.mean(axis=(1, 2)), ((0, 0), (1, 1)))
  logits = w[0] * pooled[:, :-2] + w[1] * pooled[:, 1:-1] + w[2] * pooled[:, 2:]  # torch Conv1d, zero pad 1
  np.testing.assert_allclose(y, x * _sigmoid(logits)[:, None, None, :], atol=1e-5)


def test_cbam_reference():
  x = RNG.normal(size=(2, 5, 6, 32)).astype(np.float32)
  y, p = _apply(lnn.CBAM(reduction=16), jnp.asarray(x))
  gate = p["channel_gate"]
  assert gate["fc1"]["kernel"].shape == (32, 2)
  mlp = lambda v: np.maximum(v @ gate["fc1"]["kernel"] + gate["fc1"]["bias"], 0) @ gate["fc2"]["kernel"] + gate["fc2"]["bias"]
  xc = x * _sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))[:, None, None, :]
  pooled = np.stack([xc.max(-1), xc.mean(-1)], -1)  # [max, mean] in this order
  k = p["spatial_gate"]["conv"]["kernel"]  # (7, 7, 2, 1)
  padded = np.pad(pooled, ((0, 0), (3, 3), (3, 3), (0, 0)))
  logits = sum(padded[:, i:i + 5, j:j + 6] @ k[i, j] for i in range(7) for j in range(7))
  np.testing.assert_allclose(y, xc * _sigmoid(logits) + x, atol=1e-4)


@pytest.mark.parametrize("ws", [2, 5])
def test_window_partition_merge_round_trip_and_order(ws):
  x = RNG.normal(size=(2, 2 * ws, 3 * ws, 4)).astype(np.float32)
  windows = lnn.window_partition(jnp.asarray(x), ws)
  assert windows.shape == (2, 6, ws, ws, 4)
  # window k is the k-th block in row-major order
  np.testing.assert_array_equal(windows[1, 4], x[1, ws:2 * ws, ws:2 * ws])
  np.testing.assert_array_equal(lnn.window_merge(windows, 2 * ws, 3 * ws), x)
  with pytest.raises(ValueError, match="not a multiple"):
    lnn.window_partition(jnp.zeros((1, ws + 1, ws, 1)), ws)


def test_relative_position_index():
  idx = lnn.relative_position_index(2)  # table rows (dy+1)*3 + (dx+1) for positions (0,0),(0,1),(1,0),(1,1)
  np.testing.assert_array_equal(idx, [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
  for ws in (5, 8):
    idx = lnn.relative_position_index(ws)
    assert idx.shape == (ws * ws, ws * ws) and idx.min() == 0 and idx.max() == (2 * ws - 1) ** 2 - 1
    assert np.all(np.diag(idx) == (ws - 1) * (2 * ws - 1) + ws - 1)  # zero offset: the table's centre
    assert len(np.unique(idx)) == (2 * ws - 1) ** 2  # every offset occurs


def test_shift_attention_mask_regions():
  mask = lnn.shift_attention_mask(4, 4, 2, 1)
  assert mask.shape == (4, 4, 4) and set(np.unique(mask)) == {0.0, -100.0}
  np.testing.assert_array_equal(mask[0], 0)  # the top-left window lies in one region
  # the bottom-right window holds 4 regions (the rolled-in row and column): no pair mixes
  np.testing.assert_array_equal(mask[3], np.where(np.eye(4), 0.0, -100.0))
  # the top-right window: columns 2 (region A) and 3 (region B), same rows
  np.testing.assert_array_equal(mask[1] == 0, [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])
