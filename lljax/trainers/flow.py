"""Trainer for conditional normalizing flows (LLFlow family): maximum likelihood.

Per step: dequantise the normally lit target (``x + (u - 1/2) / quant``; ``quant = 0`` encodes
it as is), encode it conditioned on the low-light input, and minimise the NLL in bits per pixel
location. The prior mean is the model's own business (LLFlow: its learned colour map, or with
probability ``train_gt_ratio`` — one coin per batch, as the official code — the target's
chromaticity).

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

Sharding follows ``config.mesh``: ``data`` devices (-1: all) with the batch split over them;
parameters and optimizer state replicated, or with ``fsdp=True`` every array of at least
``fsdp_min_size`` elements sharded over the same axis (``lljax.parallel.state_shardings``).
Checkpoints restore onto whatever mesh the resuming run has. ``config.compute_dtype``,
``config.remat`` and ``config.microbatches`` (see ``make_train_step``) trade precision, compute
and parallelism for speed and memory.
Runs resume automatically from the newest checkpoint in the workdir; the data stream and the
per-step RNG depend only on (seed, step), so a resumed run reproduces an uninterrupted one.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lljax import api, checkpoint, flows, parallel
from lljax.data import pipeline, sources
from lljax.losses import dequantize, exposure_normalised, nll_bits_per_pixel
from lljax.nn import BUFFERS, assign_buffers
from lljax.trainers import common
from lljax.utils.writers import MetricWriter


def _host_fn(family, flow_cfg=None):
  """Host features of the model, plus the full image's mean for the self-supervised target."""
  self_supervised = flow_cfg is not None and flow_cfg.get("objective", "nll") == "self_supervised"

  def features(example):
    low = np.asarray(example["low"])
    out = dict(family.host_features(low))
    if self_supervised:  # the gain must not depend on the crop (see exposure_normalised)
      out["low_mean"] = np.float32(low.mean() / 255.0)
    return out

  return features


OBJECTIVES = ("nll", "self_supervised")


def flow_target(flow_cfg, batch):
  """(image to encode, image whose colour map is the alternative prior mean) for the objective."""
  objective = flow_cfg.get("objective", "nll")
  if objective == "nll":
    return batch["normal"], batch["normal"]
  if objective == "self_supervised":
    target = exposure_normalised(batch["low"], flow_cfg.get("exposure_level", 0.5), batch.get("low_mean"))
    return target, batch["low"]
  raise ValueError(f"unknown config.flow.objective {objective!r}; known: {', '.join(OBJECTIVES)}")


def _dequantize(rng, x, quant):
  if not quant:
    return x, jnp.zeros((x.shape[0],), x.dtype)
  return dequantize(rng, x, quant)


def draw_step_inputs(flow_cfg, batch, rng):
  """The step's randomness, drawn once for the whole batch.

  Returns ((batch, x, logdet0, colour_source), use_gt_prior): the dequantised image to encode
  ``x`` (B, H, W, 3) with its log-det term (B,), the image whose colour map is the alternative
  prior mean, and the batch's one prior coin (a boolean scalar).
  """
  dequant_rng, coin_rng = jax.random.split(rng)
  image, colour_source = flow_target(flow_cfg, batch)
  x, logdet0 = _dequantize(dequant_rng, image, flow_cfg.quant)
  use_gt_prior = jax.random.uniform(coin_rng) < flow_cfg.train_gt_ratio
  return (batch, x, logdet0, colour_source), use_gt_prior


def nll_loss(module, use_gt_prior, params, inputs):
  """Mean NLL (bits per pixel location) of ``inputs`` (from ``draw_step_inputs``); returns
  (loss, (aux metrics, new buffers))."""
  batch, x, logdet0, colour_source = inputs
  out, state = module.apply({"params": params}, batch, x, target=colour_source,
                            use_target_prior=use_gt_prior, method=module.encode, mutable=[BUFFERS])
  pixels = x.shape[1] * x.shape[2]
  nll = nll_bits_per_pixel(out["z"], out["logdet"] + logdet0, out["prior_mean"], pixels)
  return jnp.mean(nll), ({"gt_prior": use_gt_prior.astype(jnp.float32)}, state.get(BUFFERS, {}))


