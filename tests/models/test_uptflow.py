"""UPT-Flow against the official PyTorch code (tests/fixtures/uptflow, see its README), its
unbalanced point map, window attention and flow, and training through the flow trainer."""

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import nhwc
import lljax
from lljax.config_lib import load_config
from lljax.convert import convert_checkpoint, load_torch_params
from lljax.models import uptflow
from lljax.models.uptflow import msformer
from lljax.nn import init_variables, shift_attention_mask, window_partition
from lljax.trainers import flow
from lljax.utils.writers import read_jsonl

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "uptflow"
CONFIG = pathlib.Path(__file__).parents[2] / "configs" / "uptflow.py"
ATOL = 1e-4
LOG_QUANT = math.log(32.0)  # the official decode log-det starts at +ln(32) H W (add_gt_noise)




@functools.lru_cache(maxsize=1)
def fixture():
  io = {k: nhwc(v) if v.ndim == 4 else v for k, v in np.load(FIXTURES / "small_io.npz").items()}
  config, params, _ = load_torch_params("uptflow", FIXTURES / "small.pth")
  return io, config, params


@pytest.fixture(scope="module", name="converted")
def converted_fixture(tmp_path_factory):
  out = tmp_path_factory.mktemp("uptflow") / "small"
  convert_checkpoint("uptflow", FIXTURES / "small.pth", out)
  return lljax.load(out)


# ------------------------------------------------------------------------------------------
# Unbalanced point map.
# ------------------------------------------------------------------------------------------


def test_unbalanced_point_map_hand_cases():
  pixels = np.array([
      [0.5, 0.3, 0.2],  # every share > 0.1 -> 1
      [0.9, 0.05, 0.05],  # green and blue shares 0.05 -> 0
      [0.0, 0.0, 0.0],  # black: all shares 0 -> 0
      [0.2, 0.2, 0.2],  # grey: shares 1/3 -> 1
      [0.1, 0.45, 0.45],  # red share 0.1 / (1 + 1e-4) just below 0.1 -> 0
      [0.11, 0.45, 0.44],  # red share 0.10999 -> 1
      [0.0, 0.5, 0.5],  # one empty channel -> 0
      [0.002, 0.002, 0.002],  # very dark but balanced: 0.002 / 0.0061 = 0.328 -> 1
      [0.0001, 0.0001, 0.0001],  # so dark that the 1e-4 dominates: 1e-4 / 4e-4 = 0.25 -> 1
      [0.00002, 0.00002, 0.00002],  # 2e-5 / 1.6e-4 = 0.125 -> 1
      [0.00001, 0.00001, 0.00001],  # 1e-5 / 1.3e-4 = 0.077 -> 0
  ], np.float32)
  expected = [1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0]
  got = uptflow.unbalanced_point_map(jnp.asarray(pixels[None, None]))
  assert got.shape == (1, 1, len(pixels), 1) and got.dtype == jnp.float32
  np.testing.assert_array_equal(got[0, 0, :, 0], expected)


def test_unbalanced_point_map_matches_official():
  io, _, _ = fixture()
  zc = uptflow.unbalanced_point_map(jnp.asarray(io["lq_input"]))
  np.testing.assert_array_equal(zc, io["zc_input"])
  assert 0 < float(zc.mean()) < 1  # both classes occur in the fixture


# ------------------------------------------------------------------------------------------
# Window attention.
# ------------------------------------------------------------------------------------------


def test_relative_position_index_matches_official_buffers():
  from lljax.convert import torch_io  # pylint: disable=import-outside-toplevel
  state = torch_io.read_state_dict(FIXTURES / "small.pth")
  buffers = [v for k, v in state.items() if k.endswith("relative_position_index")]
  assert len(buffers) == 14
  for buffer in buffers:
    np.testing.assert_array_equal(buffer, lljax.nn.relative_position_index(5))


