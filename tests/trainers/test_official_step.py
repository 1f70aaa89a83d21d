"""A training step of lljax is the official one: the first updates of each official training loop,
recorded by ``tests/fixtures/<model>/make_train_step.py`` (the official code itself, every random
choice pinned) in ``train_step.npz``, replayed through the code ``python -m lljax.train`` runs
(``common.step_and_state``: the trainer's update under the jitted step, the config's optimizer
and schedule) with the stored batches and draws.

Tolerances (the official float32-vs-float64 spreads are in each fixture's README and ``meta``):
losses 1e-5 relative; ActNorm's data init 1e-5 absolute; every gradient within 1e-4 of the
tensor's largest official entry (1e-8 absolute for exactly-zero ones); parameter updates
within 1e-3 lr (after 1 update) and 5e-2 lr (after 3; the official float32-vs-float64 spread
reaches 0.017 lr) of the official ones where the official gradient is above float32 noise
(|g| >= 1e-6), and within 2 lr elsewhere (Adam's first step moves each element by about lr
whatever the gradient's size, so noise-level gradients move by a noise-dependent fraction of lr
in any float32 implementation), for at most 1 % of the elements, with each tensor's median
(over its real-gradient elements) within lr / 100. Every bound adds the fixture's q16 storage error (``step_npz``).
"""

import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fixtures import step_npz
from helpers import FIXTURES, host, nhwc, override
from lljax import models, parallel
from lljax.config_lib import load_config
from lljax.convert import mapping, torch_io
from lljax.nn import BUFFERS
from lljax.trainers import common, flow, gan, optim, supervised

ROOT = pathlib.Path(__file__).parents[2]


class Official:
  """One model's fixture: the npz, and official-name arrays as lljax param trees."""

  def __init__(self, model, converter_module):
    self.arrays, self.resolution, self.meta = step_npz.load(FIXTURES / model / "train_step.npz")
    self.state_dict = torch_io.read_state_dict(FIXTURES / model / "small.pth")
    self.converter = converter_module
    self.model_config = converter_module.infer_config(self.state_dict)
    self.family = models.get(model)
    self.module = self.family.Model(**self.model_config)
    abstract = jax.eval_shape(lambda: self.module.init(jax.random.key(0), *self.family.init_inputs(self.module)))
    self.abstract = abstract["params"]

  def tree(self, named, fill=np.nan):
    """Official-name arrays as an lljax params tree; parameters not in ``named`` are ``fill``."""
    state = {}
    for key, value in self.state_dict.items():
      value = np.asarray(value)
      if key in named:
        state[key] = np.asarray(named[key], np.float32).reshape(value.shape)
      elif np.issubdtype(value.dtype, np.floating):
        state[key] = np.full(value.shape, fill, np.float32)
      else:
        state[key] = value
    params, _ = mapping.convert(state, self.converter.RULES, self.abstract)
    return params

  def group(self, prefix):
    return step_npz.group(self.arrays, prefix)

  def group_resolution(self, prefix):
    return self.tree({k[len(prefix) + 1:]: np.full(np.shape(v), self.resolution[k], np.float32)
                      for k, v in self.arrays.items() if k.startswith(prefix + "/")}, fill=0.0)


def flat(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep="/")


def assert_gradients(got, official, resolution, atol=1e-8):
  """Every stored gradient within 1e-4 of its tensor's largest official entry (+ storage), and
  1e-8 absolute: parameters whose gradient is zero in exact arithmetic (UPT-Flow's key biases,
  which the softmax ignores) get float32 noise of ~1e-9 in both implementations."""
  got, official, resolution = flat(got), flat(official), flat(resolution)
  compared = 0
  for name, want in official.items():
    if np.isnan(want).all():
      continue
    bound = 1e-4 * np.abs(want).max() + resolution[name] + atol
    np.testing.assert_array_less(np.abs(np.asarray(got[name]) - want), bound, err_msg=name)
    compared += 1
  assert compared, "no gradient compared"


