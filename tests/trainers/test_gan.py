"""GAN trainer (DEvUDP): the loss terms by hand, one sharded step (G, G⁻¹ and D move, D's loss
drops on the batch), BatchNorm generators' running statistics, and a run -> resume -> API."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lljax
from helpers import host, on_mesh, override, train_step
from lljax import models
from lljax.config_lib import load_config
from lljax.nn import init_variables
from lljax.trainers import common, gan, optim
from lljax.utils.writers import read_jsonl

CONFIG = pathlib.Path(__file__).parents[2] / "configs" / "devudp.py"
TINY = dict(base=4, num_res=0, d_base=4)  # the full LED topology without ResBlocks: fast to compile


def tiny_config(data_dir, **overrides):
  c = load_config(f"{CONFIG}:quick")
  c.data.name = "embedded_photos/lowlight"  # the suite's shared embedded data (any pairs do here)
  c.data.data_dir = str(data_dir)
  c.model.kwargs = dict(TINY)
  c.batch_size, c.data.crop_size, c.data.resize_short = 2, 32, 48
  c.mesh.data = 2  # the batch is split over two (fake CPU) devices
  c.eval_limit, c.num_samples = 1, 1
  c.transfer_guard = "disallow"  # steps make no implicit host<->device copies
  return override(c, **overrides)


def test_loss_terms_by_hand():
  ones, zeros = jnp.ones((2, 4, 4, 1)), jnp.zeros((2, 4, 4, 1))
  assert float(gan.lsgan_d_loss(ones, zeros)) == 0.0  # D right on both
  assert float(gan.lsgan_d_loss(zeros, ones)) == 1.0  # ½·1 + ½·1
  assert float(gan.lsgan_d_loss(ones, jnp.full_like(ones, 0.5))) == 0.125
  assert float(gan.lsgan_g_loss(ones)) == 0.0 and float(gan.lsgan_g_loss(zeros)) == 1.0
  a, b = jnp.zeros((1, 4, 4, 3)), jnp.ones((1, 4, 4, 3))
  outs = {"L": b, "A_tilde": jnp.full_like(a, 0.5), "A_hat": jnp.full_like(a, -0.25), "B_hat": jnp.full_like(b, 0.875)}
  terms = gan.generator_terms(outs, a, b, d_fake=jnp.full((1, 1, 1, 1), 0.5))
  assert {k: float(v) for k, v in terms.items()} == {"adv": 0.25, "recon": 0.5, "sr_a": 0.25, "sr_b": 0.125}
  cfg = tiny_config("/nonexistent").gan
  assert float(gan.total_generator_loss(terms, cfg)) == 0.25 + 10 * 0.5 + 5 * (0.25 + 0.125)


def _module(config):
  family = models.get(config.model.name)
  return family, family.Model(**common.model_config(family, config.model))


def test_one_step_moves_G_Ginv_and_D_and_lowers_D_loss():
  config = tiny_config("/nonexistent", epochs=None, total_steps=10)
  family, module = _module(config)
  params = init_variables(module, 0, *family.init_inputs(module, size=32))["params"]
  rng = np.random.default_rng(0)
  batch = {"low": rng.random((2, 32, 32, 3), np.float32), "normal": rng.random((2, 32, 32, 3), np.float32)}
  mesh, global_batch = on_mesh(batch, 2)
  step_fn, state = train_step(gan.TRAINER, config, host(params), mesh)
  new, metrics = step_fn(state, global_batch)
  new = host(new)
  for net in ("G", "G_inv", "D"):
    moved = [np.abs(n - o).max() for n, o in zip(jax.tree.leaves(new["params"][net]), jax.tree.leaves(params[net]))]
    assert min(moved) > 0, net  # every tensor of every network took an Adam step
  counts = [int(c) for part in ("g", "d") for c in jax.tree.leaves(new["opt"][part][0].count)]
  assert set(counts) == {1} and int(new["step"]) == 1  # one Adam step for every parameter

  # D's loss on the same batch and the same (pre-step) fakes, before and after its update.
  a, b = batch["low"] * 2 - 1, batch["normal"] * 2 - 1
  g_apply = jax.jit(lambda p, x: gan.apply_net(module, "G", p, x)[0])
  d_apply = jax.jit(lambda p, x: gan.apply_net(module, "D", p, x)[0])
  fake = g_apply(params["G"], a)
  d_loss = lambda d: float(gan.lsgan_d_loss(d_apply(d, b), d_apply(d, fake)))
  before, after = d_loss(params["D"]), d_loss(new["params"]["D"])
  np.testing.assert_allclose(float(metrics["d_loss"]), before, rtol=1e-4)
  assert after < before, (before, after)
  terms = {k: float(metrics[k]) for k in ("adv", "recon", "sr_a", "sr_b")}
  total = terms["adv"] + 10 * terms["recon"] + 5 * (terms["sr_a"] + terms["sr_b"])
  np.testing.assert_allclose(float(metrics["loss"]), total, rtol=1e-5)
  np.testing.assert_allclose(terms["sr_b"], float(jnp.mean(jnp.abs(g_apply(params["G"], b) - b))),
                             rtol=1e-4)
  assert bool(metrics["finite"])


def test_batchnorm_generators_train_with_batch_statistics():
  """DT-style generators: each call normalises with its batch and advances the running stats."""
  module = models.get("devudp").Model("tiny", norm="batch", shortcut=True, **TINY)
  params = init_variables(module, 0, *models.get("devudp").init_inputs(module, size=32))["params"]
  rng = np.random.default_rng(0)
  a, b = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32), rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
  g = {k: params[k] for k in gan.GENERATORS}
  outs, buffers = jax.jit(lambda g: gan.generator_outputs(module, g, a, b))(g)
  assert set(buffers) == {"G", "G_inv"}
  # G ran on A, then on B: running_mean = 0.9·(0.9·0 + 0.1·m_A) + 0.1·m_B of feat_extract_0's conv output.
  kernel = params["G"]["feat_extract_0"]["conv"]["kernel"]
  feat = lambda x: jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  expected = 0.9 * 0.1 * np.asarray(feat(a)).mean(axis=(0, 1, 2)) + 0.1 * np.asarray(feat(b)).mean(axis=(0, 1, 2))
  np.testing.assert_allclose(np.asarray(buffers["G"]["feat_extract_0"]["bn"]["running_mean"]), expected, atol=1e-5)
  # Eval mode (the API) uses the running statistics instead: a different output.
  eval_out = gan.apply_net(module, "G", params["G"], a)[0]
  assert np.abs(np.asarray(eval_out) - np.asarray(outs["L"])).max() > 1e-3


def test_train_resume_and_public_api(tmp_path, embedded_data_dir):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  gan.train(tiny_config(embedded_data_dir, total_steps=3, checkpoint_every=0, eval_every=0, log_every=1), straight)
  gan.train(tiny_config(embedded_data_dir, total_steps=2, checkpoint_every=1, eval_every=0, log_every=1), resumed)
  gan.train(tiny_config(embedded_data_dir, total_steps=3, checkpoint_every=1, eval_every=0, log_every=1), resumed)
  records = [r for r in read_jsonl(resumed / "metrics.jsonl") if "train/loss" in r]
  assert [r["step"] for r in records] == [1, 2, 3]
  assert all(np.isfinite(r["train/d_loss"]) and np.isfinite(r["train/loss"]) for r in records)
  assert list((straight / "samples").glob("step_0000003.png"))
  a, b = lljax.load(straight), lljax.load(resumed)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)  # resume == uninterrupted
  # The public API: [0, 1] in and out, G alone, any size (padded to a multiple of 4 and cropped).
  images = np.random.default_rng(0).random((2, 20, 30, 3), np.float32)
  out = b.enhance(images)
  assert out.shape == images.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
  padded = np.pad(images, ((0, 0), (0, 0), (0, 2), (0, 0)), mode="reflect")  # width 30 -> 32
  g_only = b.module.apply({"params": {"G": b.params["G"]}}, {"low": padded}, method=b.module.enhance)
  np.testing.assert_allclose(out, np.clip(np.asarray(g_only)[:, :, :30], 0, 1), atol=1e-6)


def test_configs_and_schedule():
  c = load_config(str(CONFIG))
  data = (c.data.name, c.data.crop_size, c.data.resize_short)
  assert c.model.variant == "in" and data == ("embedded_photos/blur", 256, 384)
  assert (c.batch_size, c.epochs, c.optimizer.b1, c.optimizer.b2, c.schedule.lr) == (4, 200, 0.5, 0.999, 2e-4)
  assert (c.gan.recon_weight, c.gan.sr_weight) == (10.0, 5.0)
  g = load_config(f"{CONFIG}:gopro,dt")
  assert (g.model.variant, g.data.name) == ("dt", "gopro")
  # GoPro: 2103 blurry training images, batch 4 -> 526 steps per epoch, 200 epochs.
  assert common.total_steps(g, 2103) == (200 * 526, 526)
  schedule = optim.make_schedule(g.schedule, 200 * 526, 526)  # halved every 50 epochs
  np.testing.assert_allclose([schedule(s) for s in (0, 50 * 526 - 1, 50 * 526, 150 * 526)],
                             [2e-4, 2e-4, 1e-4, 2.5e-5], rtol=1e-6)


def test_microbatches_are_refused_before_anything_is_written(tmp_path, embedded_data_dir):
  config = tiny_config(embedded_data_dir)
  config.microbatches = 2
  with pytest.raises(ValueError, match="microbatches=2: the GAN trainer has no gradient accumulation"):
    gan.train(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def _step_on_mesh(config, params, batch, devices, fsdp=False, compute_dtype="float32", remat=False):
  """One GAN step from ``params`` on ``devices`` fake CPU devices; (state, host state, metrics, HLO)."""
  override(config, compute_dtype=compute_dtype, remat=remat, **{"mesh.fsdp": fsdp, "mesh.fsdp_min_size": 64})
  mesh, global_batch = on_mesh(batch, devices)
  step_fn, state = train_step(gan.TRAINER, config, params, mesh, tx=optax.sgd(0.01), schedule=lambda s: 0.01)
  hlo = step_fn.lower(state, global_batch).as_text()
  new, metrics = step_fn(state, global_batch)
  return new, host(new), host(metrics), hlo


def test_step_on_8_devices_with_fsdp_and_remat_matches_1_device_and_bf16_is_close():
  """One step on 1 device == on 8 with FSDP and rematerialised ResBlocks; bf16 autocast gives
  losses within 2 % of float32.

  The step runs with SGD (lr 0.01): Adam's first update, lr·g/(|g| + eps) ≈ lr·sign(g), turns
  reduction-order noise in gradients that are 0 in exact arithmetic (conv biases before
  InstanceNorm) into ±lr, while SGD's update is linear in the gradients, which is what the
  layouts must agree on (they differ only in the order of the batch reductions).
  """
  assert jax.device_count() >= 8, "tests/conftest.py sets 8 fake CPU devices"
  config = tiny_config("/nonexistent", **{"model.kwargs": dict(TINY, num_res=1)})
  family, module = _module(config)
  params = init_variables(module, 0, *family.init_inputs(module, size=32))["params"]
  rng = np.random.default_rng(0)
  batch = {"low": rng.random((8, 32, 32, 3), np.float32), "normal": rng.random((8, 32, 32, 3), np.float32)}
  _, single, single_metrics, plain_hlo = _step_on_mesh(config, params, batch, 1)
  sharded, sharded_host, sharded_metrics, remat_hlo = _step_on_mesh(config, params, batch, 8, fsdp=True, remat=True)
  assert any(not a.sharding.is_fully_replicated for a in jax.tree.leaves(sharded["params"]))
  convolutions = [hlo.count("stablehlo.convolution") for hlo in (plain_hlo, remat_hlo)]
  assert convolutions[1] > convolutions[0]  # remat applied: the blocks' convolutions recomputed
  for key in ("loss", "d_loss"):
    np.testing.assert_allclose(sharded_metrics[key], single_metrics[key], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4), sharded_host, single)

  bf16_metrics = _step_on_mesh(config, params, batch, 1, compute_dtype="bfloat16")[2]
  for key in ("loss", "d_loss", "recon", "sr_a", "sr_b"):
    np.testing.assert_allclose(bf16_metrics[key], single_metrics[key], rtol=0.02)
