"""The flow trainer's objectives: what is encoded, which colour map the prior coin uses, dequantisation."""

import flax
import jax
import ml_collections
import numpy as np
import pytest

from lljax.losses import exposure_normalised
from lljax.models import llflow, ssflow
from lljax.trainers import flow


def _cfg(**kw):
  defaults = {"objective": "nll", "quant": 32, "train_gt_ratio": 0.2, "exposure_level": 0.5}
  return ml_collections.ConfigDict({**defaults, **kw})


def _batch(with_normal=True):
  rng = np.random.default_rng(0)
  batch = {"low": rng.uniform(0, 0.2, size=(2, 8, 8, 3)).astype(np.float32)}
  if with_normal:
    batch["normal"] = rng.uniform(size=(2, 8, 8, 3)).astype(np.float32)
  return batch


def test_paired_objective_encodes_the_normal_image():
  batch = _batch()
  image, colour = flow.flow_target(_cfg(), batch)
  assert image is batch["normal"] and colour is batch["normal"]


def test_self_supervised_objective_reads_only_the_low_image():
  batch = _batch(with_normal=False)  # a KeyError would mean the normal image is read
  batch["low_mean"] = np.array([0.05, 0.1], np.float32)
  image, colour = flow.flow_target(_cfg(objective="self_supervised"), batch)
  assert colour is batch["low"]
  gain = 0.5 / (batch["low_mean"][:, None, None, None] + 1e-3)  # the full image's gain, not the crop's
  np.testing.assert_allclose(image, np.clip(batch["low"] * gain, 0, 1), rtol=1e-6)


def test_exposure_normalised_keeps_the_colour_map():
  low = np.random.default_rng(1).uniform(0.01, 0.1, size=(2, 6, 5, 3)).astype(np.float32)
  out = np.asarray(exposure_normalised(low, 0.5))
  m = low.mean(axis=(1, 2, 3))
  np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.5 * m / (m + 1e-3), rtol=1e-5)  # mean -> the level
  chroma = lambda x: x / x.sum(-1, keepdims=True)
  np.testing.assert_allclose(chroma(out), chroma(low), rtol=1e-5)
  assert np.asarray(exposure_normalised(low, 0.5, mean=np.array([0.001, 0.001]))).max() == 1.0  # clipped


def test_unknown_objective():
  with pytest.raises(ValueError, match="unknown config.flow.objective 'gan'; known: nll, self_supervised"):
    flow.flow_target(_cfg(objective="gan"), _batch())


def test_host_features_add_the_full_image_mean_only_when_needed():
  example = {"low": np.full((16, 16, 3), 51, np.uint8), "normal": np.zeros((16, 16, 3), np.uint8)}
  host_fn = flow.host_fn
  assert host_fn(ssflow, _cfg())(example) == {}
  assert host_fn(ssflow, _cfg(objective="self_supervised"))(example) == {"low_mean": np.float32(0.2)}
  assert set(host_fn(llflow, _cfg(objective="self_supervised"))(example)) == {"histeq", "low_mean"}


def test_quant_zero_encodes_the_image_as_is():
  x = np.random.default_rng(2).uniform(size=(2, 4, 4, 3)).astype(np.float32)
  draws = flow.draw(_cfg(), {"low": x}, jax.random.key(0))
  (_, same, logdet, _, _), _ = flow.step_inputs(_cfg(quant=0), {"low": x, "normal": x}, draws)
  assert same is x and np.all(np.asarray(logdet) == 0) and logdet.shape == (2,)
  (_, noisy, logdet, _, _), _ = flow.step_inputs(_cfg(quant=32), {"low": x, "normal": x}, draws)
  np.testing.assert_allclose(noisy, x + (np.asarray(draws["noise"]) - 0.5) / 32, rtol=1e-6)
  assert 0 < np.abs(np.asarray(noisy) - x).max() <= 1 / 64 and np.allclose(logdet, -np.log(32) * 16)


def test_prior_coin_picks_the_target_colour_map_below_train_gt_ratio():
  x = np.zeros((1, 4, 4, 3), np.float32)
  for coin, expected in ((0.19, True), (0.21, False)):
    _, use_gt = flow.step_inputs(_cfg(train_gt_ratio=0.2), {"low": x, "normal": x},
                                 {"noise": x, "coin": np.float32(coin)})
    assert bool(use_gt) is expected


@pytest.mark.parametrize("family", [llflow, ssflow], ids=["llflow", "ssflow"])
def test_prior_only_params_are_exactly_those_the_target_prior_does_not_use(family):
  """Under the target's prior the declared parameters get an exactly zero gradient (torch: none)
  and every other one a non-zero gradient; under the learned prior they are used. (Torch buffers
  kept in the params, e.g. BatchNorm statistics, never have a gradient.)"""
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel
  from lljax.trainers import optim  # pylint: disable=import-outside-toplevel
  module = family.Model("tiny")
  rng = np.random.default_rng(0)
  batch = {k: rng.uniform(size=(2, 16, 16, 3)).astype(np.float32) for k in ("low", "normal", "histeq")}
  params = init_variables(module, 0, *family.init_inputs(module, 16))["params"]
  params = jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape).astype(p.dtype), params)
  only = optim.path_mask(params, family.PRIOR_ONLY_PARAMS)
  assert any(jax.tree.leaves(only))
  for use_gt in (True, False):
    draws = {"noise": np.zeros_like(batch["low"]), "coin": np.float32(0.0 if use_gt else 1.0)}
    inputs, coin = flow.step_inputs(_cfg(quant=0), batch, draws)
    grads, (_, buffers) = jax.grad(lambda p, coin=coin: flow.nll_loss(module, coin, draws, p, inputs), has_aux=True)(params)
    buffer_paths = set(flax.traverse_util.flatten_dict(flax.core.unfreeze(buffers), sep="/"))
    zero = {k: bool(np.all(np.asarray(g) == 0)) for k, g in flax.traverse_util.flatten_dict(grads, sep="/").items()
            if k not in buffer_paths}
    declared = {k: bool(v) for k, v in flax.traverse_util.flatten_dict(only, sep="/").items() if k not in buffer_paths}
    if use_gt:
      assert zero == declared
    else:
      assert not any(zero[k] for k, v in declared.items() if v)
