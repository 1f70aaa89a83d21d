"""Trainer for supervised restoration models (INFWIDE): a pixel objective against the target.

Per step the model maps the batch's degraded input (plus its blur kernel for non-blind
deblurring) to its outputs and minimises the family's objective (``family.OBJECTIVE``, a key of
``OBJECTIVES``; INFWIDE: ``lljax.losses.infwide_loss``). Targets derived from the batch are made
on the device: ``clean_blurry`` = the sharp target circularly blurred by the kernel
(``lljax.nn.fft.circular_conv``), INFWIDE's denoiser and close-loop target; with
``config.data.saturation`` s > 0 the input is saturated as INFWIDE's data loader does,
``clip(s * x, 0, 1) / s`` (NightShot stores the unsaturated camera output).

Note on pre-degraded data: the official loader crops the sharp patch and blurs the crop
circularly, so ``clean_blurry`` and the input agree exactly; on datasets degraded at full size
(NightShot, embedded_photos) the crop of the blurred image differs from the circular blur of the
crop within a kernel radius of the crop border.

Optimizer: Adam (``config.optimizer.amsgrad``: the running max of the second moment, as
``torch.optim.Adam(amsgrad=True)``), per-element gradient value clipping
(``clip_grad_value``), L2 weight decay added to the gradient (torch semantics), step decay
(``config.schedule``: lr * gamma ** floor(step / step_size)). The train step is one jitted
program over the data mesh, params/optimizer state placed by ``lljax.parallel.state_shardings``
(replicated, or FSDP with ``config.mesh.fsdp``) and donated; ``config.compute_dtype``
(bfloat16 convolutions, float32 params and objective) and ``config.remat`` (blocks recomputed
in the backward pass) as in every trainer; ``config.microbatches`` accumulates gradients over
sequential parts of the batch. Runs resume from the newest checkpoint; the data
stream depends only on (seed, step).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lljax import api, checkpoint, losses, parallel
from lljax.data import pipeline, sources
from lljax.nn.fft import circular_conv
from lljax.trainers import common
from lljax.utils.writers import MetricWriter

OBJECTIVES = {"infwide": losses.infwide_loss}


def step_schedule(cfg):
  """lr * gamma ** floor(step / step_size) (torch StepLR stepped every ``step_size`` updates)."""

  def schedule(step):
    xp = jnp if isinstance(step, jax.Array) else np
    return cfg.lr * cfg.gamma ** xp.floor_divide(step, cfg.step_size)

  return schedule


class AmsgradState(NamedTuple):
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


def scale_by_amsgrad_torch(b1=0.9, b2=0.999, eps=1e-8):
  """``torch.optim.Adam(amsgrad=True)``'s direction: the running max of the RAW second moment,
  bias-corrected at the current step: m_hat / (sqrt(max_t v_t) / sqrt(1 - b2^t) + eps).
  (optax's ``scale_by_amsgrad`` maxes the bias-corrected moments instead, which differs early on.)
  """

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return AmsgradState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros())

  def update(grads, state, params=None):
    del params
    count = state.count + 1
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    bc1, bc2 = 1 - b1 ** count.astype(jnp.float32), 1 - b2 ** count.astype(jnp.float32)
    updates = jax.tree.map(lambda m, v: (m / bc1) / (jnp.sqrt(v) / jnp.sqrt(bc2) + eps), mu, nu_max)
    return updates, AmsgradState(count, mu, nu, nu_max)

  return optax.GradientTransformation(init, update)


def make_optimizer(cfg, schedule):
  """Value clipping -> L2 decay -> Adam / AMSGrad -> learning rate."""
  parts = []
  if cfg.get("clip_grad_value"):
    parts.append(optax.clip(cfg.clip_grad_value))
  if cfg.get("weight_decay"):
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  adam = scale_by_amsgrad_torch if cfg.get("amsgrad", False) else optax.scale_by_adam
  parts.append(adam(cfg.b1, cfg.b2, cfg.eps))
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)


def prepare_batch(batch, saturation=0.0):
  """Device-side derived fields: the saturated input and ``clean_blurry`` (when a kernel is given)."""
  batch = dict(batch)
  if saturation:
    batch["low"] = jnp.clip(batch["low"] * saturation, 0.0, 1.0) / saturation
  if "kernel" in batch:
    batch["clean_blurry"] = circular_conv(batch["normal"], batch["kernel"])
  return batch


def model_args(family, batch):
  """Positional model inputs of a batch: (low, kernel) for kernel models, else (low,)."""
  if getattr(family, "NEEDS_KERNEL", False):
    return batch["low"], batch["kernel"]
  return (batch["low"],)


def loss_fn(module, family, objective, saturation, params, batch):
  batch = prepare_batch(batch, saturation)
  outputs = common.to_float32(module.apply({"params": params}, *model_args(family, batch)))
  return objective(outputs, batch)


def make_train_step(module, family, tx, schedule, config, shardings, mesh, compiler_options=None):
  """The jitted update ``(params, opt_state, step, batch) -> (params, opt_state, metrics)``.

  ``compiler_options``: XLA options for the compilation (tests lower CPU optimisation levels).
  ``config.compute_dtype``/``config.remat``: see ``common.compute_context`` (the objective is
  taken in float32). ``config.microbatches=k``: k sequential parts of the batch, gradients
  averaged (``common.accumulate_gradients``): the same update with ~1/k of the activation memory.
  """
  objective = OBJECTIVES[family.OBJECTIVE]
  saturation = float(config.data.get("saturation", 0.0) or 0.0)
  repl = parallel.replicated(mesh)

  def train_step(params, opt_state, step, batch):
    grad_fn = jax.value_and_grad(functools.partial(loss_fn, module, family, objective, saturation),
                                 has_aux=True)
    with common.compute_context(config.get("compute_dtype", "float32"), config.get("remat", False)):
      (loss, parts), grads = common.accumulate_gradients(grad_fn, params, batch, config.get("microbatches", 1))
    params, opt_state, finite = common.guarded_update(tx, params, opt_state, grads, loss)
    metrics = {"loss": loss, "finite": finite, "lr": schedule(step),
               "grad_norm": optax.global_norm(grads), **jax.tree.map(jnp.mean, parts)}
    return params, opt_state, metrics

  param_sh, opt_sh = shardings
  return jax.jit(train_step, donate_argnums=(0, 1),
                 in_shardings=(param_sh, opt_sh, repl, parallel.batch_sharding(mesh)),
                 out_shardings=(param_sh, opt_sh, repl), compiler_options=compiler_options)


def _abstract_state(module, family, tx, config):
  params = common.abstract_params(module, family, config)
  return params, jax.eval_shape(tx.init, params)


def train(config, workdir):
  """Trains a supervised model as configured; writes checkpoints, metrics and samples."""
  workdir, family, model_kwargs, module, mesh = common.start_run(config, workdir)
  schedule = step_schedule(config.schedule)
  tx = make_optimizer(config.optimizer, schedule)
  abstract = _abstract_state(module, family, tx, config)
  shardings = tuple(common.state_shardings(t, config, mesh) for t in abstract)
  ckpts = checkpoint.TrainCheckpoints(workdir, config.keep_checkpoints)
  start_step = ckpts.latest_step() or 0

  source = sources.open_source(config.data.name, config.data.train_split, config.data.get("data_dir"))
  kernels = bool(getattr(family, "NEEDS_KERNEL", False))
  # Kernel data: the pipeline passes the kernel through uncropped, and the flips happen here so
  # that the kernel is mirrored with its image (the pipeline's flips know nothing of kernels).
  batches = pipeline.train_batches(
      source, batch_size=config.batch_size, crop_size=config.data.crop_size, seed=config.seed,
      start_step=start_step, host_fn=_kernel_field if kernels else None,
      flip=config.data.flip and not kernels, vflip=config.data.get("vflip", False) and not kernels,
      rot90=config.data.get("rot90", False), process_index=jax.process_index(),
      process_count=jax.process_count())
  flips = (config.data.flip, config.data.get("vflip", False)) if kernels else (False, False)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  try:
    if not start_step:
      params = common.initial_params(config, family, module)[0]
      params = jax.device_put(params, shardings[0])
      opt_state = jax.jit(tx.init, out_shardings=shardings[1])(params)
      print(f"{workdir}: new run ({config.init_checkpoint or 'random init'})")
    else:
      with_sh = lambda t, sh: jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), t, sh)
      params, opt_state, meta = ckpts.restore(start_step, with_sh(abstract[0], shardings[0]),
                                              with_sh(abstract[1], shardings[1]))
      print(f"{workdir}: resuming after step {meta['step']}")
    restorer = api.Restorer(config.model.name, model_kwargs, params)
    _loop(config, workdir, module, family, tx, schedule, mesh, shardings, ckpts, writer, batches,
          restorer, params, opt_state, start_step, flips)
  finally:
    batches.close()
    ckpts.close()
    writer.close()


def _kernel_field(example):
  if "kernel" not in example:
    raise ValueError(f"example {example.get('name')!r} has no blur kernel; INFWIDE trains on data with "
                     "kernels (embedded_photos/lowlight_blur, embedded_photos/night_blur, nightshot)")
  return {"kernel": np.asarray(example["kernel"], np.float32)}


def flip_with_kernels(batch, rng, flip=True, vflip=False):
  """Random horizontal/vertical flips per row of image fields AND their (B, kh, kw) kernels."""
  batch = dict(batch)
  for axis, enabled in ((2, flip), (1, vflip)):
    if not enabled:
      continue
    rows = rng.random(batch["low"].shape[0]) < 0.5
    for key in ("low", "normal"):
      batch[key] = np.where(rows[:, None, None, None], np.flip(batch[key], axis), batch[key])
    batch["kernel"] = np.where(rows[:, None, None], np.flip(batch["kernel"], axis), batch["kernel"])
  return batch


def _loop(config, workdir, module, family, tx, schedule, mesh, shardings, ckpts, writer, batches,
          restorer, params, opt_state, start_step, flips=(False, False)):
  train_step = make_train_step(module, family, tx, schedule, config, shardings, mesh)

  def next_batch(step):
    batch = _model_batch(next(batches))
    if any(flips):
      rng = np.random.default_rng([config.seed, step, jax.process_index(), 7])
      batch = flip_with_kernels(batch, rng, *flips)
    return parallel.global_batch(batch, mesh)

  def evaluate(state, step):
    restorer.params = state[0]
    return evaluate_kernel_model(restorer, _eval_examples(config, family), workdir, step, writer,
                                 config.num_samples, float(config.data.get("saturation", 0.0) or 0.0))

  def save(state, step):
    ckpts.save(step, *state, {"step": step, "seed": config.seed})

  common.train_loop(config, config.total_steps, start_step, (params, opt_state), common.paired(train_step),
                    next_batch, evaluate, save, writer)
  ckpts.wait()


_BATCH_KEYS = ("low", "normal", "kernel")


def _model_batch(batch):
  """The arrays the step uses (sources carry extra fields, e.g. noise parameters and names)."""
  return {k: np.asarray(batch[k], np.float32) for k in _BATCH_KEYS if k in batch}


def _eval_examples(config, family):
  return common.eval_examples(config, _kernel_field if getattr(family, "NEEDS_KERNEL", False) else None)


class _WithKernels:
  """A Restorer view whose ``enhance(low)`` passes each example's kernel (and saturation)."""

  def __init__(self, restorer, saturation):
    self.restorer, self.saturation, self.kernel = restorer, saturation, None

  def enhance(self, low):
    if self.saturation:
      low = np.clip(low * self.saturation, 0.0, 1.0) / self.saturation
    return self.restorer.enhance(low, self.kernel)


def evaluate_kernel_model(restorer, examples, workdir, step, writer, num_samples, saturation=0.0):
  """``common.evaluate`` for models that take the example's blur kernel (or none)."""
  view = _WithKernels(restorer, saturation)

  def with_kernel():
    for ex in examples:
      view.kernel = np.asarray(ex["kernel"])[0] if restorer.needs_kernel else None
      yield ex

  return common.evaluate(view, with_kernel(), workdir, step, writer, num_samples)

