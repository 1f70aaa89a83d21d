"""Supervised trainer (INFWIDE): loss terms, AMSGrad, step decay, a decreasing loss on `tiny`."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import ndimage

from helpers import FAST_COMPILE, host, on_mesh, override, train_step
from lljax import losses, models
from lljax.config_lib import load_config
from lljax.losses import restoration
from lljax.nn import init_variables
from lljax.trainers import optim, supervised

CONFIG = pathlib.Path(__file__).parents[2] / "configs" / "infwide.py"



def test_tv_is_the_official_squared_total_variation():
  rng = np.random.default_rng(0)
  x = rng.random((2, 5, 7, 3)).astype(np.float32)
  dh = ((x[:, 1:] - x[:, :-1]) ** 2).sum() / (3 * 4 * 7)
  dw = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() / (3 * 5 * 6)
  np.testing.assert_allclose(restoration.tv(jnp.asarray(x)), 2 * (dh + dw) / 2, rtol=1e-6)
  assert float(restoration.tv(jnp.ones((1, 4, 4, 3)))) == 0.0


def test_weighted_terms_and_unknown_term():
  x, y = jnp.full((1, 16, 16, 3), 0.5), jnp.full((1, 16, 16, 3), 0.25)
  value = restoration.weighted(x, y, dict(l1=0.4, mse=0.2, ssim=0.0, tv=0.2))
  np.testing.assert_allclose(value, 0.4 * 0.25 + 0.2 * 0.0625, rtol=1e-6)
  np.testing.assert_allclose(restoration.weighted(y, y, dict(ssim=1.0)), 0.0, atol=1e-6)
  with pytest.raises(ValueError, match="unknown loss terms"):
    restoration.weighted(x, y, dict(l2=1.0))


def _perfect_batch(rng, size=24, k=5):
  sharp = ndimage.gaussian_filter(rng.random((1, size, size, 3)), (0, 1, 1, 0)).astype(np.float32)
  kernel = rng.random((1, k, k)).astype(np.float32)
  kernel /= kernel.sum()
  clean = np.stack([ndimage.convolve(sharp[0, ..., c], kernel[0], mode="wrap") for c in range(3)], -1)[None]
  return {"normal": jnp.asarray(sharp), "kernel": jnp.asarray(kernel), "clean_blurry": jnp.asarray(clean)}


def test_infwide_loss_parts_vanish_for_perfect_outputs_and_are_weighted():
  rng = np.random.default_rng(1)
  batch = _perfect_batch(rng)
  half = np.asarray(jax.image.resize(batch["normal"], (1, 12, 12, 3), "bilinear", antialias=False))
  outputs = {"half": jnp.asarray(half), "full": batch["normal"], "denoised": batch["clean_blurry"]}
  total, parts = losses.infwide_loss(outputs, batch)
  # Only the TV terms of the outputs remain; the close loop is exact (circular re-blur).
  assert float(parts["forward"]) < 1e-6
  np.testing.assert_allclose(parts["main_full"], 0.2 * restoration.tv(batch["normal"]), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(parts["denoise"], 0.2 * restoration.tv(batch["clean_blurry"]), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(total, parts["main_half"] + parts["main_full"] + 0.5 * parts["denoise"]
                             + 0.5 * parts["forward"], rtol=1e-6)
  # A constant offset of the full output: L1 + MSE terms at main weight 1, re-blur L1 at 0.5.
  shifted = {**outputs, "full": batch["normal"] + 0.1}
  _, p2 = losses.infwide_loss(shifted, batch)
  np.testing.assert_allclose(p2["forward"], 0.1, rtol=1e-4)
  np.testing.assert_allclose(p2["main_full"] - parts["main_full"], 0.4 * 0.1 + 0.2 * 0.01 + 0.2 * (
      1 - float(restoration.ssim(batch["normal"] + 0.1, batch["normal"]))), rtol=1e-4)


def test_amsgrad_matches_torch_semantics():
  tx = optim.scale_by_adam_torch(0.9, 0.999, 1e-8, amsgrad=True)
  p = jnp.zeros(2)
  state = tx.init(p)
  m = v = vmax = np.zeros(2)
  for t, g in enumerate([np.array([1.0, -2.0]), np.array([0.1, 0.5]), np.array([-3.0, 0.2])], start=1):
    upd, state = tx.update(jnp.asarray(g), state)
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    vmax = np.maximum(vmax, v)
    expected = (m / (1 - 0.9**t)) / (np.sqrt(vmax) / np.sqrt(1 - 0.999**t) + 1e-8)
    np.testing.assert_allclose(upd, expected, rtol=1e-4)
  # optax's amsgrad maxes bias-corrected moments: a different optimizer from step 2 on.
  ref = optax.scale_by_amsgrad(0.9, 0.999, 1e-8)
  ref_state = ref.init(p)
  for g in ([1.0, -2.0], [0.1, 0.5]):
    ref_upd, ref_state = ref.update(jnp.asarray(g), ref_state)
  ours = optim.scale_by_adam_torch(0.9, 0.999, 1e-8, amsgrad=True)
  our_state = ours.init(p)
  for g in ([1.0, -2.0], [0.1, 0.5]):
    our_upd, our_state = ours.update(jnp.asarray(g), our_state)
  assert np.abs(np.asarray(ref_upd) - np.asarray(our_upd)).max() > 1e-2


def _tiny_config(**overrides):
  """configs/infwide.py:quick with the tiny model lighter still (fewer ops to compile)."""
  c = load_config(f"{CONFIG}:quick")
  c.model.kwargs = dict(fsr_resblocks=0, xrf_resblocks=0)
  c.transfer_guard = "disallow"  # steps make no implicit host<->device copies
  return override(c, **overrides)


def test_loss_decreases_on_tiny_with_one_sharded_jitted_step():
  config = _tiny_config(**{"data.saturation": 1.2, "schedule.lr": 2e-3, "schedule.every_steps": 1000})
  family = models.get("infwide")
  module = family.Model("tiny", fsr_resblocks=0, xrf_resblocks=0)
  params = init_variables(module, 0, *family.init_inputs(module, size=32))["params"]
  rng = np.random.default_rng(2)
  sharp = ndimage.gaussian_filter(rng.random((2, 32, 32, 3)), (0, 1.5, 1.5, 0)).astype(np.float32)
  kernel = np.zeros((2, 7, 7), np.float32)
  kernel[:, 3, 1:6] = 0.2
  blurry = np.stack([np.stack([ndimage.convolve(sharp[b, ..., c], kernel[b], mode="wrap") for c in range(3)], -1)
                     for b in range(2)])
  low = np.clip(blurry + 0.02 * rng.standard_normal(blurry.shape), 0, 1).astype(np.float32)
  mesh, batch = on_mesh({"low": low, "normal": sharp, "kernel": kernel}, 2)
  step_fn, state = train_step(supervised.TRAINER, config, params, mesh, compiler_options=FAST_COMPILE)
  history = []
  for _ in range(12):
    state, metrics = step_fn(state, batch)
    history.append(float(metrics["loss"]))
    assert bool(metrics["finite"])
  assert set(metrics) >= {"main_half", "main_full", "denoise", "forward", "lr", "grad_norm"}
  assert history[-1] < 0.7 * history[0], history


def test_config_presets_and_trainer_dispatch():
  from lljax import trainers  # pylint: disable=import-outside-toplevel
  default = load_config(str(CONFIG))
  assert default.data.name == "embedded_photos/lowlight_blur" and default.data.saturation == 0
  assert default.optimizer.amsgrad and default.optimizer.clip_grad_value == 0.5
  assert default.schedule.lr == 2e-4 and default.schedule.gamma == 0.5
  assert default.total_steps == 400 * default.schedule.every_steps // 50
  night = load_config(f"{CONFIG}:nightshot,quick")
  assert night.data.name == "nightshot" and night.data.saturation == 1.2 and night.model.variant == "tiny"
  assert trainers.get(models.get(default.model.name).KIND) is supervised


def test_flips_mirror_the_kernel_with_its_image():
  rng = np.random.default_rng(3)
  sharp = rng.random((4, 16, 16, 3)).astype(np.float32)
  kernel = rng.random((4, 5, 5)).astype(np.float32)
  blurry = np.stack([np.stack([ndimage.convolve(sharp[b, ..., c], kernel[b], mode="wrap") for c in range(3)], -1)
                     for b in range(4)])
  out = supervised.flip_with_kernels({"low": blurry, "normal": sharp, "kernel": kernel},
                                     np.random.default_rng(0), flip=True, vflip=True)
  assert not np.array_equal(out["normal"], sharp)
  for b in range(4):  # the flipped blurry image is still the flipped sharp one blurred by the flipped kernel
    again = np.stack([ndimage.convolve(out["normal"][b, ..., c], out["kernel"][b], mode="wrap") for c in range(3)], -1)
    np.testing.assert_allclose(out["low"][b], again, atol=1e-5)


def _infwide_step_on_mesh(devices, fsdp=False, compute_dtype="float32", remat=False, microbatches=1):
  """One INFWIDE (tiny) SGD step on ``devices`` fake CPU devices; (params, host params, metrics, HLO)."""
  config = _tiny_config(compute_dtype=compute_dtype, remat=remat, microbatches=microbatches,
                        microbatch_loop="unrolled", **{"model.kwargs.fsr_resblocks": 1, "mesh.data": devices,
                                                       "mesh.fsdp": fsdp, "mesh.fsdp_min_size": 64})
  family = models.get("infwide")
  module = family.Model("tiny", fsr_resblocks=1, xrf_resblocks=0)
  params = init_variables(module, 0, *family.init_inputs(module, size=32))["params"]
  rng = np.random.default_rng(3)
  kernel = np.zeros((8, 7, 7), np.float32)
  kernel[:, 3, 1:6] = 0.2
  batch = {"low": rng.random((8, 32, 32, 3), np.float32), "normal": rng.random((8, 32, 32, 3), np.float32),
           "kernel": kernel}
  mesh, batch = on_mesh(batch, devices)
  step_fn, state = train_step(supervised.TRAINER, config, params, mesh, tx=optax.sgd(0.01), schedule=lambda s: 0.01,
                              compiler_options=FAST_COMPILE)
  hlo = step_fn.lower(state, batch).as_text()
  state, metrics = step_fn(state, batch)
  return state["params"], host(state["params"]), host(metrics), hlo


def test_step_on_8_devices_with_fsdp_and_remat_or_in_microbatches_matches_and_bf16_is_close():
  """One step on 1 device == on 8 with FSDP and rematerialised blocks == in 2 microbatches on 4
  (SGD, whose update is linear in the gradients; layouts differ only in reduction order);
  bf16 autocast gives a loss within 2 % of float32."""
  assert jax.device_count() >= 8, "tests/conftest.py sets 8 fake CPU devices"
  _, single, single_metrics, plain_hlo = _infwide_step_on_mesh(1)
  sharded, sharded_host, sharded_metrics, remat_hlo = _infwide_step_on_mesh(8, fsdp=True, remat=True)
  assert any(not a.sharding.is_fully_replicated for a in jax.tree.leaves(sharded))
  convolutions = [hlo.count("stablehlo.convolution") for hlo in (plain_hlo, remat_hlo)]
  assert convolutions[1] > convolutions[0]  # remat applied: the blocks' convolutions recomputed
  np.testing.assert_allclose(sharded_metrics["loss"], single_metrics["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4), sharded_host, single)
  _, micro, micro_metrics, micro_hlo = _infwide_step_on_mesh(4, microbatches=2)
  convolutions = [hlo.count("stablehlo.convolution") for hlo in (plain_hlo, micro_hlo)]
  assert convolutions[1] > 1.5 * convolutions[0]  # "unrolled": the model's two parts written out in sequence
  for key in single_metrics:  # gradient accumulation: the whole batch's update and loss terms
    np.testing.assert_allclose(micro_metrics[key], single_metrics[key], rtol=1e-5, atol=1e-7)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4), micro, single)
  bf16_metrics = _infwide_step_on_mesh(1, compute_dtype="bfloat16")[2]
  np.testing.assert_allclose(bf16_metrics["loss"], single_metrics["loss"], rtol=0.02)
