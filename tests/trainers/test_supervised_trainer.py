"""Supervised trainer (INFWIDE): loss terms, AMSGrad, step decay, a decreasing loss on `tiny`."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from scipy import ndimage

from lljax import losses, models, parallel
from lljax.losses import restoration
from lljax.nn import init_variables
from lljax.trainers import common, supervised

# XLA:CPU spends most of this file's time optimising the train step's code; the values are the same.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


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
  tx = supervised.scale_by_amsgrad_torch(0.9, 0.999, 1e-8)
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
  ours = supervised.scale_by_amsgrad_torch(0.9, 0.999, 1e-8)
  our_state = ours.init(p)
  for g in ([1.0, -2.0], [0.1, 0.5]):
    our_upd, our_state = ours.update(jnp.asarray(g), our_state)
  assert np.abs(np.asarray(ref_upd) - np.asarray(our_upd)).max() > 1e-2


def test_step_schedule_and_value_clipping():
  cfg = ml_collections.ConfigDict(dict(lr=2e-4, step_size=10, gamma=0.5))
  sched = supervised.step_schedule(cfg)
  np.testing.assert_allclose([sched(np.int32(s)) for s in (0, 9, 10, 25)], [2e-4, 2e-4, 1e-4, 5e-5])
  opt = ml_collections.ConfigDict(dict(b1=0.9, b2=0.999, eps=1e-8, amsgrad=True, weight_decay=0.0,
                                       clip_grad_value=0.5))
  tx = supervised.make_optimizer(opt, lambda step: 1.0)
  params = jnp.zeros(2)
  upd, _ = tx.update(jnp.asarray([5.0, -0.1]), tx.init(params), params)
  # First Adam step is sign(g) * |g| / |g|: clipping shows in neither; check via a second, smaller step.
  np.testing.assert_allclose(upd, [-1.0, 1.0], rtol=1e-4)
  clip = optax.clip(0.5)
  np.testing.assert_allclose(clip.update(jnp.asarray([5.0, -0.1]), clip.init(params))[0], [0.5, -0.1])


def test_loss_decreases_on_tiny_with_one_sharded_jitted_step():
  family = models.get("infwide")
  module = family.Model("tiny", fsr_resblocks=0, xrf_resblocks=0)  # fewer ops to compile
  config = ml_collections.ConfigDict(dict(
      data=dict(saturation=1.2),
      optimizer=dict(b1=0.9, b2=0.999, eps=1e-8, amsgrad=True, weight_decay=0.0, clip_grad_value=0.5),
      schedule=dict(lr=2e-3, step_size=1000, gamma=0.5)))
  mesh = parallel.make_mesh(2)
  schedule = supervised.step_schedule(config.schedule)
  tx = supervised.make_optimizer(config.optimizer, schedule)
  params = init_variables(module, 0, *family.init_inputs(module, size=32))["params"]
  shardings = (parallel.state_shardings(params, mesh), parallel.state_shardings(jax.eval_shape(tx.init, params), mesh))
  params = jax.device_put(params, shardings[0])
  opt_state = jax.jit(tx.init, out_shardings=shardings[1])(params)
  step_fn = supervised.make_train_step(module, family, tx, schedule, config, shardings, mesh,
                                       compiler_options=FAST_COMPILE)
  rng = np.random.default_rng(2)
  sharp = ndimage.gaussian_filter(rng.random((2, 32, 32, 3)), (0, 1.5, 1.5, 0)).astype(np.float32)
  kernel = np.zeros((2, 7, 7), np.float32)
  kernel[:, 3, 1:6] = 0.2
  blurry = np.stack([np.stack([ndimage.convolve(sharp[b, ..., c], kernel[b], mode="wrap") for c in range(3)], -1)
                     for b in range(2)])
  low = np.clip(blurry + 0.02 * rng.standard_normal(blurry.shape), 0, 1).astype(np.float32)
  batch = parallel.global_batch({"low": low, "normal": sharp, "kernel": kernel}, mesh)
  history = []
  for step in range(12):
    params, opt_state, metrics = step_fn(params, opt_state, jnp.int32(step), batch)
    history.append(float(metrics["loss"]))
    assert bool(metrics["finite"])
  assert set(metrics) >= {"main_half", "main_full", "denoise", "forward", "lr", "grad_norm"}
  assert history[-1] < 0.7 * history[0], history


def test_config_presets_and_trainer_dispatch():
  import importlib.util  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  from lljax import trainers  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(__file__).parents[2] / "configs" / "infwide.py"
  spec = importlib.util.spec_from_file_location("infwide_config", path)
  cfg_mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(cfg_mod)
  default = cfg_mod.get_config()
  assert default.data.name == "embedded_photos/lowlight_blur" and default.data.saturation == 0
  assert default.optimizer.amsgrad and default.optimizer.clip_grad_value == 0.5
  assert default.schedule.lr == 2e-4 and default.schedule.gamma == 0.5
  assert default.total_steps == 400 * default.schedule.step_size // 50
  night = cfg_mod.get_config("nightshot,quick")
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
  family = models.get("infwide")
  module = family.Model("tiny", fsr_resblocks=1, xrf_resblocks=0)
  config = ml_collections.ConfigDict(dict(
      data=dict(saturation=0.0), compute_dtype=compute_dtype, remat=remat, microbatches=microbatches,
      mesh=dict(data=devices, fsdp=fsdp, fsdp_min_size=64)))
  mesh = parallel.make_mesh(devices)
  tx = optax.sgd(0.01)
  params = init_variables(module, 0, *family.init_inputs(module, size=32))["params"]
  shardings = (common.state_shardings(params, config, mesh),
               common.state_shardings(jax.eval_shape(tx.init, params), config, mesh))
  params = jax.device_put(params, shardings[0])
  opt_state = jax.jit(tx.init, out_shardings=shardings[1])(params)
  step_fn = supervised.make_train_step(module, family, tx, lambda step: 0.01, config, shardings, mesh,
                                       compiler_options=FAST_COMPILE)
  rng = np.random.default_rng(3)
  kernel = np.zeros((8, 7, 7), np.float32)
  kernel[:, 3, 1:6] = 0.2
  batch = {"low": rng.random((8, 32, 32, 3), np.float32), "normal": rng.random((8, 32, 32, 3), np.float32),
           "kernel": kernel}
  args = (params, opt_state, jnp.int32(0), parallel.global_batch(batch, mesh))
  hlo = step_fn.lower(*args).as_text()
  params, _, metrics = step_fn(*args)
  return params, jax.device_get(params), jax.device_get(metrics), hlo


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
  assert convolutions[1] > 1.5 * convolutions[0]  # XLA:CPU: the model's two parts written out in sequence
  for key in single_metrics:  # gradient accumulation: the whole batch's update and loss terms
    np.testing.assert_allclose(micro_metrics[key], single_metrics[key], rtol=1e-5, atol=1e-7)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4), micro, single)
  bf16_metrics = _infwide_step_on_mesh(1, compute_dtype="bfloat16")[2]
  np.testing.assert_allclose(bf16_metrics["loss"], single_metrics["loss"], rtol=0.02)
