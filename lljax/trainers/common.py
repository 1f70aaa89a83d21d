"""Pieces every trainer shares: workdir files, optimizer and schedule, the finite-update guard,
evaluation with sample grids, and the loop's periodic actions."""

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lljax import api, checkpoint, models, parallel
from lljax.metrics import mae, psnr, ssim
from lljax.nn import init_variables, precision
from lljax.nn.remat import rematerialize, tie_after
from lljax.utils.images import make_grid, save_png, to_uint8
from lljax.utils.progress import Progress


class NonFiniteError(FloatingPointError):
  """The loss or gradients became NaN/Inf; training stopped before saving the bad state."""


def prepare_workdir(workdir):
  """Creates ``workdir`` if needed and checks that it is writable; returns its absolute Path."""
  path = pathlib.Path(workdir).expanduser().absolute()
  if path.exists() and not path.is_dir():
    raise NotADirectoryError(f"--workdir {path} exists and is not a directory")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise PermissionError(f"cannot create --workdir {path}: {e.strerror}") from e
  if not os.access(path, os.W_OK | os.X_OK):
    raise PermissionError(f"--workdir {path} is not writable")
  return path


def write_run_files(workdir, config, model_name, model_config):
  """Writes ``config.json`` and ``model.json``; refuses a workdir of a different model."""
  model_file = workdir / checkpoint.MODEL_FILE
  spec = {"model": model_name, "config": model_config}
  if model_file.exists():
    old = json.loads(model_file.read_text())
    if (old.get("model"), old.get("config")) != (model_name, json.loads(json.dumps(model_config))):
      raise ValueError(f"--workdir {workdir} holds a run of a different model ({old.get('model')} "
                       f"{old.get('config')}); use a new workdir to start another run")
  checkpoint.write_json(model_file, spec)
  checkpoint.write_json(workdir / "config.json", config.to_dict())


def start_run(config, workdir):
  """What every trainer does first: checks the workdir, builds the model from ``config.model``,
  writes ``config.json``/``model.json`` and makes the device mesh (checking the batch splits).

  Returns (workdir Path, model family, model kwargs, module, mesh).
  """
  workdir = prepare_workdir(workdir)
  family = models.get(config.model.name)
  model_kwargs = model_config(family, config.model)
  module = family.Model(**model_kwargs)
  write_run_files(workdir, config, config.model.name, model_kwargs)
  mesh = parallel.make_mesh(config.mesh.data)
  parallel.check_batch_size(config.batch_size, mesh)
  check_microbatches(config, mesh)
  return workdir, family, model_kwargs, module, mesh


def state_shardings(tree, config, mesh):
  """Shardings of a state tree by ``config.mesh`` (replicated, or FSDP with ``fsdp=True``:
  arrays of >= ``fsdp_min_size`` elements sharded over "data"); see ``parallel.state_shardings``."""
  return parallel.state_shardings(tree, mesh, bool(config.mesh.get("fsdp", False)),
                                  config.mesh.get("fsdp_min_size", 2**18))


@contextlib.contextmanager
def compute_context(compute_dtype="float32", remat=False):
  """Wraps a step's traced body: conv/matmul dtype (``lljax.nn.precision.autocast``) and block
  rematerialisation (``lljax.nn.remat``); float32 and no remat change nothing."""
  with precision.autocast(compute_dtype), rematerialize(remat):
    yield


def to_float32(tree):
  """Casts the floating arrays of ``tree`` to at least float32 (losses of bf16 outputs)."""
  return jax.tree.map(lambda x: x.astype(jnp.promote_types(x.dtype, jnp.float32))
                      if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def check_microbatches(config, mesh):
  """Raises a clear error unless ``config.batch_size`` splits into ``config.microbatches`` equal
  parts that each still split over the mesh's devices."""
  count, n = config.get("microbatches", 1), mesh.devices.size
  if count < 1 or config.batch_size % (count * n):
    raise ValueError(f"config.microbatches={count} does not fit batch_size {config.batch_size} on {n} "
                     f"device(s): batch_size must be a multiple of microbatches x devices ({count} x {n})")


def split_microbatches(tree, count):
  """Every leaf ``(B, ...)`` as ``(B // count, count, ...)``: microbatch i is ``[:, i]``, the
  examples i, i + count, i + 2 count, ... (strided, so that each keeps an equal share of every
  device's slice of a batch sharded on its leading axis)."""

  def split(x):
    if x.ndim == 0 or x.shape[0] % count:
      raise ValueError(f"cannot split a batch field of shape {x.shape} into {count} microbatches")
    return x.reshape(x.shape[0] // count, count, *x.shape[1:])

  return jax.tree.map(split, tree)


def microbatch(split, i):
  """Microbatch ``i`` (may be traced) of a ``split_microbatches`` tree."""
  return jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, axis=1, keepdims=False), split)