def assert_updates(got, official, resolution, grad1, lr, rtol_lr):
  """``got`` vs ``official`` parameter updates (p_k - p_0) with the module docstring's bounds,
  and each tensor's median difference over its elements with real gradients within lr / 100 (a
  systematic shift of a whole tensor, e.g. a parameter torch's Adam skipped, stays visible where
  single elements may be loose)."""
  got, official, resolution, grad1 = flat(got), flat(official), flat(resolution), flat(grad1)
  loose = total = 0
  for name, want in official.items():
    if np.isnan(want).all():
      continue
    diff = np.abs(np.asarray(got[name]) - want)
    noise_level = np.abs(grad1[name]) < 1e-6
    np.testing.assert_array_less(diff, np.where(noise_level, 2 * lr, rtol_lr * lr) + resolution[name] + 1e-12,
                                 err_msg=name)
    if not noise_level.all():
      real = np.median(diff[~noise_level])
      assert real <= 1e-2 * lr + resolution[name].max(), (name, real / lr)
    loose += int(np.sum(noise_level & (diff > rtol_lr * lr + resolution[name])))
    total += diff.size
  assert total and loose <= 0.01 * total, (loose, total)


def assert_optimizer_settings(cfg, torch_adam, clip_value=None):
  """The config's optimizer is the one that reached torch (``torch.optim.Adam``'s settings as the
  fixture recorded them, and the gradient clipping): some settings (AMSGrad, clipping of a few
  elements) move three updates by less than the float32 tolerance, so they are compared here."""
  betas = torch_adam["betas"]
  betas = [float(b) for b in (betas.strip("()").split(",") if isinstance(betas, str) else betas)]
  assert [cfg.b1, cfg.b2] == betas and cfg.eps == torch_adam["eps"], (cfg, torch_adam)
  assert cfg.amsgrad == torch_adam["amsgrad"] and cfg.weight_decay == torch_adam["weight_decay"], (cfg, torch_adam)
  assert cfg.clip_grad_value == (clip_value or 0.0) and cfg.clip_grad_norm == 0.0, (cfg, clip_value)


# (updates, tolerance in lr for elements with real gradients): the official code's own float32 vs
# float64 spread after 3 updates reaches 0.017 lr (INFWIDE), 1.9e-3 lr (LLFlow).
UPDATE_TOLERANCES = ((1, 1e-3), (3, 5e-2))


# ---------------------------------------------------------------------------------------------
# LLFlow.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", name="llflow")
def llflow_fixture():
  from lljax.convert import llflow as converter  # pylint: disable=import-outside-toplevel
  return Official("llflow", converter)


def _llflow_batches(official):
  a = official.arrays
  return [{"low": a["batch/low_u8"][k].astype(np.float32) / np.float32(255.0),
           "normal": a["batch/normal_u8"][k].astype(np.float32) / np.float32(255.0),
           "histeq": a["batch/histeq_u8"][k].astype(np.float32) / np.float32(255.0),
           "coin": np.full((a["batch/low_u8"].shape[1],), a["coins"][k], np.float32)} for k in range(3)]


DRAW_KEYS = ("coin", "noise", "droppath_masks")


def _stored_draws(flow_cfg, batch, rng):
  """The official draws, carried in the batch (so the step compiles once): the coin, the
  dequantisation noise and the stochastic-depth keep masks where the recipe has them."""
  del flow_cfg, rng
  draws = {"noise": batch.get("noise", jnp.zeros_like(batch["low"])), "coin": batch["coin"][0]}
  if "droppath_masks" in batch:
    draws["droppath_masks"] = batch["droppath_masks"]
  return draws


def _flow_config(model, preset, official, **overrides):
  config = load_config(f"{ROOT}/configs/{model}.py:{preset}")
  config.model = dict(name=model, variant=None, kwargs=dict(official.model_config))
  config.mesh.data = 1
  return override(config, **overrides)


