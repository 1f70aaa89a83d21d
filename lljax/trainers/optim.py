"""The optimizer and learning-rate schedules every trainer builds from its config.

``make_optimizer(config.optimizer, schedule)``: gradient clipping (global norm, then per element,
as ``torch.nn.utils.clip_grad_*`` before ``optimizer.step()``), torch's L2 ``weight_decay`` (added
to the gradient inside ``torch.optim.Adam``), Adam or torch's AMSGrad, the learning rate.
``make_schedule(config.schedule, total_steps, steps_per_epoch)``: a function step -> lr (update
``step`` counts from 0) usable inside jit and with NumPy.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

SCHEDULES = ("warmup_multistep", "step_decay")


def warmup_multistep(cfg, total_steps):
  """Warm-up + multi-step decay as the SRFlow/LLFlow ``train.py`` runs it.

  Our update k is the official iteration ``k + cfg.step_offset`` (LLFlow counts iterations
  from 1 and skips the update of iteration 1, so offset 2). For iteration ``it``:
  ``lr * it / warmup`` while ``it < warmup``; afterwards the decayed rate, times
  ``(warmup - 1) / warmup`` when ``cfg.warmup_quirk`` (the official scheduler keeps the last
  warm-up value instead of restoring the base rate). Milestones are
  ``int(r * niter)`` for r in ``cfg.milestones_rel`` with ``niter = total_steps + offset - 1``.
  """
  offset = cfg.step_offset
  niter = total_steps + offset - 1
  milestones = np.array([int(r * niter) for r in cfg.milestones_rel] or [np.iinfo(np.int32).max])
  warmup = cfg.warmup_steps
  base = cfg.lr * ((warmup - 1) / warmup if warmup > 0 and cfg.warmup_quirk else 1.0)

  def schedule(step):
    xp = jnp if isinstance(step, jax.Array) else np
    it = step + offset
    decayed = base * cfg.gamma ** xp.sum(it >= milestones)
    if warmup <= 0:
      return decayed
    return xp.where(it < warmup, cfg.lr * it / warmup, decayed)

  return schedule


def step_decay(cfg, steps_per_epoch=None):
  """``lr * gamma ** (step // every)`` (torch ``StepLR`` stepped every ``every`` updates), every =
  ``cfg.every_steps`` or ``cfg.every_epochs * steps_per_epoch``; constant when both are 0."""
  every = cfg.every_steps or cfg.every_epochs * (steps_per_epoch or 0)
  if cfg.every_steps and cfg.every_epochs:
    raise ValueError("config.schedule: set every_steps or every_epochs, not both")
  if cfg.every_epochs and not steps_per_epoch:
    raise ValueError("config.schedule.every_epochs needs the number of steps per epoch")
  if every <= 0:
    return optax.constant_schedule(cfg.lr)
  return optax.exponential_decay(cfg.lr, transition_steps=int(every), decay_rate=cfg.gamma, staircase=True)


def make_schedule(cfg, total_steps, steps_per_epoch=None):
  """The schedule ``cfg.kind`` names (see ``SCHEDULES``)."""
  if cfg.kind == "warmup_multistep":
    return warmup_multistep(cfg, total_steps)
  if cfg.kind == "step_decay":
    return step_decay(cfg, steps_per_epoch)
  raise ValueError(f"unknown config.schedule.kind {cfg.kind!r}; known: {', '.join(SCHEDULES)}")


class TorchAdamState(NamedTuple):
  """Per parameter, as ``torch.optim.Adam`` keeps it: the step count, the moments and AMSGrad's
  running max of the second moment (``None`` without amsgrad)."""

  count: optax.Updates
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


def scale_by_adam_torch(b1=0.9, b2=0.999, eps=1e-8, amsgrad=False):
  """``torch.optim.Adam``'s direction (to be scaled by -lr), its arithmetic included.

  Each parameter has its own step count, and ``update(..., active=tree of bools)`` leaves the
  inactive ones (torch: ``p.grad is None``, e.g. the colour-map head of a flow whose prior was
  the target's on this step) exactly as they were: no update, no moment decay, no count. With
  ``amsgrad`` the running max is of the RAW second moment, bias-corrected at the current step
  (optax's ``scale_by_amsgrad`` maxes the bias-corrected moments, which differs early on).
  """

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    counts = jax.tree.map(lambda p: jnp.zeros([], jnp.int32), params)
    return TorchAdamState(counts, zeros(), zeros(), zeros() if amsgrad else None)

  def update(grads, state, params=None, *, active=None, **extra_args):
    del params, extra_args
    active = jax.tree.map(lambda g: True, grads) if active is None else active
    keep = lambda on, new, old: jnp.where(on, new, old)
    count = jax.tree.map(lambda on, c: c + jnp.asarray(on, jnp.int32), active, state.count)
    mu = jax.tree.map(lambda on, m, g: keep(on, b1 * m + (1 - b1) * g, m), active, state.mu, grads)
    nu = jax.tree.map(lambda on, v, g: keep(on, b2 * v + (1 - b2) * g * g, v), active, state.nu, grads)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else None

    def direction(on, c, m, v):
      # 1 - b**t as -expm1(t ln b): float32 keeps its precision where 1 - b**t cancels (torch
      # computes the corrections in float64).
      t = jnp.maximum(c, 1).astype(jnp.float32)
      correction1, correction2 = -jnp.expm1(t * np.log(b1)), -jnp.expm1(t * np.log(b2))
      denom = jnp.sqrt(v) / jnp.sqrt(correction2) + eps
      return jnp.where(on, m / correction1 / denom, 0.0).astype(m.dtype)

    updates = jax.tree.map(direction, active, count, mu, nu_max if amsgrad else nu)
    return updates, TorchAdamState(count, mu, nu, nu_max)

  return optax.GradientTransformationExtraArgs(init, update)


def path_mask(params, prefixes):
  """A bool per leaf of ``params``: whether its '/'-joined path starts with one of ``prefixes``."""
  def match(path, _):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    return any(name == p or name.startswith(p + "/") for p in prefixes)

  return jax.tree_util.tree_map_with_path(match, params)


def clip_by_global_norm_torch(max_norm):
  """``torch.nn.utils.clip_grad_norm_``: gradients times ``min(1, max_norm / (norm + 1e-6))``
  (optax's ``clip_by_global_norm`` divides by the norm itself, without torch's 1e-6)."""

  def update(grads, state, params=None):
    del params
    coef = jnp.minimum(1.0, max_norm / (optax.global_norm(grads) + 1e-6))
    return jax.tree.map(lambda g: g * coef.astype(g.dtype), grads), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(cfg, schedule):
  """Clip by global norm -> clip per element -> L2 decay -> Adam / AMSGrad (torch) -> lr.

  ``tx.update(grads, state, params, active=mask)`` skips the inactive parameters (see
  ``scale_by_adam_torch``); their gradients must be zero (they are: the loss did not use them).
  """
  parts = []
  if cfg.clip_grad_norm:
    parts.append(clip_by_global_norm_torch(cfg.clip_grad_norm))
  if cfg.clip_grad_value:
    parts.append(optax.clip(cfg.clip_grad_value))
  if cfg.weight_decay:
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  parts.append(scale_by_adam_torch(cfg.b1, cfg.b2, cfg.eps, cfg.amsgrad))
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)


def all_finite(tree):
  """A boolean scalar: every element of every leaf of ``tree`` is finite."""
  return jax.tree.reduce(lambda ok, leaf: ok & jnp.all(jnp.isfinite(leaf)), tree, jnp.bool_(True))


def guarded_update(tx, params, opt_state, grads, loss, **extra_args):
  """Applies the update only if loss and gradients are finite (else keeps params and optimizer
  state exactly); returns (params, opt_state, finite). ``extra_args`` (e.g. ``active``) go to
  ``tx.update``."""
  updates, new_opt_state = tx.update(grads, opt_state, params, **extra_args)
  new_params = optax.apply_updates(params, updates)
  finite = jnp.isfinite(loss) & all_finite(grads)
  keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
  return keep(new_params, params), keep(new_opt_state, opt_state), finite
