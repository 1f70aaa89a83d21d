"""SSFlow against the official PyTorch forward passes (tests/fixtures/ssflow, see its README),
its orthogonal attention, and a short training run through the flow trainer."""

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lljax
from helpers import converted_fixture, nhwc
from lljax import parallel
from lljax.config_lib import load_config
from lljax.convert import convert_checkpoint, torch_io
from lljax.data import pipeline, sources
from lljax.losses import nll_bits_per_pixel
from lljax.models import ssflow
from lljax.models.ssflow.attention import GramSchmidtFilters, OrthoAttentionBlock, orthogonal_squeeze
from lljax.nn import init_variables
from lljax.trainers import common, flow

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "ssflow"
CONFIG = pathlib.Path(__file__).parents[2] / "configs" / "ssflow.py"
ATOL = 1e-4


fixture = functools.partial(converted_fixture, "ssflow")


@functools.lru_cache(maxsize=1)
def official_comparisons():
  """Every intermediate the fixture records, from one jitted pass (compiled once)."""
  io, model, params = fixture()

  def run(module, inputs, gt, z):
    enc = module.encode(inputs, gt)
    return {**enc, "prior_gt": module.prior_mean(module.condition(inputs), gt, True),
            "decoded": module.decode(inputs, z)}

  fn = jax.jit(lambda p, i, g, z: model.apply({"params": p}, i, g, z, method=run, mutable=["intermediates"]))
  inputs = {"low": jnp.asarray(nhwc(io["low_rgb01"]))}  # lljax computes the log input itself
  out, state = fn(params, inputs, jnp.asarray(nhwc(io["gt_input"])), jnp.asarray(nhwc(io["dec_z_used"])))
  return io, jax.device_get(out), jax.device_get(state["intermediates"])


def test_encoder_features_match_official():
  io, _, inter = official_comparisons()
  features = inter["encoder"][0]
  for key in ("fea_up0", "fea_up1", "fea_up2", "color_map"):
    np.testing.assert_allclose(features[key], nhwc(io[f"cond_{key}"]), atol=ATOL)
  unet = inter["RRDB"]["denoise"]
  np.testing.assert_allclose(unet["E_block1"][0], nhwc(io["enc_denoise_E_block1"]), atol=ATOL)
  np.testing.assert_allclose(unet["attention"][0], nhwc(io["enc_denoise_BasicBlock"]), atol=ATOL)


def test_encode_direction_matches_official():
  io, out, inter = official_comparisons()
  for level in (1, 2, 3):
    x, logdet = inter["flowUpsamplerNet"][f"level{level}"][0]
    np.testing.assert_allclose(x, nhwc(io[f"enc_level{level}_out"]), atol=ATOL)
    np.testing.assert_allclose(logdet, io[f"enc_level{level}_logdet"], rtol=1e-5)
  np.testing.assert_allclose(out["z"], nhwc(io["enc_z"]), atol=ATOL)
  np.testing.assert_allclose(out["logdet"], io["enc_logdet"], rtol=1e-5)
  pixels = 64 * 96
  for mean, key in ((out["prior_mean"], "lr"), (out["prior_gt"], "gt")):
    np.testing.assert_allclose(mean, nhwc(io[f"enc_prior_mean_{key}"]), atol=ATOL)
    nll = nll_bits_per_pixel(out["z"], out["logdet"], mean, pixels)
    np.testing.assert_allclose(nll, io[f"enc_nll_bpp_{key}mean"], atol=ATOL)


def test_decode_direction_matches_official():
  io, out, _ = official_comparisons()
  x, logdet = out["decoded"]
  np.testing.assert_allclose(x, nhwc(io["dec_output"]), atol=ATOL)
  np.testing.assert_allclose(logdet, io["dec_logdet"], rtol=1e-5)


def test_public_api_on_converted_fixture(tmp_path):
  """python -m lljax.convert output -> lljax.load(DIR).enhance/.encode, equal to the official ones."""
  io, _, _ = fixture()
  convert_checkpoint("ssflow", FIXTURES / "small.pth", tmp_path / "model")
  restorer = lljax.load(tmp_path / "model")
  low, gt = nhwc(io["low_rgb01"]), nhwc(io["gt_input"])
  np.testing.assert_allclose(restorer.enhance(low, clip=False), nhwc(io["dec_output"]), atol=ATOL)
  enc = restorer.encode(low, gt)
  np.testing.assert_allclose(enc["z"], nhwc(io["enc_z"]), atol=ATOL)
  np.testing.assert_allclose(enc["nll"], io["enc_nll_bpp_lrmean"], atol=ATOL)
  # other sizes: reflect-padded at the bottom/right to a multiple of 8, run whole, cropped back
  odd = restorer.enhance(low[:, :61, :90], clip=False)
  padded = np.pad(low[:, :61, :90], ((0, 0), (0, 3), (0, 6), (0, 0)), mode="reflect")  # 64x96: run as it is
  np.testing.assert_allclose(odd, restorer.enhance(padded, clip=False)[:, :61, :90], atol=1e-6)
  np.testing.assert_array_equal(restorer.enhance(low[:, :61, :90]), np.clip(odd, 0, 1))


def test_gram_schmidt_buffer_comes_from_the_checkpoint():
  _, _, params = fixture()
  state = torch_io.read_state_dict(FIXTURES / "small.pth")
  np.testing.assert_array_equal(params["RRDB"]["denoise"]["BasicBlock"]["constant_filter"],
                                state["RRDB.denoise.BasicBlock.F_C_A.constant_filter"])