def _check_flow_step(official, config, batches, expected):
  """ActNorm init, update 1's loss and gradients, and three updates of the flow trainer's step.

  ``batches``: the three steps' lljax batches with the official draws (``coin``, ``noise``);
  ``expected``: ``loss`` and ``lr`` (3,), ``logdet`` of update 1 (B,), optionally ``z`` (update
  1's latent, NCHW) and ``buffers`` (official name -> torch buffer after update 3).
  """
  module, mesh = official.module, parallel.make_mesh(1)
  model_batch = lambda b: {k: v for k, v in b.items() if k not in DRAW_KEYS}
  first = batches[0]
  draws = _stored_draws(config.flow, first, None)

  # ActNorm's data-dependent init on the first batch, from small.pth with the ActNorms zeroed (as
  # the fixture's official run: the official ActNorm initialises only while its bias is zero).
  actnorm = official.group("actnorm_init")
  small = official.tree(dict(official.state_dict))
  is_actnorm = official.tree({k: np.ones_like(v) for k, v in actnorm.items()}, fill=0.0)
  p_init = jax.tree.map(lambda s, m: np.where(m > 0, 0.0, s).astype(np.float32), small, is_actnorm)
  initialised = flat(host(flow.actnorm_init(module, config, p_init, model_batch(first), draws)))
  for name, want in flat(official.tree(actnorm)).items():
    if not np.isnan(want).all():
      np.testing.assert_allclose(initialised[name], want, atol=1e-5, rtol=0, err_msg=name)

  # p_0: small.pth with the official ActNorm init.
  p0 = jax.tree.map(lambda s, w: np.where(np.isnan(w), s, w).astype(np.float32), small, official.tree(actnorm))

  # Update 1's loss, log-det, latent and gradients, by the trainer's own gradient function.
  (loss, _, _, _), grads = jax.jit(flow.make_gradients(module, config))(p0, model_batch(first), draws)
  np.testing.assert_allclose(float(loss), expected["loss"][0], rtol=1e-5)
  assert_gradients(grads, official.tree(official.group("grad")), official.group_resolution("grad"))
  inputs, use_gt = flow.step_inputs(config.flow, model_batch(first), draws)
  variables, rngs = flow.stochastic(draws, inputs[4])
  out, _ = module.apply({"params": p0, **variables}, model_batch(first), inputs[1], target=inputs[3],
                        use_target_prior=use_gt, method=module.encode, mutable=[BUFFERS],  # train mode
                        rngs=rngs)
  out = host(out)
  np.testing.assert_allclose(out["logdet"] + np.asarray(inputs[2]), expected["logdet"], rtol=1e-5)
  if "z" in expected:
    np.testing.assert_allclose(out["z"], nhwc(expected["z"]), atol=1e-4)

  # Three updates through the trainer's jitted step (the one `python -m lljax.train` runs).
  step, state = common.step_and_state(flow.TRAINER, config, p0, mesh, draw_fn=_stored_draws)
  losses, snapshots = [], []
  for k, batch in enumerate(batches):
    state, metrics = step(state, parallel.global_batch(batch, mesh))
    losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(float(metrics["lr"]), expected["lr"][k], rtol=1e-6)
    snapshots.append(host(state["params"]))
  np.testing.assert_allclose(losses, expected["loss"], rtol=1e-5)
  grad1 = official.tree(official.group("grad"), fill=0.0)
  for k, tol in UPDATE_TOLERANCES:
    update = jax.tree.map(lambda p, q: p - q, snapshots[k - 1], p0)
    assert_updates(update, official.tree(official.group(f"update{k}")), official.group_resolution(f"update{k}"),
                   grad1, float(expected["lr"][0]), tol)
  if "buffers" in expected:
    floats = {k: v for k, v in expected["buffers"].items() if np.issubdtype(np.asarray(v).dtype, np.floating)}
    got = flat(snapshots[-1])
    for name, want in flat(official.tree(floats)).items():
      if not np.isnan(want).all():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_official_step_llflow(llflow):
  """LLFlow's ``train.py``/``optimize_parameters`` (small model, LOL_smallNet.yml with niter 8:
  the third update runs at half the lr; the second takes the GT prior, so the colour-map head
  must not move)."""
  a = llflow.arrays
  # niter 8 -> 7 updates; batch 4 of 32x32 crops; everything else is configs/llflow.py:small.
  config = _flow_config("llflow", "small", llflow, total_steps=7, batch_size=4, **{"data.crop_size": 32})
  expected = {"loss": a["loss/total"], "lr": a["lr"], "logdet": a["loss/logdet"][0], "z": a["step1/z"]}
  assert_optimizer_settings(config.optimizer, llflow.meta["adam"]["defaults"], llflow.meta["gradient_clipping"])
  _check_flow_step(llflow, config, _llflow_batches(llflow), expected)


@pytest.fixture(scope="module", name="ssflow")
def ssflow_fixture():
  from lljax.convert import ssflow as converter  # pylint: disable=import-outside-toplevel
  return Official("ssflow", converter)


