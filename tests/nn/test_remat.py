"""Rematerialisation: same params tree, same loss and gradients, and really checkpointed."""

import jax
import ml_collections
import numpy as np
import pytest

from lljax import models
from lljax.nn import init_variables
from lljax.nn.remat import rematerialize
from lljax.trainers import flow

FLOW_CFG = ml_collections.ConfigDict({"objective": "nll", "quant": 32, "train_gt_ratio": 0.0})


def _grad_fn(module, batch, remat):
  def loss(p):
    with rematerialize(remat):
      return flow.loss_fn(module, FLOW_CFG, p, batch, jax.random.key(0))[0]

  return jax.value_and_grad(loss)


@pytest.mark.parametrize("name", ["llflow", "uptflow", "ssflow"])
def test_remat_keeps_params_loss_and_gradients(name, perturb):
  """Every flow model: same params tree, blocks checkpointed in the gradient's program.
  LLFlow (the shared FlowStep and the RRDB encoder): same loss and gradients, compiled (the
  other two models are only traced, to keep the suite's compile time down)."""
  family = models.get(name)
  module = family.Model("tiny")
  size = 16
  params = perturb(init_variables(module, 0, *family.init_inputs(module, size))["params"])
  with rematerialize(True):  # the same parameter names and shapes with remat on
    remat_params = init_variables(module, 0, *family.init_inputs(module, size))["params"]
  assert jax.tree.structure(remat_params) == jax.tree.structure(params)
  jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape), remat_params, params)

  rng = np.random.default_rng(0)
  low = rng.uniform(0.0, 0.2, (2, size, size, 3)).astype(np.float32)
  batch = {"low": low, "normal": rng.uniform(size=(2, size, size, 3)).astype(np.float32)}
  if name == "llflow":  # its host feature (the histogram-equalised input)
    batch["histeq"] = rng.uniform(size=low.shape).astype(np.float32)
  plain, remat = _grad_fn(module, batch, False), _grad_fn(module, batch, True)
  plain_jaxpr, remat_jaxpr = str(jax.make_jaxpr(plain)(params)), str(jax.make_jaxpr(remat)(params))
  assert "checkpoint" not in plain_jaxpr and "remat" not in plain_jaxpr
  blocks = remat_jaxpr.count("checkpoint") + remat_jaxpr.count("remat")
  assert blocks >= module.L * (module.K + module.n_noaffine), blocks  # at least one per flow step
  if name != "llflow":
    return
  (loss, grads), (remat_loss, remat_grads) = jax.jit(plain)(params), jax.jit(remat)(params)
  np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), remat_grads, grads)