def test_shifted_window_attention_masks_other_regions(perturb):
  """With the shift mask a query ignores tokens of other regions (weight exp(-100)); without, not."""
  ws, c = 4, 8
  attn = msformer.WindowAttention(num_heads=2, win_size=ws)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 8, 8, c)), jnp.float32)
  pmap = jnp.asarray(rng.normal(size=(1, 8, 8, c)), jnp.float32)
  mask = jnp.asarray(shift_attention_mask(8, 8, ws, 2))
  params = perturb(init_variables(attn, 0, window_partition(x, ws), window_partition(pmap, ws), mask)["params"])
  run = lambda v, m: attn.apply({"params": params}, window_partition(v, ws), window_partition(pmap, ws), m)
  # last window (rows 4-7, cols 4-7): token (4, 4) is in region 4, token (7, 7) in region 8
  moved = x.at[0, 7, 7].add(10.0)
  query = (slice(None), 3, 0, 0)  # window 3, row 0, col 0 = pixel (4, 4)
  np.testing.assert_allclose(run(moved, mask)[query], run(x, mask)[query], atol=1e-6)
  assert float(jnp.abs(run(moved, None)[query] - run(x, None)[query]).max()) > 1e-3
  # inside one region (the first window) the value still matters
  assert float(jnp.abs(run(x.at[0, 3, 3].add(10.0), mask)[0, 0, 0, 0] - run(x, mask)[0, 0, 0, 0]).max()) > 1e-3


def test_window_branch_queries_and_keys_come_from_the_point_map(perturb):
  """Changing the point map changes the attention pattern; values come from the features."""
  block = msformer.LeWinBlock(num_heads=1, win_size=4)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 6, 7, 4)), jnp.float32)  # not a multiple of 4: padded
  pmap = jnp.asarray(rng.integers(0, 2, size=(1, 6, 7, 4)), jnp.float32)
  params = perturb(init_variables(block, 0, x, pmap)["params"])
  out = block.apply({"params": params}, x, pmap)
  assert out.shape == x.shape and np.isfinite(out).all()
  assert float(jnp.abs(block.apply({"params": params}, x, 1.0 - pmap) - out).max()) > 1e-3


# ------------------------------------------------------------------------------------------
# Parity with the official code (fixture) in both directions.
# ------------------------------------------------------------------------------------------


def test_decode_matches_official():
  """z -> image with the official decode log-det (quirk included), for z = 0, a random z and
  the official encoding of the target (which must decode back to the target)."""
  io, config, params = fixture()
  model = uptflow.Model(**config, official_inverse_logdet=True)
  decode = jax.jit(lambda p, i, z: model.apply({"params": p}, i, z, method=model.decode))
  inputs = {"low": jnp.asarray(io["lq_input"])}
  pixels = io["lq_input"].shape[1] * io["lq_input"].shape[2]
  for z_key, out_key, offset in [("dec_z0", "dec_z0_output", LOG_QUANT * pixels),
                                 ("dec_zrand", "dec_zrand_output", LOG_QUANT * pixels),
                                 ("flowenc_z", "flowdec_of_flowenc_z", 0.0)]:
    x, logdet = decode(params, inputs, jnp.asarray(io[z_key]))
    np.testing.assert_allclose(x, io[out_key], atol=ATOL, err_msg=z_key)
    np.testing.assert_allclose(logdet + offset, io[f"{out_key}_logdet" if z_key == "flowenc_z" else f"{z_key}_logdet"],
                               rtol=1e-5, err_msg=z_key)
  np.testing.assert_allclose(x, io["gt_input"], atol=ATOL)  # lljax decodes the official encoding back to the target


def test_api_enhance_matches_official(converted):
  io, _, _ = fixture()
  raw = converted.enhance(io["lq_input"], clip=False)
  np.testing.assert_allclose(raw, io["dec_z0_output"], atol=ATOL)
  # other sizes: reflect-padded at the bottom/right to a multiple of 8, run whole, cropped back
  crop = io["lq_input"][:, :61, :90]
  out = converted.enhance(crop, clip=False)
  padded = np.pad(crop, ((0, 0), (0, 3), (0, 6), (0, 0)), mode="reflect")  # 64x96: run as it is
  np.testing.assert_allclose(out, converted.enhance(padded, clip=False)[:, :61, :90], atol=1e-6)
  np.testing.assert_array_equal(converted.enhance(crop), np.clip(out, 0, 1))