def test_official_step_ssflow(ssflow):
  """SSFlow's released paired training (LLFlow's loop and ``optimize_parameters`` on SSFlow's
  model, confs/LOL_smallNet.yml with niter 6: milestones at updates 2 and 3); update 2 takes the
  GT prior (the OAtt-UNet's colour-map branch must not move); BatchNorm in train mode."""
  a = ssflow.arrays
  batches = [{"low": nhwc(a["low_rgb01"][k]), "normal": nhwc(a["gt"][k]),
              "coin": np.full((a["gt"].shape[1],), a["coin"][k], np.float32)} for k in range(3)]
  config = _flow_config("ssflow", "lol_blur", ssflow, total_steps=5, batch_size=2, **{"data.crop_size": 64})
  expected = {"loss": a["loss"], "lr": a["lr"], "logdet": a["logdet"][0],
              "buffers": step_npz.group(a, "buffers3")}
  assert_optimizer_settings(config.optimizer, ssflow.meta["optimizer"]["param_groups"][0], ssflow.meta["clipping"])
  _check_flow_step(ssflow, config, batches, expected)


@pytest.fixture(scope="module", name="uptflow")
def uptflow_fixture():
  from lljax.convert import uptflow as converter  # pylint: disable=import-outside-toplevel
  return Official("uptflow", converter)


def _droppath_masks(official, k):
  """Update k's keep masks as the model's "droppath" collection: official module
  ``RRDB.<layer>.blocks.<i>.drop_path`` -> ``{"RRDB": {layer: {"blocks_<i>": {"attn", "mlp"}}}}``."""
  masks = {}
  for name, value in official.group(f"droppath{k}").items():
    _, layer, _, index, _ = name.split(".")
    masks.setdefault("RRDB", {}).setdefault(layer, {})[f"blocks_{index}"] = {
        "attn": np.asarray(value[0], np.float32), "mlp": np.asarray(value[1], np.float32)}
  return masks


def test_official_step_uptflow(uptflow):
  """UPT-Flow: its model's NLL (``normal_flow``, restored from commit 3a7afc4) under LLFlow's
  ``optimize_parameters`` and loop, UPT-Flow.yml with niter 10 and a 3-iteration warm-up (the
  updates cross the warm-up's end and the first milestone); dequantisation noise, MSFormer's
  stochastic depth and the ActNorm init on the first update's dequantised input."""
  a = uptflow.arrays
  batches = [{"low": nhwc(a[f"batch{k}/LQ"]), "normal": nhwc(a[f"batch{k}/GT"]), "noise": nhwc(a[f"noise{k}"]),
              "coin": np.ones((a[f"batch{k}/GT"].shape[0],), np.float32),
              "droppath_masks": _droppath_masks(uptflow, k)} for k in (1, 2, 3)]
  config = _flow_config("uptflow", "embedded", uptflow, total_steps=9, batch_size=2,
                        **{"data.crop_size": 32, "schedule.warmup_steps": 3})
  expected = {"loss": np.array([a[f"loss{k}"] for k in (1, 2, 3)]), "lr": a["lr"][1:], "logdet": a["logdet1"],
              "z": a["z1"]}
  assert config.flow.quant == uptflow.meta["quant"]
  assert_optimizer_settings(config.optimizer, uptflow.meta["optimizer_groups"][0])
  _check_flow_step(uptflow, config, batches, expected)


# ---------------------------------------------------------------------------------------------
# INFWIDE.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", name="infwide")
def infwide_fixture():
  from lljax.convert import infwide as converter  # pylint: disable=import-outside-toplevel
  return Official("infwide", converter)


INFWIDE_PARTS = ("main_half", "main_full", "denoise", "forward")


