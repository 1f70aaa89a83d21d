"""The precision policy (``lljax.nn.precision``) as users pick it: ``lljax.load(..., precision=)``,
``--precision``, ``config.precision``. The lowered programs carry it op by op (the suite sets no
global ``jax_default_matmul_precision``), so a GPU or TPU runs what was asked for."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import converted_fixture, nhwc
from lljax import api, enhance, evaluate, models
from lljax.nn import precision
from lljax.trainers import steps

_PRODUCT = re.compile(r"stablehlo\.(convolution|dot_general)")


def _restorer(model, setting):
  io, module, params = converted_fixture(model)
  return io, api.Restorer.of_module(model, module, params, setting)


def _products(restorer, side=64):
  """The lines of the lowered enhance program that are convolutions or matrix products."""
  inputs = dict(restorer.model_inputs(np.full((1, side, side, 3), 0.2, np.float32)))
  if restorer.needs_kernel:
    inputs.update(restorer._kernel_inputs(np.ones((5, 5)), 1))  # pylint: disable=protected-access
  text = restorer._programs.enhance.lower(restorer.params, inputs, jnp.float32(0),  # pylint: disable=protected-access
                                          jax.random.key(0)).as_text()
  return [line for line in text.splitlines() if _PRODUCT.search(line)]


@pytest.mark.parametrize("model", models.available())
def test_highest_reaches_every_convolution_and_matrix_product(model):
  _, restorer = _restorer(model, "highest")
  ops = _products(restorer)
  assert ops and all("precision HIGHEST" in op or "precision = [HIGHEST, HIGHEST]" in op for op in ops), \
      [op for op in ops if "HIGHEST" not in op][:3]


@pytest.mark.parametrize("model", ["llflow", "devudp"])
def test_default_and_bfloat16_reach_the_model_layers(model):
  """"default" leaves the layers' products to the backend; only the flows' invertible 1x1
  convolutions and the fixed resampling matrices keep HIGHEST (exact inverses, log-dets).
  "bfloat16" computes them in bfloat16 and still returns float32 images."""
  io, default = _restorer(model, "default")
  ops = _products(default)
  assert sum("DEFAULT" in op for op in ops) > len(ops) / 2
  _, bf16 = _restorer(model, "bfloat16")
  ops = _products(bf16)
  assert sum("xbf16>" in op for op in ops) > len(ops) / 2
  low = nhwc(io["low_rgb01" if model == "llflow" else "input_blurry"])
  out = bf16.enhance(low, clip=False)
  assert out.dtype == np.float32 and out.shape == low.shape and np.isfinite(out).all()


def test_bad_settings_are_clear_errors():
  with pytest.raises(ValueError, match="precision 'fp8': use one of highest, default, bfloat16"):
    _restorer("devudp", "fp8")
  with pytest.raises(ValueError, match="config.precision='bfloat16'.*compute_dtype"):
    with steps.compute_context(precision_setting="bfloat16"):
      pass
  assert enhance.PRECISIONS == evaluate.PRECISIONS == precision.SETTINGS  # the CLIs' choices, kept jax-free
