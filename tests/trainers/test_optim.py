"""The optimizer every trainer builds (``lljax.trainers.optim``) against torch's own algorithm,
written out in NumPy from ``torch.optim.Adam`` and ``torch.nn.utils.clip_grad_*``: each option
(value clipping, norm clipping, L2 weight decay, AMSGrad) changes the update, so removing one
from the chain fails here; and the schedules and the finite-update guard."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lljax.trainers import optim

GRADS = [{"w": np.array([[5.0, -0.1], [0.3, 2.0]]), "b": np.array([-4.0, 0.02])},
         {"w": np.array([[0.1, 0.5], [-0.2, 0.0]]), "b": np.array([1.0, -0.5])},
         {"w": np.array([[-3.0, 0.2], [0.05, -1.0]]), "b": np.array([0.3, 0.7])}]
PARAMS = {"w": np.array([[0.5, -1.0], [2.0, 0.25]]), "b": np.array([0.1, -0.3])}


def torch_adam(params, grads_seq, lr=1e-3, b1=0.9, b2=0.9, eps=1e-8, weight_decay=0.0, amsgrad=False,
               clip_value=0.0, clip_norm=0.0, skipped=()):
  """The parameters after each step of ``torch.optim.Adam`` (float64), gradients clipped first
  as ``clip_grad_norm_`` (coef = max_norm / (norm + 1e-6), at most 1) and ``clip_grad_value_``.
  ``skipped[i]``: names whose ``grad`` is None at step i (torch's Adam skips them, and each
  parameter counts its own steps)."""
  p = {k: v.astype(np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  vmax = {k: np.zeros_like(x) for k, x in p.items()}
  steps = {k: 0 for k in p}
  history = []
  for i, grads in enumerate(grads_seq):
    g = {k: x.astype(np.float64) for k, x in grads.items() if k not in (skipped[i] if skipped else ())}
    if clip_norm:
      norm = np.sqrt(sum(np.sum(x * x) for x in g.values()))
      g = {k: x * min(1.0, clip_norm / (norm + 1e-6)) for k, x in g.items()}
    if clip_value:
      g = {k: np.clip(x, -clip_value, clip_value) for k, x in g.items()}
    for k in g:
      steps[k] += 1
      t = steps[k]
      gk = g[k] + weight_decay * p[k]
      m[k] = b1 * m[k] + (1 - b1) * gk
      v[k] = b2 * v[k] + (1 - b2) * gk * gk
      vmax[k] = np.maximum(vmax[k], v[k])
      denom = np.sqrt(vmax[k] if amsgrad else v[k]) / np.sqrt(1 - b2**t) + eps
      p[k] = p[k] - lr / (1 - b1**t) * m[k] / denom
    history.append({k: x.copy() for k, x in p.items()})
  return history


def run_lljax(options, grads_seq=GRADS, active=None):
  # b2 = 0.9: the second moment decays fast enough for AMSGrad's running max to matter in 3 steps.
  cfg = ml_collections.ConfigDict(dict(b1=0.9, b2=0.9, eps=1e-8, amsgrad=False, weight_decay=0.0,
                                       clip_grad_norm=0.0, clip_grad_value=0.0))
  cfg.update(options)
  tx = optim.make_optimizer(cfg, lambda step: 1e-3)
  params = jax.tree.map(jnp.float32, PARAMS)
  state = tx.init(params)
  history = []
  for i, grads in enumerate(grads_seq):
    extra = {"active": active[i]} if active else {}
    updates, state = tx.update(jax.tree.map(jnp.float32, grads), state, params, **extra)
    params = optax.apply_updates(params, updates)
    history.append(jax.tree.map(np.asarray, params))
  return history


CASES = {
    "adam": {},
    "clip_grad_value": dict(clip_grad_value=0.5),
    "clip_grad_norm": dict(clip_grad_norm=1.5),
    "weight_decay": dict(weight_decay=0.1),
    "amsgrad": dict(amsgrad=True),
    "everything": dict(clip_grad_value=0.5, clip_grad_norm=1.5, weight_decay=0.1, amsgrad=True),
}
TORCH_NAMES = {"clip_grad_value": "clip_value", "clip_grad_norm": "clip_norm"}


@pytest.mark.parametrize("case", CASES)
def test_three_steps_equal_torch_adam_and_each_option_matters(case):
  options = CASES[case]
  torch_kwargs = {TORCH_NAMES.get(k, k): v for k, v in options.items()}
  expected = torch_adam(PARAMS, GRADS, **torch_kwargs)
  for got, want in zip(run_lljax(options), expected):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
  if options:  # the option changes the third step: leaving it out of the chain would be caught
    plain = torch_adam(PARAMS, GRADS)[-1]
    assert max(np.abs(expected[-1][k] - plain[k]).max() for k in plain) > 1e-5


def test_inactive_parameters_are_skipped_as_torch_skips_a_grad_of_none():
  """``b`` has no gradient at step 2 (torch: ``grad is None``): it keeps its value and moments,
  and its bias correction at step 3 uses its own count, 2 (weight decay and AMSGrad on)."""
  options = dict(weight_decay=0.1, amsgrad=True)
  grads = [GRADS[0], {**GRADS[1], "b": np.zeros(2)}, GRADS[2]]  # the loss did not use b at step 2
  active = [{"w": True, "b": True}, {"w": True, "b": False}, {"w": True, "b": True}]
  expected = torch_adam(PARAMS, GRADS, **options, skipped=[(), ("b",), ()])
  got = run_lljax(options, grads, active=[jax.tree.map(jnp.bool_, a) for a in active])
  np.testing.assert_array_equal(got[1]["b"], got[0]["b"])
  for g, e in zip(got, expected):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), g, e)
  zero_grad = torch_adam(PARAMS, grads, **options)[-1]  # what a zero (not absent) gradient gives
  assert np.abs(zero_grad["b"] - expected[-1]["b"]).max() > 1e-5


def test_path_mask():
  params = {"RRDB": {"fine_tune_color_map": {"kernel": 1, "bias": 2}, "conv_first": {"kernel": 3}}, "flow": 4}
  assert optim.path_mask(params, ("RRDB/fine_tune_color_map",)) == {
      "RRDB": {"fine_tune_color_map": {"kernel": True, "bias": True}, "conv_first": {"kernel": False}}, "flow": False}


def test_norm_clipping_is_torchs_not_optaxs():
  """torch scales by max_norm / (norm + 1e-6): a gradient of norm 1e-6 clipped at 1e-6 is
  halved (optax's ``clip_by_global_norm`` would leave it as it is)."""
  ours = optim.clip_by_global_norm_torch(1e-6)
  grads = {"g": jnp.array([6e-7, 8e-7])}
  clipped, _ = ours.update(grads, ours.init(grads))
  np.testing.assert_allclose(clipped["g"], [3e-7, 4e-7], rtol=1e-5)
  loose = optim.clip_by_global_norm_torch(1e-5)  # coef 1e-5 / (1e-6 + 1e-6) > 1: unchanged
  np.testing.assert_array_equal(loose.update(grads, loose.init(grads))[0]["g"], grads["g"])


def test_guarded_update_keeps_params_and_optimizer_state_on_a_non_finite_gradient():
  tx = optim.make_optimizer(ml_collections.ConfigDict(dict(
      b1=0.9, b2=0.999, eps=1e-8, amsgrad=True, weight_decay=0.0, clip_grad_norm=0.0, clip_grad_value=0.0)),
      lambda step: 1e-3)
  params = jax.tree.map(jnp.float32, PARAMS)
  opt = tx.init(params)
  good = jax.tree.map(jnp.float32, GRADS[0])
  params1, opt1, finite = optim.guarded_update(tx, params, opt, good, jnp.float32(1.0))
  assert bool(finite) and not np.allclose(params1["w"], params["w"])
  bad = {**good, "b": jnp.array([jnp.nan, 1.0])}
  for grads, loss in ((bad, jnp.float32(1.0)), (good, jnp.float32(jnp.inf))):
    params2, opt2, finite = optim.guarded_update(tx, params1, opt1, grads, loss)
    assert not bool(finite)
    jax.tree.map(np.testing.assert_array_equal, params2, params1)
    jax.tree.map(np.testing.assert_array_equal, opt2, opt1)


def test_schedules():
  step_cfg = ml_collections.ConfigDict(dict(kind="step_decay", lr=2e-4, gamma=0.5, every_steps=10, every_epochs=0))
  sched = optim.make_schedule(step_cfg, total_steps=100)
  np.testing.assert_allclose([sched(np.int32(s)) for s in (0, 9, 10, 25)], [2e-4, 2e-4, 1e-4, 5e-5], rtol=1e-6)
  step_cfg.update(every_steps=0, every_epochs=50)  # GoPro: 526 steps per epoch
  sched = optim.make_schedule(step_cfg, total_steps=200 * 526, steps_per_epoch=526)
  np.testing.assert_allclose([sched(s) for s in (0, 50 * 526 - 1, 50 * 526, 150 * 526)],
                             [2e-4, 2e-4, 1e-4, 2.5e-5], rtol=1e-6)
  step_cfg.every_epochs = 0
  assert float(optim.make_schedule(step_cfg, 10)(jnp.int32(10**6))) == pytest.approx(2e-4)
  step_cfg.kind = "cosine"
  with pytest.raises(ValueError, match="unknown config.schedule.kind 'cosine'"):
    optim.make_schedule(step_cfg, 10)


def test_warmup_multistep_reproduces_the_official_llflow_scheduler():
  """The official loop: update at iteration it>=2, warm-up it/W, then the warm-up quirk and halvings."""
  cfg = ml_collections.ConfigDict(dict(kind="warmup_multistep", lr=5e-4, warmup_steps=3000, warmup_quirk=True,
                                       milestones_rel=(0.5, 0.75, 0.9, 0.95), gamma=0.5, step_offset=2))
  schedule = optim.make_schedule(cfg, total_steps=40_000 - 1)
  lr, w = 5e-4, 3000
  assert schedule(np.int32(0)) == pytest.approx(lr * 2 / w)  # our first update is iteration 2
  assert schedule(np.int32(w - 3)) == pytest.approx(lr * (w - 1) / w)
  assert schedule(np.int32(w - 2)) == pytest.approx(lr * (w - 1) / w)  # quirk: stays at the last warm-up rate
  assert schedule(np.int32(20_000 - 3)) == pytest.approx(lr * (w - 1) / w)
  assert schedule(np.int32(20_000 - 2)) == pytest.approx(lr * (w - 1) / w / 2)  # iteration 20000 halves
  assert schedule(np.int32(39_998)) == pytest.approx(lr * (w - 1) / w / 16)
  assert float(schedule(jnp.int32(20_000 - 2))) == pytest.approx(lr * (w - 1) / w / 2)