def test_official_step_infwide(infwide):
  """INFWIDE's own trainer (``Trainer._train_epoch``, the Hydra config with the small network):
  torch AMSGrad, per-element gradient clipping at 0.5 (active: 9 elements at update 1), StepLR
  stepped per epoch (epochs of 2 and 1 batches here, so update 3 runs at half the lr). The
  stored input is the saturated camera image, so lljax's saturation is off here."""
  a, official = infwide.arrays, infwide
  batches = [{"low": nhwc(a[f"batch/{k}/input"]), "normal": nhwc(a[f"batch/{k}/target"]),
              "kernel": a[f"batch/{k}/kernel"][:, 0]} for k in (1, 2, 3)]
  config = load_config(f"{ROOT}/configs/infwide.py")
  config.model = dict(name="infwide", variant=None, kwargs=dict(official.model_config))
  override(config, batch_size=2, total_steps=3, **{"mesh.data": 1, "data.crop_size": 64, "data.saturation": 0.0,
                                                    "schedule.every_steps": 2})
  mesh = parallel.make_mesh(1)
  p0 = official.tree(dict(official.state_dict))
  assert_optimizer_settings(config.optimizer, official.meta["optimizer"]["defaults"], official.meta["grad_clip_value"])

  (loss, parts), grads = jax.jit(supervised.make_gradients(official.module, official.family, config))(p0, batches[0])
  np.testing.assert_allclose(float(loss), a["loss/1/total"], rtol=1e-5)
  for part in INFWIDE_PARTS:
    np.testing.assert_allclose(float(parts[part][0]), a[f"loss/1/{part}"], rtol=1e-5, err_msg=part)
  assert_gradients(grads, official.tree(official.group("grad")), official.group_resolution("grad"))

  step, state = common.step_and_state(supervised.TRAINER, config, p0, mesh)
  snapshots = []
  for k, batch in enumerate(batches, start=1):
    state, metrics = step(state, parallel.global_batch(batch, mesh))
    np.testing.assert_allclose(float(metrics["loss"]), a[f"loss/{k}/total"], rtol=1e-5)
    for part in INFWIDE_PARTS:
      np.testing.assert_allclose(float(metrics[part]), a[f"loss/{k}/{part}"], rtol=1e-5, err_msg=part)
    np.testing.assert_allclose(float(metrics["lr"]), a["lr"][k - 1], rtol=1e-6)
    snapshots.append(host(state["params"]))
  grad1 = official.tree(official.group("grad"), fill=0.0)
  for k, tol in UPDATE_TOLERANCES:
    update = jax.tree.map(lambda p, q: p - q, snapshots[k - 1], p0)
    assert_updates(update, official.tree(official.group(f"update{k}")), official.group_resolution(f"update{k}"),
                   grad1, float(a["lr"][0]), tol)


# ---------------------------------------------------------------------------------------------
# DEvUDP: the terms it shares with FCL-GAN's official step.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", name="devudp")
def devudp_fixture():
  from lljax.convert import devudp as converter  # pylint: disable=import-outside-toplevel
  return Official("devudp", converter)


def _subtree(tree, net):
  return {net: tree[net]}


