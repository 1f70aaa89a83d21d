"""The flow trainer's objectives: what is encoded, which colour map the prior coin uses, dequantisation."""

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
  host_fn = flow._host_fn  # pylint: disable=protected-access
  assert host_fn(ssflow, _cfg())(example) == {}
  assert host_fn(ssflow, _cfg(objective="self_supervised"))(example) == {"low_mean": np.float32(0.2)}
  assert set(host_fn(llflow, _cfg(objective="self_supervised"))(example)) == {"histeq", "low_mean"}


def test_quant_zero_encodes_the_image_as_is():
  x = np.random.default_rng(2).uniform(size=(2, 4, 4, 3)).astype(np.float32)
  same, logdet = flow._dequantize(jax.random.key(0), x, 0)  # pylint: disable=protected-access
  assert same is x and np.all(np.asarray(logdet) == 0) and logdet.shape == (2,)
  noisy, logdet = flow._dequantize(jax.random.key(0), x, 32)  # pylint: disable=protected-access
  assert 0 < np.abs(np.asarray(noisy) - x).max() <= 1 / 64 and np.allclose(logdet, -np.log(32) * 16)