def accumulate_gradients(grad_fn, params, batch, count, advance=None, loop="auto"):
  """``grad_fn(params, batch) -> ((loss, aux), grads)`` over ``count`` microbatches of ``batch``
  run one after another: only one microbatch's activations are live at a time.

  Returns ((mean loss, aux stacked on a new leading axis of size ``count``), mean grads). For
  a loss that is a mean over examples this is the full batch's loss and gradient (up to float
  summation order), except where the model couples examples (batch statistics: each microbatch
  uses its own, as torch does under gradient accumulation). ``advance(params, aux) -> params``
  gives the next microbatch's params (e.g. torch buffers advanced by this one); the returned
  aux of the last microbatch then holds the final values. ``count == 1`` is one plain call.

  ``loop``: "scan" (one ``lax.scan``: the step is compiled once), "unrolled" (the parts written
  out in sequence, see ``_accumulate_unrolled``) or "auto": unrolled on XLA:CPU, where
  convolutions inside a loop body miss the fast kernels (~20x slower; and INFWIDE's FFTs in a
  scan fail a layout check of XLA:CPU's FFT thunk on a multi-device CPU mesh), scan elsewhere.
  """
  if count == 1:
    (loss, aux), grads = grad_fn(params, batch)
    return (loss, jax.tree.map(lambda a: a[None], aux)), grads
  if loop == "auto":
    loop = "unrolled" if jax.default_backend() == "cpu" else "scan"
  accumulate = {"scan": _accumulate_scanned, "unrolled": _accumulate_unrolled}[loop]
  loss_sum, aux, grad_sum = accumulate(grad_fn, params, split_microbatches(batch, count), count, advance)
  return (loss_sum / count, aux), jax.tree.map(lambda g: g / count, grad_sum)


def _accumulate_scanned(grad_fn, params, split, count, advance):
  """(loss sum, aux stacked, grad sum) of the parts in one ``lax.scan``."""

  # The scan runs over part indices and slices the parts in place: no transposed copy of the batch.
  def body(carry, i):
    current, loss_sum, grad_sum = carry
    (loss, aux), grads = grad_fn(current, microbatch(split, i))
    current = advance(current, aux) if advance is not None else current
    return (current, loss_sum + loss.astype(jnp.float32), jax.tree.map(jnp.add, grad_sum, grads)), aux

  zeros = jax.tree.map(jnp.zeros_like, params)
  init = (params, jnp.zeros((), jnp.float32), zeros)
  (_, loss_sum, grad_sum), aux = jax.lax.scan(body, init, jnp.arange(count))
  return loss_sum, aux, grad_sum


def _accumulate_unrolled(grad_fn, params, split, count, advance):
  """(loss sum, aux stacked, grad sum) of the parts written out one after another.

  XLA:CPU canonicalises only the entry computation's convolutions for its fast (YNNPACK/Eigen)
  kernels, so those of a scanned step's backward pass run on the naive emitter. Here each part
  instead takes its inputs through ``tie_after`` the previous parts' gradients: a data dependency,
  so XLA cannot overlap the parts and frees one's activations before the next runs (XLA:CPU
  drops an ``optimization_barrier`` before scheduling, so a barrier would not do). Costs
  ``count`` copies of the step to compile.
  """
  current, loss_sum, grad_sum, auxes = params, jnp.zeros((), jnp.float32), None, []
  for i in range(count):
    part = microbatch(split, i) if grad_sum is None else tie_after(microbatch(split, i), grad_sum)
    (loss, aux), grads = grad_fn(current, part)
    current = advance(current, aux) if advance is not None else current
    loss_sum = loss_sum + loss.astype(jnp.float32)
    grad_sum = grads if grad_sum is None else jax.tree.map(jnp.add, grad_sum, grads)
    auxes.append(aux)
  return loss_sum, jax.tree.map(lambda *a: jnp.stack(a), *auxes), grad_sum


def initial_params(config, family, module):
  """(host params, fresh) of a new run: ``config.init_checkpoint`` (a converted or trained model
  directory of the same model) or a fresh initialisation at the training crop size."""
  if config.get("init_checkpoint"):
    restorer = api.load(config.init_checkpoint)
    if restorer.model_name != config.model.name:
      raise ValueError(f"init_checkpoint {config.init_checkpoint} holds a {restorer.model_name} model")
    return restorer.params, False
  inputs = family.init_inputs(module, size=config.data.crop_size)
  return init_variables(module, config.seed, *inputs)["params"], True


def abstract_params(module, family, config):
  """The params tree's shapes and dtypes (nothing computed), e.g. to restore a checkpoint."""
  inputs = family.init_inputs(module, size=config.data.crop_size)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs))["params"]