def test_official_step_devudp(devudp):
  """FCL-GAN's ``train.py`` (DEvUDP's base; G = G_B2S, G⁻¹ = G_S2B, D = D_S): its full G objective
  holds terms lljax has not (a second discriminator, the sharp cycle, TV), so the step is compared
  where they share it, with lljax's G weights set to FCL-GAN's for the shared terms (adv 0.5 =
  gan_S / 2, recon 5 = 10 cycle_b / 2, no S-branch): the D step (loss, gradients, update, and
  three Adam updates with FCL-GAN's betas (0.5, 0.999) across its lr halving), the shared terms'
  values and gradients (``cycle_b``'s in float64: in float32 train-mode BatchNorm on 2 samples
  leaves only ~1e-2 of its gradient determined, in the official code as in lljax), and the
  generators' BatchNorm statistics after FCL-GAN's four calls."""
  a, official = devudp.arrays, devudp
  u8 = lambda k, which: nhwc(a[f"batch/it{k}/{which}_u8"]).astype(np.float32) / np.float32(255.0)
  batches = [{"low": u8(k, "blurry"), "normal": u8(k, "sharp")} for k in (1, 2, 3)]
  config = load_config(f"{ROOT}/configs/devudp.py")
  config.model = dict(name="devudp", variant=None, kwargs=dict(official.model_config))
  override(config, batch_size=2, epochs=None, total_steps=3,
           **{"mesh.data": 1, "data.crop_size": 128, "gan.adv_weight": 0.5, "gan.recon_weight": 5.0,
              "gan.sr_weight": 0.0, "schedule.lr": 1e-4, "schedule.every_epochs": 0,
              "schedule.every_steps": 2})
  module, mesh = official.module, parallel.make_mesh(1)
  p0 = official.tree(dict(official.state_dict))
  assert_optimizer_settings(config.optimizer, official.meta["optimizer_defaults"]["D_S"])
  d_only = lambda prefix: official.tree({k: v for k, v in official.group(prefix).items() if k.startswith("D_S.")})

  # One step of the trainer: the D step and the shared terms' values.
  step, state = common.step_and_state(gan.TRAINER, config, p0, mesh)
  state1, metrics = step(state, parallel.global_batch(batches[0], mesh))
  metrics = host(metrics)
  for ours, theirs in (("d_loss", "D_S"), ("adv", "gan_S"), ("recon", "cycle_b")):
    np.testing.assert_allclose(metrics[ours], a[f"loss/it1/{theirs}"], rtol=1e-5, err_msg=ours)
  np.testing.assert_allclose(metrics["lr"], a["lr/D_S"][0], rtol=1e-6)
  grad1 = d_only("grad")
  update1 = jax.tree.map(lambda p, q: p - q, host(state1["params"]), p0)
  assert_updates(_subtree(update1, "D"), _subtree(d_only("update1"), "D"), _subtree(
      official.group_resolution("update1"), "D"), _subtree(official.tree(official.group("grad"), fill=0.0), "D"),
      float(a["lr/D_S"][0]), 5e-2)

  # D's gradient on update 1, by the trainer's own function.
  fake = gan.apply_net(module, "G", p0["G"], batches[0]["low"], train=True)[0]
  (_, _), d_grads = jax.jit(lambda d: gan.d_gradients(module, d, batches[0]["normal"], fake))(p0["D"])
  # atol 1e-6: the conv biases before InstanceNorm have zero gradient in exact arithmetic and
  # ~1e-7 of float32 noise (the official float32-vs-float64 spread of D's gradients: 8.5e-6 of max).
  assert_gradients({"D": host(d_grads)}, _subtree(grad1, "D"), _subtree(official.group_resolution("grad"), "D"),
                   atol=1e-6)

  # D's Adam over three updates (official gradients in), across the lr halving.
  schedule = optim.make_schedule(config.schedule, 3)
  tx = optim.make_optimizer(config.optimizer, schedule)
  d, opt = p0["D"], tx.init(p0["D"])
  for prefix in ("grad", "grad_it2", "grad_it3"):
    updates, opt = tx.update(d_only(prefix)["D"], opt, d)
    d = jax.tree.map(lambda p, u: p + u, d, updates)
  assert_updates({"D": jax.tree.map(lambda p, q: np.asarray(p) - q, d, p0["D"])}, _subtree(d_only("update3"), "D"),
                 _subtree(official.group_resolution("update3"), "D"), _subtree(grad1, "D"),
                 float(a["lr/D_S"][0]), 1e-3)

  # The shared G terms' gradients: adv (against the updated D) in float32, recon in float64.
  g0 = {k: p0[k] for k in gan.GENERATORS}
  new_d = host(state1["params"])["D"]
  blurry, sharp = batches[0]["low"], batches[0]["normal"]
  adv = lambda g: gan.generator_terms(gan.generator_outputs(module, g, blurry, sharp)[0], blurry, sharp,
                                      gan.apply_net(module, "D", new_d, gan.generator_outputs(module, g, blurry, sharp)[0]["L"])[0])["adv"]
  adv_grads = host(jax.jit(jax.grad(adv))(g0))
  term = lambda name: official.tree(official.group(f"grad_term64/{name}"))
  term_res = lambda name: official.group_resolution(f"grad_term64/{name}")
  assert_gradients(_subtree(adv_grads, "G"), _subtree(term("gan_S"), "G"), _subtree(term_res("gan_S"), "G"))
  with jax.enable_x64(True):
    g64 = jax.tree.map(lambda p: np.asarray(p, np.float64), g0)
    b64 = {k: nhwc(a[f"batch/it1/{w}_u8"]).astype(np.float64) / 255.0 for k, w in (("low", "blurry"), ("normal", "sharp"))}
    recon = lambda g: gan.generator_terms(gan.generator_outputs(module, g, b64["low"], b64["normal"])[0], b64["low"],
                                          b64["normal"], jnp.zeros((1,)))["recon"]
    recon_grads = host(jax.jit(jax.grad(recon))(g64))
  assert_gradients(recon_grads, term("cycle_b"), term_res("cycle_b"))

  # BatchNorm running statistics after FCL-GAN's calls: G_B2S(b), G_S2B(s), G_S2B(fake_s), G_B2S(fake_b).
  current = dict(g0)
  def call(net, x):
    y, new = gan.apply_net(module, net, current[net], x, train=True)
    current[net] = gan.assign_buffers(current[net], new)
    return y
  fake_s, fake_b = call("G", blurry), call("G_inv", sharp)
  call("G_inv", fake_s)
  call("G", fake_b)
  buffers = {k: v for k, v in official.group("buffers1").items() if np.issubdtype(np.asarray(v).dtype, np.floating)}
  got = flat(host(current))
  for name, want in flat(official.tree(buffers)).items():
    if not np.isnan(want).all():
      np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-7, err_msg=name)
