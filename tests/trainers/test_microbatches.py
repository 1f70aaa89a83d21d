"""Gradient accumulation (``config.microbatches``): the helpers every trainer uses, and the checks."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lljax import parallel
from lljax.trainers import steps


def _linear_model():
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
  batch = {"x": jnp.asarray(rng.normal(size=(12, 3)), jnp.float32),
           "y": jnp.asarray(rng.normal(size=(12, 2)), jnp.float32)}

  def loss(params, batch):
    err = batch["x"] @ params["w"] + params["b"] - batch["y"]
    return jnp.mean(jnp.square(err)), {"rows": jnp.float32(batch["x"].shape[0]), "first": batch["x"][0, 0]}

  return params, batch, jax.value_and_grad(loss, has_aux=True)


def test_split_is_strided_so_each_part_keeps_every_devices_share():
  x = jnp.arange(12).reshape(12, 1)
  parts = steps.split_microbatches({"x": x}, 3)
  np.testing.assert_array_equal(steps.microbatch(parts, 1)["x"][:, 0], [1, 4, 7, 10])
  np.testing.assert_array_equal(steps.microbatch(parts, jnp.int32(2))["x"][:, 0], [2, 5, 8, 11])
  with pytest.raises(ValueError, match=r"shape \(12, 1\) into 5 microbatches"):
    steps.split_microbatches({"x": x}, 5)


LOOPS = ("scan", "unrolled")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("count", [2, 3, 4])
def test_accumulated_loss_and_grads_equal_the_full_batch(count, loop):
  params, batch, grad_fn = _linear_model()
  accumulate = lambda p, b: steps.accumulate_gradients(grad_fn, p, b, count, loop=loop)
  (loss, aux), grads = jax.jit(accumulate)(params, batch)
  (ref_loss, _), ref_grads = grad_fn(params, batch)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, ref_grads)
  np.testing.assert_array_equal(aux["rows"], [12 / count] * count)  # aux stacked per microbatch
  np.testing.assert_array_equal(aux["first"], batch["x"][:count, 0])  # microbatch i starts at example i


@pytest.mark.parametrize("loop", LOOPS)
def test_advance_threads_state_from_one_microbatch_to_the_next(loop):
  """``advance`` gives each microbatch the params the previous one left (torch buffers)."""
  params = {"count": jnp.float32(0.0), "w": jnp.float32(1.0)}

  def grad_fn(p, batch):
    del batch
    return (p["w"] * p["count"], {"seen": p["count"]}), {"count": jnp.float32(0.0), "w": p["count"]}

  advance = lambda p, aux: {**p, "count": aux["seen"] + 1.0}
  (loss, aux), grads = steps.accumulate_gradients(grad_fn, params, {"x": jnp.zeros((4, 1))}, 4, advance, loop)
  np.testing.assert_array_equal(aux["seen"], [0.0, 1.0, 2.0, 3.0])
  np.testing.assert_allclose(loss, 1.5)
  np.testing.assert_allclose(grads["w"], 1.5)


def _conv_stack_grad_fn():
  """A 4-layer conv net whose activations (B, 32, 32, 32) dominate its step's memory."""
  rng = np.random.default_rng(1)
  params = [jnp.asarray(rng.normal(size=(3, 3, c_in, c_out)) * 0.1, jnp.float32)
            for c_in, c_out in ((3, 32), (32, 32), (32, 32), (32, 3))]

  def loss(params, batch):
    x = batch["x"]
    for kernel in params:
      x = jnp.tanh(jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "HWIO", "NHWC")))
    return jnp.mean(jnp.square(x - batch["x"])), {}

  batch = {"x": jnp.asarray(rng.uniform(size=(8, 32, 32, 3)), jnp.float32)}
  return params, batch, jax.value_and_grad(loss, has_aux=True)


@pytest.mark.parametrize("loop", LOOPS)
def test_parts_run_one_after_another_in_a_fraction_of_the_memory(loop):
  """XLA's own memory analysis: 4 parts need well under half the temporaries of the whole
  batch (about a quarter plus the gradients) -- the unrolled parts must not be overlapped."""
  params, batch, grad_fn = _conv_stack_grad_fn()
  temp = {}
  for count in (1, 4):
    step = jax.jit(lambda p, b, count=count: steps.accumulate_gradients(grad_fn, p, b, count, loop=loop))
    temp[count] = step.lower(params, batch).compile().memory_analysis().temp_size_in_bytes
  assert temp[4] < 0.45 * temp[1], temp


def test_batch_must_split_into_microbatches_that_split_over_devices():
  mesh = parallel.make_mesh(2)
  ok = ml_collections.ConfigDict(dict(batch_size=8, microbatches=4))
  steps.check_microbatches(ok, mesh)
  steps.check_microbatches(ml_collections.ConfigDict(dict(batch_size=3, microbatches=1)), parallel.make_mesh(1))
  for batch_size, count in ((8, 3), (6, 2), (8, 0)):
    bad = ml_collections.ConfigDict(dict(batch_size=batch_size, microbatches=count))
    with pytest.raises(ValueError, match=f"microbatches={count} does not fit batch_size {batch_size} on 2"):
      steps.check_microbatches(bad, mesh)
