"""BatchNorm2d with torch's train/eval semantics, and the buffer protocol it relies on."""

import jax
import jax.numpy as jnp
import numpy as np

from lljax.nn import BUFFERS, BatchNorm2d, assign_buffers, init_variables


def _setup():
  bn = BatchNorm2d(3)
  rng = np.random.default_rng(0)
  params = {"scale": rng.uniform(0.5, 2, 3), "bias": rng.normal(size=3), "running_mean": rng.normal(size=3),
            "running_var": rng.uniform(0.5, 2, 3)}
  params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
  x = jnp.asarray(rng.normal(2.0, 3.0, size=(4, 5, 6, 3)), jnp.float32)
  return bn, params, x


def test_initial_values_are_torch_defaults():
  params = init_variables(BatchNorm2d(4), 0, jnp.zeros((1, 2, 2, 4)))["params"]
  for name, value in (("scale", 1), ("bias", 0), ("running_mean", 0), ("running_var", 1)):
    np.testing.assert_array_equal(params[name], np.full(4, value))


def test_eval_uses_running_statistics():
  bn, params, x = _setup()
  want = (x - params["running_mean"]) / np.sqrt(params["running_var"] + 1e-5) * params["scale"] + params["bias"]
  np.testing.assert_allclose(bn.apply({"params": params}, x), want, rtol=1e-5, atol=1e-5)


def test_train_mode_uses_batch_statistics_and_updates_running_ones():
  bn, params, x = _setup()
  y, state = bn.apply({"params": params}, x, mutable=[BUFFERS])
  xn = np.asarray(x, np.float64)
  mean, var = xn.mean(axis=(0, 1, 2)), xn.var(axis=(0, 1, 2))
  np.testing.assert_allclose(y, (xn - mean) / np.sqrt(var + 1e-5) * params["scale"] + params["bias"], atol=1e-4)
  n = 4 * 5 * 6
  new = state[BUFFERS]
  np.testing.assert_allclose(new["running_mean"], 0.9 * np.asarray(params["running_mean"]) + 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(new["running_var"], 0.9 * np.asarray(params["running_var"]) + 0.1 * var * n / (n - 1),
                             rtol=1e-5)
  updated = assign_buffers(params, new)
  np.testing.assert_array_equal(updated["running_mean"], new["running_mean"])
  np.testing.assert_array_equal(updated["scale"], params["scale"])
  kept = assign_buffers(params, new, assign_if=jnp.bool_(False))
  np.testing.assert_array_equal(kept["running_mean"], params["running_mean"])


def test_running_statistics_get_no_gradient():
  bn, params, x = _setup()
  for mutable in ([], [BUFFERS]):
    grads = jax.grad(lambda p: jnp.sum(bn.apply({"params": p}, x, mutable=mutable)[0] ** 2)
                     if mutable else jnp.sum(bn.apply({"params": p}, x) ** 2))(params)
    assert not np.any(grads["running_mean"]) and not np.any(grads["running_var"])
    assert np.any(grads["scale"])