def loss_fn(module, flow_cfg, params, batch, rng):
  """Mean NLL (bits per pixel location) of the batch; returns (loss, (aux metrics, new buffers))."""
  inputs, use_gt_prior = draw_step_inputs(flow_cfg, batch, rng)
  return nll_loss(module, use_gt_prior, params, inputs)


def make_train_step(module, tx, schedule, flow_cfg, seed, mesh, state_shardings=None,
                    compute_dtype="float32", remat=False, microbatches=1):
  """The jitted update ``(params, opt_state, step, batch) -> (params, opt_state, metrics)``.

  ``state_shardings``: (params, opt_state) sharding trees (default: replicated). The batch is
  sharded on "data"; the loss is a mean over the global batch, so gradients are too.
  ``compute_dtype="bfloat16"``: convolutions and matmuls in bfloat16 (``lljax.nn.precision``),
  parameters, optimizer state and log-det/NLL accumulation in float32.
  ``remat=True``: flow steps and encoder blocks recompute their activations in the backward
  pass (``lljax.nn.remat``): same result in less memory, for large crops.
  ``microbatches=k``: the batch runs as k sequential parts with gradients averaged
  (``common.accumulate_gradients``): the same update (dequantisation noise and the prior coin
  are drawn for the whole batch first) with about 1/k of the activation memory. Torch buffers
  (SSFlow's BatchNorm) then see k microbatches' statistics, as under torch gradient accumulation.
  """
  repl = parallel.replicated(mesh)
  param_sh, opt_sh = state_shardings or (repl, repl)

  def train_step(params, opt_state, step, batch):
    rng = jax.random.fold_in(jax.random.key(seed), step)
    inputs, use_gt_prior = draw_step_inputs(flow_cfg, batch, rng)
    grad_fn = jax.value_and_grad(functools.partial(nll_loss, module, use_gt_prior), has_aux=True)
    with common.compute_context(compute_dtype, remat):
      (loss, (aux, buffers)), grads = common.accumulate_gradients(
          grad_fn, params, inputs, microbatches, advance=lambda p, aux: assign_buffers(p, aux[1]))
    buffers = jax.tree.map(lambda b: b[-1], buffers)  # the last microbatch's: they were threaded
    params, opt_state, finite = common.guarded_update(tx, params, opt_state, grads, loss)
    params = assign_buffers(params, buffers, assign_if=finite)  # torch buffers (none in LLFlow)
    metrics = {"loss": loss, "finite": finite, "lr": schedule(step),
               "grad_norm": jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads))),
               **jax.tree.map(jnp.mean, aux)}
    return params, opt_state, metrics

  return jax.jit(train_step, donate_argnums=(0, 1), out_shardings=(param_sh, opt_sh, repl))


def _actnorm_init(module, params, batch, flow_cfg=None):
  """Data-dependent ActNorm initialisation from one (global) batch, in train mode."""

  def run(params, batch):
    image = flow_target(flow_cfg, batch)[0] if flow_cfg is not None else batch["normal"]
    _, state = module.apply({"params": params}, batch, image, method=module.encode,
                            mutable=[flows.ACTNORM_INIT, BUFFERS])
    return flows.init_actnorms(params, state[flows.ACTNORM_INIT])

  leaves = jax.tree.leaves(params)
  if leaves and all(isinstance(a, jax.Array) for a in leaves):  # keep the placement (e.g. FSDP)
    return jax.jit(run, out_shardings=jax.tree.map(lambda a: a.sharding, params))(params, batch)
  return jax.jit(run)(params, batch)


def _initial_params(config, family, module, mesh, first_batch):
  """Params of a fresh run: a converted/trained model directory, or random + ActNorm init."""
  params, fresh = common.initial_params(config, family, module)
  params = _put_params(params, config, mesh)
  return (_actnorm_init(module, params, first_batch, config.flow) if fresh else params), fresh


