"""Rematerialisation: same params tree, same loss and gradients, and really checkpointed."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lljax import models
from lljax.nn import init_variables
from lljax.nn.remat import rematerialize, tie_after, tied_checkpoint
from lljax.trainers import flow

FLOW_CFG = ml_collections.ConfigDict({"objective": "nll", "quant": 32, "train_gt_ratio": 0.0})


def _loss_fn(module, batch, remat, how="checkpoint"):
  def loss(p):
    with rematerialize(remat, how):
      draws = flow.draw(FLOW_CFG, batch, jax.random.key(0))
      inputs, coin = flow.step_inputs(FLOW_CFG, batch, draws)
      return flow.nll_loss(module, coin, draws, p, inputs)[0]

  return loss


def _grad_fn(module, batch, remat, how="checkpoint"):
  return jax.value_and_grad(_loss_fn(module, batch, remat, how))


def _tiny_flow_batch(name, size, batch_size=2):
  rng = np.random.default_rng(0)
  low = rng.uniform(0.0, 0.2, (batch_size, size, size, 3)).astype(np.float32)
  batch = {"low": low, "normal": rng.uniform(size=(batch_size, size, size, 3)).astype(np.float32)}
  if name == "llflow":  # its host feature (the histogram-equalised input)
    batch["histeq"] = rng.uniform(size=low.shape).astype(np.float32)
  return batch


@pytest.mark.parametrize("name", ["llflow", "uptflow", "ssflow"])
def test_remat_keeps_params_loss_and_gradients(name, perturb):
  """Every flow model: same params tree, blocks checkpointed in the gradient's program, both
  ways. LLFlow (the shared FlowStep and the RRDB encoder): same loss and gradients, compiled,
  both ways (the other two models are only traced, to keep the suite's compile time down)."""
  family = models.get(name)
  module = family.Model("tiny")
  size = 16
  params = perturb(init_variables(module, 0, *family.init_inputs(module, size))["params"])
  for how in ("checkpoint", "tied"):
    with rematerialize(True, how):  # the same parameter names and shapes with remat on
      remat_params = init_variables(module, 0, *family.init_inputs(module, size))["params"]
    assert jax.tree.structure(remat_params) == jax.tree.structure(params)
    jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape), remat_params, params)

  batch = _tiny_flow_batch(name, size)
  plain = _grad_fn(module, batch, False)
  plain_jaxpr = str(jax.make_jaxpr(plain)(params))
  assert "checkpoint" not in plain_jaxpr and "remat" not in plain_jaxpr and "custom_vjp" not in plain_jaxpr
  steps = module.L * (module.K + module.n_noaffine)
  checkpointed = str(jax.make_jaxpr(_grad_fn(module, batch, True, "checkpoint"))(params))
  assert checkpointed.count("checkpoint") + checkpointed.count("remat") >= steps  # at least one per flow step
  tied = str(jax.make_jaxpr(_loss_fn(module, batch, True, "tied"))(params))  # (the gradient's inlines the VJP)
  assert tied.count("custom_vjp_call") >= steps
  if name != "llflow":
    return
  loss, grads = jax.jit(plain)(params)
  for how in ("checkpoint", "tied"):
    remat_loss, remat_grads = jax.jit(_grad_fn(module, batch, True, how))(params)
    np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), remat_grads, grads)


def test_tied_remat_cuts_the_compiled_steps_memory_on_the_cpu():
  """XLA:CPU merges a ``jax.checkpoint`` recomputation back into the forward pass; the tied one
  survives compilation: LLFlow's gradient needs well under half the scratch memory (measured
  0.004 -> 0.001 GiB here; the LOL config at 2 x 64²: 0.615 -> 0.097 GiB)."""
  cpu = jax.devices("cpu")[0]  # compiled for XLA:CPU whatever the default backend
  family = models.get("llflow")
  module = family.Model("tiny")
  params = jax.device_put(init_variables(module, 0, *family.init_inputs(module, 32))["params"], cpu)
  batch = jax.device_put(_tiny_flow_batch("llflow", 32, batch_size=4), cpu)
  temp = {how: jax.jit(lambda p, b, how=how: _grad_fn(module, b, how is not None, how or "checkpoint")(p))
          .lower(params, batch).compile().memory_analysis().temp_size_in_bytes for how in (None, "tied")}
  assert temp["tied"] < 0.5 * temp[None], temp


def test_tied_checkpoint_gradients_match_with_integer_inputs_and_closed_over_values():
  """A function of a float array, an integer array and a static value that closes over a traced
  weight: the tied checkpoint's gradients equal plain autodiff's, the weight's included."""

  def loss(w, x):
    def block(x, shift, scale):
      return jnp.tanh(w * x + shift.astype(x.dtype)) * scale
    y = tied_checkpoint(block)(x, jnp.arange(3), 2.0)
    return jnp.sum(jnp.sin(y) ** 2)

  def plain_loss(w, x):
    return jnp.sum(jnp.sin(jnp.tanh(w * x + jnp.arange(3.0)) * 2.0) ** 2)

  w, x = jnp.float32(0.7), jnp.linspace(-1.0, 1.0, 3)
  got = jax.jit(jax.grad(loss, argnums=(0, 1)))(w, x)
  want = jax.grad(plain_loss, argnums=(0, 1))(w, x)
  for g, e in zip(got, want):
    np.testing.assert_allclose(g, e, rtol=1e-6)


def test_tie_after_keeps_values_and_integers_and_ignores_nan():
  tree = {"x": jnp.array([1.5, -2.0]), "n": jnp.array([3, 4])}
  tied = tie_after(tree, {"g": jnp.array([jnp.nan, 1.0]), "i": jnp.array([7])})
  np.testing.assert_array_equal(tied["x"], tree["x"])
  assert tied["n"].dtype == tree["n"].dtype
  np.testing.assert_array_equal(tied["n"], tree["n"])


def test_unknown_remat_kind_is_an_error():
  with pytest.raises(ValueError, match="how must be one of"):
    with rematerialize(True, "sometimes"):
      pass