def model_config(family, model_cfg):
  """Model kwargs from ``config.model`` ({name, variant, kwargs}) as plain JSON-able values."""
  kwargs = dict(family.VARIANTS[model_cfg.variant]) if model_cfg.get("variant") else {}
  kwargs.update(model_cfg.get("kwargs", {}) or {})
  return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


# ---------------------------------------------------------------------------------------------
# Optimizer and learning-rate schedule.
# ---------------------------------------------------------------------------------------------


def lr_schedule(cfg, total_steps):
  """Warm-up + multi-step decay as the SRFlow/LLFlow ``train.py`` runs it.

  Our update k is the official iteration ``k + cfg.step_offset`` (LLFlow counts iterations
  from 1 and skips the update of iteration 1, so offset 2). For iteration ``it``:
  ``lr * it / warmup`` while ``it < warmup``; afterwards the decayed rate, times
  ``(warmup - 1) / warmup`` when ``cfg.warmup_quirk`` (the official scheduler keeps the last
  warm-up value instead of restoring the base rate). Milestones are
  ``int(r * niter)`` for r in ``cfg.milestones_rel`` with ``niter = total_steps + offset - 1``.

  Returns a function step -> lr usable inside jit and with NumPy.
  """
  offset = cfg.get("step_offset", 2)
  niter = total_steps + offset - 1
  milestones = np.array([int(r * niter) for r in cfg.milestones_rel] or [np.iinfo(np.int32).max])
  warmup = cfg.warmup_steps
  base = cfg.lr * ((warmup - 1) / warmup if warmup > 0 and cfg.get("warmup_quirk", True) else 1.0)

  def schedule(step):
    xp = jnp if isinstance(step, jax.Array) else np
    it = step + offset
    decayed = base * cfg.gamma ** xp.sum(it >= milestones)
    if warmup <= 0:
      return decayed
    return xp.where(it < warmup, cfg.lr * it / warmup, decayed)

  return schedule


def make_optimizer(cfg, schedule):
  """Adam (torch semantics: L2 ``weight_decay`` added to the gradient), optional clipping."""
  parts = []
  if cfg.get("clip_grad_norm"):
    parts.append(optax.clip_by_global_norm(cfg.clip_grad_norm))
  if cfg.get("clip_grad_value"):
    parts.append(optax.clip(cfg.clip_grad_value))
  if cfg.get("weight_decay"):
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  parts.append(optax.scale_by_adam(cfg.b1, cfg.b2, cfg.eps))
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)