def _put_params(params, config, mesh):
  return jax.device_put(params, _state_shardings(params, None, config, mesh)[0])


def _state_shardings(params, tx, config, mesh):
  """(params, opt_state) sharding trees from ``config.mesh`` (``fsdp``, ``fsdp_min_size``);
  opt_state's is None without ``tx``."""
  opt_state = jax.eval_shape(tx.init, params) if tx is not None else None
  return (common.state_shardings(params, config, mesh),
          common.state_shardings(opt_state, config, mesh) if tx is not None else None)


def train(config, workdir):
  """Trains a flow model as configured; writes checkpoints, metrics and samples to ``workdir``."""
  workdir, family, model_kwargs, module, mesh = common.start_run(config, workdir)
  schedule = common.lr_schedule(config.schedule, config.total_steps)
  tx = common.make_optimizer(config.optimizer, schedule)
  ckpts = checkpoint.TrainCheckpoints(workdir, config.keep_checkpoints)
  start_step = ckpts.latest_step() or 0  # checkpoints are named by completed steps

  source = sources.open_source(config.data.name, config.data.train_split, config.data.get("data_dir"))
  batches = pipeline.train_batches(
      source, batch_size=config.batch_size, crop_size=config.data.crop_size, seed=config.seed,
      start_step=start_step, host_fn=_host_fn(family, config.flow), flip=config.data.flip,
      process_index=jax.process_index(), process_count=jax.process_count())
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  try:
    if not start_step:
      first = parallel.global_batch(next(batches), mesh)
      params, fresh = _initial_params(config, family, module, mesh, first)
      opt_state = jax.jit(tx.init, out_shardings=_state_shardings(params, tx, config, mesh)[1])(params)
      pending_batch = first
      print(f"{workdir}: new run ({'random init + ActNorm data init' if fresh else config.init_checkpoint})")
    else:
      abstract = _abstract_state(module, family, tx, config, mesh)
      params, opt_state, meta = ckpts.restore(start_step, *abstract)
      pending_batch = None
      print(f"{workdir}: resuming after step {meta['step']}")
    restorer = api.Restorer(config.model.name, model_kwargs, params)
    _loop(config, workdir, module, tx, schedule, mesh, ckpts, writer, batches, restorer,
          params, opt_state, start_step, pending_batch)
  finally:
    batches.close()
    ckpts.close()
    writer.close()


def _abstract_state(module, family, tx, config, mesh):
  """(params, opt_state) ShapeDtypeStructs carrying this run's shardings: a checkpoint written
  on any mesh restores onto the current one."""
  params = common.abstract_params(module, family, config)
  trees = (params, jax.eval_shape(tx.init, params))
  with_sharding = lambda t, sh: jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), t, sh)
  return tuple(map(with_sharding, trees, _state_shardings(params, tx, config, mesh)))


def _loop(config, workdir, module, tx, schedule, mesh, ckpts, writer, batches, restorer,
          params, opt_state, start_step, first_batch):
  train_step = make_train_step(module, tx, schedule, config.flow, config.seed, mesh,
                               _state_shardings(params, tx, config, mesh),
                               config.get("compute_dtype", "float32"), config.get("remat", False),
                               config.get("microbatches", 1))
  first = [first_batch]  # a fresh run's first batch already served the ActNorm init

  def next_batch(step):
    del step
    batch, first[0] = first[0], None
    return batch if batch is not None else parallel.global_batch(next(batches), mesh)

  def evaluate(state, step):
    restorer.params = state[0]
    return common.evaluate(restorer, common.eval_examples(config), workdir, step, writer, config.num_samples)

  def save(state, step):
    ckpts.save(step, *state, {"step": step, "seed": config.seed})

  common.train_loop(config, config.total_steps, start_step, (params, opt_state), common.paired(train_step),
                    next_batch, evaluate, save, writer)
  ckpts.wait()