def test_api_encode_matches_official(converted):
  io, _, _ = fixture()
  out = converted.encode(io["lq_input"], io["gt_input"])
  np.testing.assert_allclose(out["z"], io["flowenc_z"], atol=ATOL)
  np.testing.assert_allclose(out["logdet"], io["flowenc_logdet"], rtol=1e-5)
  np.testing.assert_array_equal(out["prior_mean"], 0.0)
  # the deleted official NLL without dequantisation: -(logdet + log N(z; 0, I)) / (ln 2 H W)
  z = io["flowenc_z"].astype(np.float64)
  log_p = -0.5 * (z**2 + math.log(2 * math.pi)).sum(axis=(1, 2, 3))
  pixels = io["gt_input"].shape[1] * io["gt_input"].shape[2]
  np.testing.assert_allclose(out["nll"], -(io["flowenc_logdet"] + log_p) / (math.log(2) * pixels), atol=ATOL)


# ------------------------------------------------------------------------------------------
# Flow, architecture, training.
# ------------------------------------------------------------------------------------------


def test_tiny_flow_logdet_equals_jacobian(perturb):
  model = uptflow.Model("tiny")
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(1, 8, 8, 3)), jnp.float32)
  features = {k: jnp.asarray(rng.normal(size=(1, 8 // s, 8 // s, 6 * model.dim)), jnp.float32)
              for k, s in (("fea_up2", 2), ("fea_up1", 4), ("fea_up0", 8))}
  flow_net = uptflow.model.FlowUpsamplerNet(model.K, model.L, model.n_noaffine, model.hidden)
  params = perturb(init_variables(flow_net, 0, x, features, method=flow_net.forward)["params"])
  fwd = lambda v: flow_net.apply({"params": params}, v.reshape(x.shape), features, method=flow_net.forward)

  @jax.jit
  def run(v):  # one compilation for everything
    z, logdet = fwd(v)
    back, inv_logdet = flow_net.apply({"params": params}, z, features, method=flow_net.inverse)
    return logdet, jax.jacfwd(lambda u: fwd(u)[0].reshape(-1))(v), back, inv_logdet

  logdet, jac, back, inv_logdet = run(x.reshape(-1))
  np.testing.assert_allclose(logdet[0], np.linalg.slogdet(np.asarray(jac, np.float64))[1], rtol=1e-4)
  np.testing.assert_allclose(back, x, atol=1e-4)
  np.testing.assert_allclose(inv_logdet, -logdet, rtol=1e-5)


def test_unknown_variant():
  with pytest.raises(ValueError, match="known: lol"):
    uptflow.Model("huge")


def test_loss_decreases_on_tiny_and_trained_dir_loads(tmp_path, embedded_data_dir):
  config = load_config(f"{CONFIG}:quick")
  config.data.data_dir = str(embedded_data_dir)
  config.batch_size, config.data.crop_size, config.mesh.data = 4, 32, 1
  config.total_steps, config.schedule.warmup_steps = 30, 5
  config.log_every, config.eval_every, config.checkpoint_every = 1, 0, 0
  config.eval_limit, config.num_samples = 1, 1
  workdir = tmp_path / "run"
  flow.train(config, workdir)
  losses = [r["train/loss"] for r in read_jsonl(workdir / "metrics.jsonl") if "train/loss" in r]
  assert len(losses) == 30 and np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, losses
  restorer = lljax.load(workdir)  # a trained UPT-Flow workdir loads through the public API
  assert restorer.model_name == "uptflow" and restorer.config["win_size"] == 4
  out = restorer.enhance(np.full((1, 20, 28, 3), 0.1, np.float32))
  assert out.shape == (1, 20, 28, 3) and np.isfinite(out).all()