def guarded_update(tx, params, opt_state, grads, loss):
  """Applies the update only if loss and gradients are finite (else keeps the old state)."""
  updates, new_opt_state = tx.update(grads, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
  return keep(new_params, params), keep(new_opt_state, opt_state), finite


def check_finite(step, metrics, last_checkpoint):
  if not math.isfinite(float(metrics["loss"])) or not bool(metrics.get("finite", True)):
    where = f"the last checkpoint (step {last_checkpoint}) is intact" if last_checkpoint is not None else "no checkpoint was written"
    raise NonFiniteError(f"loss became non-finite at step {step} (loss={metrics['loss']}); training stopped "
                         f"and the bad update was not applied; {where}. Lower --config.optimizer.lr or "
                         "tighten gradient clipping (--config.optimizer.clip_grad_norm or clip_grad_value), then rerun to resume.")


def report_step(pending, writer, progress, log, last_saved):
  """Fetches one step's metrics (a step late, so the loop never waits on the device), stops on a
  non-finite loss, updates the progress line and logs ``train/*`` scalars when ``log(step)``."""
  step, metrics = pending
  metrics = jax.device_get(metrics)
  check_finite(step, metrics, last_saved)
  scalars = {k: float(v) for k, v in metrics.items() if k != "finite"}
  progress.update(step + 1, loss=scalars["loss"], lr=scalars["lr"])
  if log(step):
    writer.write_scalars(step + 1, {f"train/{k}": v for k, v in scalars.items()})


def log_eval(writer, step, means, seconds):
  """Writes the eval means (+ ``eval/seconds``) at ``step`` and prints them on one line."""
  writer.write_scalars(step, {**means, "eval/seconds": seconds})
  print("  eval @ step %d: %s" % (step, "  ".join(f"{k[5:]}={v:.4f}" for k, v in means.items())))


def eval_examples(config, host_fn=None):
  """Full-size examples of ``config.data.eval_split`` (first ``config.eval_limit``)."""
  from lljax.data import pipeline, sources  # pylint: disable=import-outside-toplevel

  source = sources.open_source(config.data.name, config.data.eval_split, config.data.get("data_dir"))
  return pipeline.eval_examples(source, host_fn=host_fn, limit=config.get("eval_limit"))


def train_loop(config, total, start_step, state, step_fn, next_batch, evaluate_fn, save_fn, writer):
  """The loop every trainer runs; returns the final state.

  ``step_fn(state, step, batch) -> (state, metrics)`` (jitted, state donated);
  ``next_batch(step)``: the global batch of a step; ``evaluate_fn(state, step) -> means`` (process
  0 only, every ``config.eval_every`` steps); ``save_fn(state, step)`` every
  ``config.checkpoint_every``; ``step`` there counts completed steps. Metrics are fetched one step
  late, so the loop never waits on the device, except before an eval or a checkpoint (a
  non-finite loss must stop the run before its state is saved).
  """
  log, save, evaluate = (Every(config.log_every, total), Every(config.checkpoint_every, total),
                         Every(config.eval_every, total))
  progress = Progress(total, start_step=start_step)
  last_saved = start_step or None
  pending = None
  for step in range(start_step, total):
    state, metrics = step_fn(state, jnp.int32(step), next_batch(step))
    if pending is not None:
      report_step(pending, writer, progress, log, last_saved)
    pending = (step, metrics)
    if save(step) or evaluate(step):
      report_step(pending, writer, progress, log, last_saved)
      pending = None
    if evaluate(step) and jax.process_index() == 0:
      t0 = time.time()
      means = evaluate_fn(state, step + 1)
      log_eval(writer, step + 1, means, time.time() - t0)
    if save(step):
      save_fn(state, step + 1)
      last_saved = step + 1
  if pending is not None:
    report_step(pending, writer, progress, log, last_saved)
  progress.close()
  return state


def paired(step_fn):
  """A ``(params, opt_state, step, batch) -> (params, opt_state, metrics)`` update as
  ``train_loop``'s ``(state, step, batch) -> (state, metrics)`` with state (params, opt_state)."""

  def run(state, step, batch):
    params, opt_state, metrics = step_fn(*state, step, batch)
    return (params, opt_state), metrics

  return run


@dataclasses.dataclass
class Every:
  """Fires every ``period`` steps and at the last step (period <= 0: only at the last step)."""

  period: int
  total_steps: int

  def __call__(self, step):
    done = step + 1
    return done == self.total_steps or (self.period > 0 and done % self.period == 0)


# ---------------------------------------------------------------------------------------------
# Evaluation: honest metrics on full images + PNG sample grids.
# ---------------------------------------------------------------------------------------------


def gt_mean_rescale(output, target):
  """Scales ``output`` so its mean over all values equals the target's, then clips to [0, 1].

  A quick in-training stand-in for the LLFlow/KinD "GT-mean" (the paper protocol takes the
  target's mean through OpenCV's grey conversion and truncates to 8 bits: ``lljax.evaluate``
  with protocol ``llflow`` reproduces it exactly).
  """
  scale = target.mean() / max(output.mean(), 1e-8)
  return np.clip(output * scale, 0.0, 1.0)


def evaluate(restorer, examples, workdir, step, writer, num_samples=4):
  """Enhances each eval example; returns mean metrics and writes a sample grid PNG.

  Metrics are the honest ones (clipped output vs target, no GT information) plus the PSNR after
  GT-mean brightness rescaling that the LLFlow family selects models with.
  """
  rows, sums, count = [], {}, 0
  for ex in examples:
    out = restorer.enhance(ex["low"])
    target = ex["normal"]
    values = {
        "psnr": float(psnr(out, target)[0]),
        "ssim": float(ssim(out, target)[0]),
        "mae": float(mae(out, target)[0]),
        "psnr_gtmean": float(psnr(gt_mean_rescale(out, target), target)[0]),
    }
    sums = {k: sums.get(k, 0.0) + v for k, v in values.items()}
    count += 1
    if len(rows) < num_samples:
      rows.append([to_uint8(ex["low"][0]), to_uint8(out[0]), to_uint8(target[0])])
  if not count:
    return {}
  means = {f"eval/{k}": v / count for k, v in sums.items()}
  grid = make_grid(rows)
  samples = workdir / "samples"
  samples.mkdir(exist_ok=True)
  save_png(samples / f"step_{step:07d}.png", grid)
  writer.write_images(step, {"samples (input | output | target)": grid})
  return means


def host_config(config):
  """A frozen copy of the config for passing around (guards against accidental mutation)."""
  return ml_collections.FrozenConfigDict(config)


def step_decay_schedule(lr, every_steps, gamma):
  """``lr * gamma ** (step // every_steps)`` (torch ``StepLR`` stepped every ``every_steps``
  updates; ``every_steps <= 0``: constant). A function step -> lr for jit and NumPy."""

  def schedule(step):
    xp = jnp if isinstance(step, jax.Array) else np
    if every_steps <= 0:
      return xp.asarray(lr, xp.float32) if xp is jnp else lr
    return lr * gamma ** (step // every_steps)

  return schedule
