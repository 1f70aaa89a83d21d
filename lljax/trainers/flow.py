"""Trainer for conditional normalizing flows (LLFlow family): maximum likelihood.

Per step: dequantise the normally lit target (``x + (u - 1/2) / quant``; ``quant = 0`` encodes
it as is), encode it conditioned on the low-light input, and minimise the NLL in bits per pixel
location. The prior mean is the model's own business (LLFlow: its learned colour map, or with
probability ``train_gt_ratio`` — one coin per batch, as the official code — the target's
chromaticity). The step's randomness (the noise ``u`` and the coin) is drawn by ``draw`` from the
step's RNG; tests replace it with the official code's draws.

``config.flow.objective`` picks what is encoded (see ``flow_target``): ``"nll"`` (default) the
normal-light image, as every official recipe; ``"self_supervised"`` a pseudo-target made from
the low image alone (``lljax.losses.exposure_normalised``, with the gain of the full uncropped
image, computed on the host as ``batch["low_mean"]``), whose colour map — the low image's own —
also replaces the target's in the prior coin. That mode never reads ``batch["normal"]``.

Modules with torch buffers (e.g. BatchNorm) train in torch's train mode: the ``"buffers"``
collection is mutable in the loss and the buffers' new values are written back after each
update (``lljax.nn.buffers``); LLFlow has none.

Fresh runs initialise ActNorms from the first batch (data-dependent). Under a sharded ``jit``
the mean/std are taken over the *global* batch, whatever the number of devices; the official
multi-GPU code (torch ``DataParallel``/DDP) initialises from the chunk one GPU sees, so its
init depends on the GPU count and is noisier. On one device the two agree. Batch statistics
of torch-BatchNorm modules (SSFlow's encoder) are likewise global.

``config.microbatches=k`` runs the batch as k sequential parts with gradients averaged: the
same update (noise and coin are drawn for the whole batch first) with about 1/k of the
activation memory; torch buffers then see k microbatches' statistics, as under torch gradient
accumulation.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lljax import flows
from lljax.losses import exposure_normalised, nll_bits_per_pixel
from lljax.nn import BUFFERS, assign_buffers
from lljax.trainers import common, optim, steps

OBJECTIVES = ("nll", "self_supervised")


def flow_target(flow_cfg, batch):
  """(image to encode, image whose colour map is the alternative prior mean) for the objective."""
  if flow_cfg.objective == "nll":
    return batch["normal"], batch["normal"]
  if flow_cfg.objective == "self_supervised":
    target = exposure_normalised(batch["low"], flow_cfg.exposure_level, batch.get("low_mean"))
    return target, batch["low"]
  raise ValueError(f"unknown config.flow.objective {flow_cfg.objective!r}; known: {', '.join(OBJECTIVES)}")


def draw(flow_cfg, batch, rng):
  """The step's random draws for the whole batch: ``{"noise": U[0, 1) of the encoded image's
  shape (unused when quant is 0), "coin": U[0, 1) scalar, "droppath": the models' stochastic-depth
  RNG (UPT-Flow's MSFormer)}``. Replaying given draws: ``"droppath_masks"`` (the model's
  ``"droppath"`` variable collection of keep masks) instead of ``"droppath"``."""
  noise_rng, coin_rng, droppath_rng = jax.random.split(rng, 3)
  shape = batch["low"].shape
  return {"noise": jax.random.uniform(noise_rng, shape, batch["low"].dtype),
          "coin": jax.random.uniform(coin_rng), "droppath": droppath_rng}


def step_inputs(flow_cfg, batch, draws):
  """((batch, x, logdet0, colour_source, rows), use_gt_prior) of one step: the dequantised image
  ``x = image + (noise - 1/2) / quant`` (B, H, W, 3) with its log-det ``-ln(quant) H W`` (B,),
  the image whose colour map is the alternative prior mean, the row indices (B,) (microbatch i
  starts at row i) and the prior coin ``coin < train_gt_ratio`` (a boolean scalar)."""
  image, colour_source = flow_target(flow_cfg, batch)
  if flow_cfg.quant:
    x = image + (draws["noise"] - 0.5) / flow_cfg.quant
    logdet0 = jnp.full((x.shape[0],), -np.log(flow_cfg.quant) * x.shape[1] * x.shape[2], x.dtype)
  else:
    x, logdet0 = image, jnp.zeros((image.shape[0],), image.dtype)
  rows = jnp.arange(x.shape[0], dtype=jnp.int32)
  return (batch, x, logdet0, colour_source, rows), draws["coin"] < flow_cfg.train_gt_ratio


def stochastic(draws, rows):
  """(extra variables, rngs) of a train-mode apply: the given keep masks, or the stochastic-depth
  RNG folded with the part's first row (each microbatch draws its own masks)."""
  if "droppath_masks" in draws:
    return {"droppath": draws["droppath_masks"]}, {}
  if "droppath" in draws:
    return {}, {"droppath": jax.random.fold_in(draws["droppath"], rows[0])}
  return {}, {}