def test_gram_schmidt_filters_are_orthonormal():
  rng = np.random.default_rng(0)
  for shape in ((16, 8, 8), (8, 2, 2)):  # C <= s*s: one basis; C > s*s: C / (s*s) bases
    f = GramSchmidtFilters().host(rng, shape).reshape(shape[0], -1)
    n = f.shape[1]
    for block in range(0, shape[0], n):
      rows = f[block:block + n]
      np.testing.assert_allclose(rows @ rows.T, np.eye(len(rows)), atol=1e-5)
  traced = GramSchmidtFilters()(jax.random.key(0), (4, 3, 3)).reshape(4, 9)
  np.testing.assert_allclose(traced @ traced.T, np.eye(4), atol=1e-5)


def test_orthogonal_attention_shapes_and_buffer():
  block = OrthoAttentionBlock(filter_size=8)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 12, 10, 24)), jnp.float32)
  params = init_variables(block, 0, x)["params"]
  assert params["constant_filter"].shape == (24, 8, 8)
  assert params["_excitation_0"]["kernel"].shape == (24, 2)  # round(24 / 16) = round(1.5) = 2
  y = block.apply({"params": params}, x)
  assert y.shape == x.shape and float(y.min()) >= 0
  # The filters are used (changing them changes the output) but never trained (zero gradient).
  moved = dict(params, constant_filter=params["constant_filter"][::-1])
  assert float(jnp.abs(block.apply({"params": moved}, x) - y).max()) > 1e-4
  grads = jax.grad(lambda p: jnp.sum(block.apply({"params": p}, x) ** 2))(params)
  assert not np.any(grads["constant_filter"]) and np.any(grads["_excitation_0"]["kernel"])
  # At the filter size the squeeze is a plain projection (no pooling).
  f = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4, 4)), jnp.float32)
  v = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 4, 3)), jnp.float32)
  np.testing.assert_allclose(orthogonal_squeeze(v, f), np.einsum("cij,bijc->bc", f, v), rtol=1e-5)
  with pytest.raises(ValueError, match="hidden units"):
    init_variables(OrthoAttentionBlock(8), 0, jnp.zeros((1, 8, 8, 8)))  # round(8 / 16) = 0


def test_released_variant_parameter_count():
  """The parameters that take part in the official forward pass (9,648,033 of the release's
  26.2 M values), from the release key list (tests/fixtures/ssflow/release_keys.json): minus the
  modules never called or whose outputs are discarded, minus the buffers (BatchNorm statistics
  and counters, the Gram-Schmidt filters, the fixed blur filters)."""
  spec = json.loads((FIXTURES / "release_keys.json").read_text())
  skipped = tuple(m + "." for m in spec["unused_in_forward"] + spec["computed_but_discarded"])
  used = {k: math.prod(e["shape"]) for k, e in spec["entries"].items() if not k.startswith(skipped)}
  is_buffer = lambda name: name in ("running_mean", "running_var", "num_batches_tracked", "constant_filter", "filt")
  official_buffers = {k: n for k, n in used.items() if is_buffer(k.rsplit(".", 1)[1])}
  model = ssflow.Model("lol_blur")
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *ssflow.init_inputs(model)))["params"]
  sizes = {tuple(getattr(k, "key", k) for k in p): math.prod(v.shape)
           for p, v in jax.tree_util.tree_leaves_with_path(abstract)}
  buffers = {k: n for k, n in sizes.items() if is_buffer(k[-1])}
  assert sum(sizes.values()) - sum(buffers.values()) == sum(used.values()) - sum(official_buffers.values())
  counters = sum(n for k, n in official_buffers.items() if k.endswith(".num_batches_tracked"))
  assert sum(buffers.values()) == sum(official_buffers.values()) - counters  # lljax keeps no BN counters


def test_unknown_variant():
  with pytest.raises(ValueError, match="known: lol_blur"):
    ssflow.Model("huge")


def test_self_supervised_training_on_tiny(embedded_data_dir):
  """The flow trainer's step on real crops: loss decreases, BatchNorm running statistics follow the
  batches, the Gram-Schmidt and blur filters stay exactly as they were, and the self-supervised
  objective never reads the normal-light image (NaN there would poison the loss)."""
  config = load_config(f"{CONFIG}:quick,self_supervised")
  family, module = ssflow, ssflow.Model("tiny")
  source = sources.open_source("embedded_photos/lowlight", "train", embedded_data_dir)
  batches = pipeline.train_batches(source, batch_size=4, crop_size=32, seed=0, prefetch=0,
                                   host_fn=flow.host_fn(family, config.flow))
  batch = dict(next(batches))
  batch["normal"] = np.full_like(batch["normal"], np.nan)
  mesh = parallel.make_mesh(1)
  batch = parallel.global_batch(batch, mesh)
  params = init_variables(module, 0, *family.init_inputs(module, 32))["params"]
  params = parallel.replicate(params, mesh)
  params = flow.actnorm_init(module, config, params, batch)
  initial = jax.device_get(params)
  step, state = common.step_and_state(flow.TRAINER, config, params, mesh)
  losses = []
  for _ in range(12):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  params = state["params"]
  assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses
  unet, unet0 = jax.device_get(params)["RRDB"]["denoise"], initial["RRDB"]["denoise"]
  np.testing.assert_array_equal(unet["BasicBlock"]["constant_filter"], unet0["BasicBlock"]["constant_filter"])
  np.testing.assert_array_equal(unet["E_block2"]["reshape_conv"]["top_4"]["filt"],
                                unet0["E_block2"]["reshape_conv"]["top_4"]["filt"])
  bn = unet["BasicBlock"]["_process_1"]
  assert np.all(bn["running_var"] != 1.0) and np.all(bn["running_mean"] != 0.0)
