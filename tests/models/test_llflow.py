"""LLFlow against the official PyTorch forward passes (tests/fixtures/llflow, see its README)."""

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import converted_fixture, nhwc
from lljax.losses import nll_bits_per_pixel
from lljax.models import llflow
from lljax.nn import init_variables

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "llflow"
ATOL = 1e-4


fixture = functools.partial(converted_fixture, "llflow")


def our_inputs(io):
  """From the raw low image through lljax's own preprocessing (uint8 -> histeq -> model)."""
  low = nhwc(io["low_rgb01"])
  low_u8 = np.round(low * 255).astype(np.uint8)
  histeq = np.stack([llflow.equalize_hist(im) for im in low_u8]).astype(np.float32) / 255
  return {"low": jnp.asarray(low), "histeq": jnp.asarray(histeq)}


def test_histeq_matches_opencv_fixture():
  io, _, _ = fixture()
  np.testing.assert_allclose(our_inputs(io)["histeq"], nhwc(io["histeq_rgb01"]), atol=1e-7)


def test_equalize_hist_edge_cases():
  const = np.full((4, 5, 1), 7, np.uint8)
  np.testing.assert_array_equal(llflow.equalize_hist(const), const)
  ramp = np.arange(0, 256, 16, dtype=np.uint8).reshape(4, 4, 1)  # 16 equally likely levels
  out = llflow.equalize_hist(ramp).ravel()
  assert out[0] == 0 and out[-1] == 255 and np.all(np.diff(out.astype(int)) > 0)
  with pytest.raises(ValueError, match="uint8"):
    llflow.equalize_hist(np.zeros((4, 4, 3), np.float32))


def test_encode_matches_official():
  io, model, params = fixture()
  out, state = model.apply({"params": params}, our_inputs(io), jnp.asarray(nhwc(io["gt_input"])),
                           method=model.encode, mutable=["intermediates"])
  inter = state["intermediates"]
  encoder = inter["encoder"][0]
  np.testing.assert_allclose(encoder["input_color_map"], nhwc(io["cond_internal_color_map"]), atol=ATOL)
  np.testing.assert_allclose(encoder["input_noise_map"], nhwc(io["cond_internal_noise_map"]), atol=ATOL)
  np.testing.assert_allclose(encoder["color_map"], nhwc(io["cond_color_map"]), atol=ATOL)
  np.testing.assert_allclose(encoder["block_0"], nhwc(io["cond_block_0"]), atol=ATOL)
  for level in (1, 2, 3):
    x, logdet = inter["flowUpsamplerNet"][f"level{level}"][0]
    np.testing.assert_allclose(x, nhwc(io[f"enc_level{level}_out"]), atol=ATOL)
    np.testing.assert_allclose(logdet, io[f"enc_level{level}_logdet"], rtol=1e-5)
  np.testing.assert_allclose(out["z"], nhwc(io["enc_z"]), atol=ATOL)
  np.testing.assert_allclose(out["logdet"], io["enc_logdet"], rtol=1e-5)
  np.testing.assert_allclose(out["prior_mean"], nhwc(io["enc_prior_mean_lr"]), atol=ATOL)


def test_conditioning_features_match_official():
  io, model, params = fixture()
  features = model.apply({"params": params}, our_inputs(io), method=model.condition)
  for key in ("fea_up0", "fea_up1", "fea_up2"):
    np.testing.assert_allclose(features[key], nhwc(io[f"cond_{key}"]), atol=ATOL)


@pytest.mark.parametrize("use_gt,key", [(False, "enc_nll_bpp_lrmean"), (True, "enc_nll_bpp_gtmean")])
def test_nll_matches_official(use_gt, key):
  io, model, params = fixture()
  gt = jnp.asarray(nhwc(io["gt_input"]))
  out = model.apply({"params": params}, our_inputs(io), gt, use_target_prior=use_gt, method=model.encode)
  if use_gt:
    np.testing.assert_allclose(out["prior_mean"], nhwc(io["enc_prior_mean_gt"]), atol=ATOL)
  nll = nll_bits_per_pixel(out["z"], out["logdet"], out["prior_mean"], gt.shape[1] * gt.shape[2])
  np.testing.assert_allclose(nll, io[key], atol=ATOL)


def test_enhance_matches_official_reverse():
  io, model, params = fixture()
  enhance = jax.jit(lambda p, i: model.apply({"params": p}, i, method=model.enhance))
  np.testing.assert_allclose(enhance(params, our_inputs(io)), nhwc(io["dec_output"]), atol=ATOL)
  z = jnp.asarray(nhwc(io["dec_z_used"]))
  x, logdet = model.apply({"params": params}, our_inputs(io), z, method=model.decode)
  np.testing.assert_allclose(x, nhwc(io["dec_output"]), atol=ATOL)
  np.testing.assert_allclose(logdet, io["dec_logdet"], rtol=1e-5)


def test_temperature_sampling_is_opt_in():
  io, model, params = fixture()
  inputs = our_inputs(io)
  base = model.apply({"params": params}, inputs, method=model.enhance)
  same = model.apply({"params": params}, inputs, 0.0, jax.random.key(0), method=model.enhance)
  np.testing.assert_allclose(same, base, atol=1e-6)
  sampled = model.apply({"params": params}, inputs, 0.5, jax.random.key(0), method=model.enhance)
  assert float(jnp.abs(sampled - base).max()) > 1e-3


def test_tiny_flow_logdet_equals_jacobian(perturb):
  model = llflow.Model("tiny")
  inputs, x = llflow.init_inputs(model)
  rng = np.random.default_rng(0)
  params = init_variables(model, 0, inputs, x)["params"]
  params = perturb(params)
  inputs = {k: jnp.asarray(rng.uniform(size=v.shape), jnp.float32) for k, v in inputs.items()}
  x = jnp.asarray(rng.uniform(size=x.shape), jnp.float32)
  features = model.apply({"params": params}, inputs, method=model.condition)
  fwd = lambda v: model.apply({"params": params}, v.reshape(x.shape), features,
                              method=lambda m, a, f: m.flowUpsamplerNet.forward(a, f))
  z, logdet = jax.jit(fwd)(x.reshape(-1))
  jac = jax.jit(jax.jacfwd(lambda v: fwd(v)[0].reshape(-1)))(x.reshape(-1))
  np.testing.assert_allclose(logdet[0], np.linalg.slogdet(np.asarray(jac, np.float64))[1], rtol=1e-4)
  back = model.apply({"params": params}, z, features, method=lambda m, a, f: m.flowUpsamplerNet.inverse(a, f))
  np.testing.assert_allclose(back[0], x, atol=1e-4)


@pytest.mark.parametrize("variant,release", [("lol", "LOL_pc"), ("small", "LOL_smallNet")])
def test_released_variant_parameter_counts(variant, release):
  """The released configs' parameters that the official forward pass uses: the release key list
  (tests/fixtures/llflow/release_keys_*.json) minus the modules it never calls (37.68 M, 4.97 M)."""
  spec = json.loads((FIXTURES / f"release_keys_{release}.json").read_text())
  unused = tuple(m + "." for m in spec["unused_in_forward"])
  used = sum(math.prod(e["shape"]) for k, e in spec["entries"].items() if not k.startswith(unused))
  assert used < spec["num_elements"]
  model = llflow.Model(variant)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *llflow.init_inputs(model)))
  assert sum(math.prod(p.shape) for p in jax.tree.leaves(abstract["params"])) == used


def test_unknown_variant():
  with pytest.raises(ValueError, match="known: lol"):
    llflow.Model("huge")