def nll_loss(module, use_gt_prior, draws, params, inputs):
  """Mean NLL (bits per pixel location) of ``inputs`` (from ``step_inputs``) in train mode;
  returns (loss, (aux metrics, new buffers))."""
  batch, x, logdet0, colour_source, rows = inputs
  variables, rngs = stochastic(draws, rows)
  out, state = module.apply({"params": params, **variables}, batch, x, target=colour_source,
                            use_target_prior=use_gt_prior, method=module.encode, mutable=[BUFFERS], rngs=rngs)
  pixels = x.shape[1] * x.shape[2]
  nll = nll_bits_per_pixel(out["z"], out["logdet"] + logdet0, out["prior_mean"], pixels)
  return jnp.mean(nll), ({"gt_prior": use_gt_prior.astype(jnp.float32)}, state.get(BUFFERS, {}))


def make_gradients(module, config):
  """``gradients(params, batch, draws) -> ((loss, aux metrics, new buffers, use_gt_prior), grads)``:
  the step's loss and gradients for given draws (see ``draw``), over ``config.microbatches``
  sequential parts of the batch."""

  def gradients(params, batch, draws):
    inputs, use_gt_prior = step_inputs(config.flow, batch, draws)
    grad_fn = jax.value_and_grad(functools.partial(nll_loss, module, use_gt_prior, draws), has_aux=True)
    (loss, (aux, buffers)), grads = steps.accumulate_gradients(
        grad_fn, params, inputs, config.microbatches, advance=lambda p, aux: assign_buffers(p, aux[1]))
    buffers = jax.tree.map(lambda b: b[-1], buffers)  # the last microbatch's: they were threaded
    return (loss, jax.tree.map(jnp.mean, aux), buffers, use_gt_prior), grads

  return gradients


def make_update(module, family, tx, config, draw_fn=None):
  """The flow update ``(state, batch, rng) -> (state, metrics)`` (see ``steps.make_train_step``).

  ``draw_fn(flow_cfg, batch, rng) -> draws`` supplies the step's randomness (default ``draw``).
  On steps whose prior is the target's, the parameters only the learned prior uses
  (``family.PRIOR_ONLY_PARAMS``, e.g. LLFlow's colour-map head) get no update at all, as torch's
  Adam skips parameters whose ``grad`` is None (``optim.scale_by_adam_torch``).
  """
  draw_fn = draw_fn or draw
  prior_only = getattr(family, "PRIOR_ONLY_PARAMS", ())
  gradients = make_gradients(module, config)

  def update(state, batch, rng):
    (loss, aux, buffers, use_gt_prior), grads = gradients(state["params"], batch, draw_fn(config.flow, batch, rng))
    active = jax.tree.map(lambda only: ~(only & use_gt_prior), optim.path_mask(state["params"], prior_only))
    params, opt, finite = optim.guarded_update(tx, state["params"], state["opt"], grads, loss, active=active)
    params = assign_buffers(params, buffers, assign_if=finite)  # torch buffers (none in LLFlow)
    metrics = {"loss": loss, "finite": finite, "grad_norm": optax.global_norm(grads), **aux}
    return {**state, "params": params, "opt": opt}, metrics

  return update


def actnorm_init(module, config, params, batch, draws=None):
  """Data-dependent ActNorm initialisation from one (global) batch, in train mode, on what step 0
  encodes: the official ActNorm initialises inside the first update's forward pass, so from its
  dequantised image, prior and stochastic-depth masks (``draws``: default step 0's, from
  ``config.seed``). Keeps the params' placement (e.g. FSDP)."""

  def run(params, batch):
    step0 = draws if draws is not None else draw(config.flow, batch, jax.random.fold_in(jax.random.key(config.seed), 0))
    (batch, x, _, colour_source, rows), use_gt_prior = step_inputs(config.flow, batch, step0)
    variables, rngs = stochastic(step0, rows)
    _, state = module.apply({"params": params, **variables}, batch, x, target=colour_source,
                            use_target_prior=use_gt_prior, method=module.encode,
                            mutable=[flows.ACTNORM_INIT, BUFFERS], rngs=rngs)
    return flows.init_actnorms(params, state[flows.ACTNORM_INIT])

  leaves = jax.tree.leaves(params)
  if leaves and all(isinstance(a, jax.Array) for a in leaves):
    return jax.jit(run, out_shardings=jax.tree.map(lambda a: a.sharding, params))(params, batch)
  return jax.jit(run)(params, batch)


def host_fn(family, flow_cfg):
  """Host features of the model, plus the full image's mean for the self-supervised target."""
  self_supervised = flow_cfg.objective == "self_supervised"

  def features(example):
    low = np.asarray(example["low"])
    out = dict(family.host_features(low))
    if self_supervised:  # the gain must not depend on the crop (see exposure_normalised)
      out["low_mean"] = np.float32(low.mean() / 255.0)
    return out

  return features


TRAINER = common.Trainer(
    make_update=make_update,
    data_options=lambda config, family: {"host_fn": host_fn(family, config.flow), "flip": config.data.flip},
    data_init=actnorm_init,
)


def train(config, workdir):
  """Trains a flow model as configured; writes checkpoints, metrics and samples to ``workdir``."""
  return common.train(config, workdir, TRAINER)
