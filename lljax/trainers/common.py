"""The training run every trainer shares, top to bottom: ``train(config, workdir, trainer)``.

A ``Trainer`` (one per paradigm: ``flow``, ``gan``, ``supervised``) supplies the few
model-specific pieces: its ``update`` (the loss and optimizer step, see ``steps``), optimizer
state layout, data options and evaluation inputs. Everything else happens here, in order:
workdir and run files, device mesh, data source, schedule and optimizer, checkpoints, the train
state (fresh, from ``config.init_checkpoint``, or resumed), the jitted step, and the loop with
its logging, evaluation and checkpointing.

The train state is one pytree, ``{"step": int32 scalar (completed updates), "params": ...,
"opt": optimizer state}`` (the GAN's ``opt`` is ``{"g": ..., "d": ...}``), saved as it is; it
restores onto whatever mesh the resuming run has. The data stream and the step's RNG depend only
on (seed, step), so a resumed run reproduces an uninterrupted one.
"""

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from lljax import checkpoint, distributed, models, parallel
from lljax.data import pipeline, sources
from lljax.nn import init_variables
from lljax.trainers import evaluation, optim, steps
from lljax.utils.progress import Progress
from lljax.utils.writers import MetricWriter


class NonFiniteError(FloatingPointError):
  """The loss or gradients became NaN/Inf; training stopped before saving the bad state."""


@dataclasses.dataclass(frozen=True)
class Trainer:
  """The model-specific pieces of a training run.

  make_update: ``(module, family, tx, config) -> update(state, batch, rng) -> (state, metrics)``;
    metrics hold at least "loss" and "finite".
  init_opt: ``(tx, params) -> opt`` (default ``tx.init``).
  data_options: ``(config, family) -> kwargs`` of ``pipeline.train_batches`` beyond the common ones.
  host_batch: ``(config, batch, step) -> batch`` on the host before the step (default: as is).
  data_init: ``(module, config, params, batch) -> params`` of a fresh run from its first batch
    (flows: ActNorm's data-dependent initialisation).
  eval_fields: ``(config, family) -> host_fn`` of the eval examples (or None).
  eval_inputs: ``(config, family, example) -> (low, extra model inputs)``.
  check: ``config -> None``, raising for settings the trainer cannot honour.
  """

  make_update: Callable
  init_opt: Callable = lambda tx, params: tx.init(params)
  data_options: Callable = lambda config, family: {}
  host_batch: Optional[Callable] = None
  data_init: Optional[Callable] = None
  eval_fields: Callable = lambda config, family: None
  eval_inputs: Callable = lambda config, family, example: (example["low"], {})
  check: Callable = lambda config: None


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run is made of: its config, workdir, model and device mesh."""

  config: object
  workdir: pathlib.Path
  family: object
  model_kwargs: dict
  module: object
  mesh: object


# ---------------------------------------------------------------------------------------------
# The run, top to bottom.
# ---------------------------------------------------------------------------------------------


def train(config, workdir, trainer):
  """Trains as configured into ``workdir``, resuming from its newest checkpoint; returns the final
  state (None when the run was already complete)."""
  trainer.check(config)
  run = start_run(config, workdir)
  source = sources.open_source(config.data.name, config.data.train_split, config.data.data_dir)
  total, steps_per_epoch = total_steps(config, len(source))
  schedule = optim.make_schedule(config.schedule, total, steps_per_epoch)
  tx = optim.make_optimizer(config.optimizer, schedule)
  ckpts = checkpoint.TrainCheckpoints(run.workdir, config.keep_checkpoints)
  hint = lambda: resume_hint(ckpts)
  # The watchdog encloses the checkpoints' close (it waits for every process); a peer's error is
  # acted on inside it, before that close.
  with distributed.watch_peers(hint), contextlib.ExitStack() as stack:
    stack.enter_context(contextlib.closing(ckpts))
    stack.enter_context(distributed.peer_errors(hint))
    start = ckpts.latest_step() or 0  # checkpoints are named by completed steps
    if start >= total:
      say(f"{run.workdir}: the run is complete ({start} of {total} steps); nothing to do")
      return None
    abstract = abstract_state(run, tx, trainer)
    shardings = state_shardings(abstract, config, run.mesh)
    batches = stack.enter_context(contextlib.closing(pipeline.train_batches(
        source, batch_size=config.batch_size, crop_size=config.data.crop_size, seed=config.seed,
        start_step=start, process_index=jax.process_index(), process_count=jax.process_count(),
        **trainer.data_options(config, run.family))))
    writer = stack.enter_context(contextlib.closing(MetricWriter(run.workdir, enabled=jax.process_index() == 0)))
    next_batch = batch_stream(run, trainer, batches, start)
    if start:
      state = restore_state(ckpts, start, abstract, shardings)
      say(f"{run.workdir}: resuming after step {start}")
    else:
      state = fresh_state(run, trainer, tx, shardings, next_batch.peek())
    step_fn = steps.make_train_step(trainer.make_update(run.module, run.family, tx, config), schedule,
                                    config, run.mesh, shardings)
    save = lambda state, step: ckpts.save(step, state, {"step": step, "seed": config.seed})
    state = train_loop(config, total, start, state, step_fn, next_batch, make_evaluator(run, trainer, writer),
                       save, writer)
    ckpts.wait()
    return state


def resume_hint(ckpts):
  """What to do after a lost process: rerun, which resumes from the last checkpoint."""
  step = ckpts.latest_step()
  where = f"the last checkpoint (step {step})" if step else "the start (no checkpoint was written yet)"
  return f"rerun the same command on every process to resume from {where}"


def say(message):
  """Prints ``message`` once per run (on process 0)."""
  if jax.process_index() == 0:
    print(message, flush=True)


def start_run(config, workdir):
  """Checks the workdir, builds the model from ``config.model``, writes ``config.json`` and
  ``model.json`` and makes the device mesh (checking that the batch splits over it)."""
  workdir = prepare_workdir(workdir)
  family = models.get(config.model.name)
  model_kwargs = model_config(family, config.model)
  module = family.Model(**model_kwargs)
  write_run_files(workdir, config, config.model.name, model_kwargs)
  mesh = parallel.make_mesh(config.mesh.data)
  parallel.check_batch_size(config.batch_size, mesh)
  steps.check_microbatches(config, mesh)
  return Run(config, workdir, family, model_kwargs, module, mesh)


def total_steps(config, num_examples):
  """(total updates, updates per epoch): ``config.total_steps``, or ``config.epochs`` passes over
  the ``num_examples`` training examples (the blurry stream for unpaired data)."""
  per_epoch = max(1, math.ceil(num_examples / config.batch_size))
  if (config.total_steps is None) == (config.epochs is None):
    raise ValueError("set exactly one of config.total_steps and config.epochs")
  total = config.total_steps if config.total_steps is not None else config.epochs * per_epoch
  if total < 1:
    raise ValueError(f"the run has {total} steps; config.total_steps or config.epochs must be positive")
  return int(total), per_epoch


class batch_stream:  # pylint: disable=invalid-name
  """``next_batch(step)``: the global batch of each step (the host batch after the trainer's
  ``host_batch``, sharded over the mesh); ``peek()`` is the first one (a fresh run's data init)."""

  def __init__(self, run, trainer, batches, start):
    self.run, self.trainer, self.batches, self.step, self.first = run, trainer, batches, start, None

  def _next(self):
    batch = next(self.batches)
    if self.trainer.host_batch is not None:
      batch = self.trainer.host_batch(self.run.config, batch, self.step)
    return parallel.global_batch(batch, self.run.mesh)

  def peek(self):
    if self.first is None:
      self.first = self._next()
    return self.first

  def __call__(self, step):
    assert step == self.step, (step, self.step)
    batch, self.first = (self.first, None) if self.first is not None else (self._next(), None)
    self.step += 1
    return batch


# ---------------------------------------------------------------------------------------------
# The train state.
# ---------------------------------------------------------------------------------------------


def new_state(params, opt, step=0):
  """The train state pytree ``{"step", "params", "opt"}``."""
  return {"step": jnp.asarray(step, jnp.int32), "params": params, "opt": opt}


def abstract_state(run, tx, trainer):
  """The state's shapes and dtypes (nothing computed)."""
  params = abstract_params(run.module, run.family, run.config)
  return jax.eval_shape(lambda: new_state(params, trainer.init_opt(tx, params)))


def state_shardings(tree, config, mesh):
  """Shardings of a state tree by ``config.mesh`` (replicated, or FSDP with ``fsdp=True``:
  arrays of >= ``fsdp_min_size`` elements sharded over "data"); see ``parallel.state_shardings``."""
  return parallel.state_shardings(tree, mesh, config.mesh.fsdp, config.mesh.fsdp_min_size)


def fresh_state(run, trainer, tx, shardings, first_batch):
  """The state of a new run: params from ``config.init_checkpoint`` or a random initialisation
  (then the trainer's data init on the first batch), a fresh optimizer state, step 0."""
  params, fresh = initial_params(run.config, run.family, run.module)
  params = jax.device_put(params, shardings["params"])
  if fresh and trainer.data_init is not None:
    params = trainer.data_init(run.module, run.config, params, first_batch)
  opt = jax.jit(lambda p: trainer.init_opt(tx, p), out_shardings=shardings["opt"])(params)
  how = run.config.init_checkpoint if not fresh else "random init" + (" + data init" if trainer.data_init else "")
  say(f"{run.workdir}: new run ({how})")
  return jax.device_put(new_state(params, opt), shardings)


def restore_state(ckpts, step, abstract, shardings):
  """The state saved at ``step``, placed with ``shardings`` whatever mesh wrote it."""
  state, meta = ckpts.restore(step, with_shardings(abstract, shardings))
  if int(state["step"]) != step or meta.get("step") != step:
    raise ValueError(f"checkpoint {step} holds the state of step {int(state['step'])}")
  return state


def with_shardings(abstract, shardings):
  """ShapeDtypeStructs of ``abstract`` carrying ``shardings``."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def initial_params(config, family, module):
  """(host params, fresh) of a new run: ``config.init_checkpoint`` (a converted or trained model
  directory of the same model) or a fresh initialisation at the training crop size."""
  if config.init_checkpoint:
    spec = checkpoint.read_model_spec(config.init_checkpoint)
    if spec["model"] != config.model.name:
      raise ValueError(f"init_checkpoint {config.init_checkpoint} holds a {spec['model']} model, "
                       f"not {config.model.name}")
    return checkpoint.load_params(config.init_checkpoint, abstract_params(module, family, config)), False
  inputs = family.init_inputs(module, size=config.data.crop_size)
  return init_variables(module, config.seed, *inputs)["params"], True


def abstract_params(module, family, config):
  """The params tree's shapes and dtypes (nothing computed), e.g. to restore a checkpoint."""
  inputs = family.init_inputs(module, size=config.data.crop_size)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs))["params"]


def model_config(family, model_cfg):
  """Model kwargs from ``config.model`` ({name, variant, kwargs}) as plain JSON-able values."""
  kwargs = dict(family.VARIANTS[model_cfg.variant]) if model_cfg.variant else {}
  kwargs.update(model_cfg.kwargs or {})
  return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


# ---------------------------------------------------------------------------------------------
# Workdir.
# ---------------------------------------------------------------------------------------------


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


def write_run_files(workdir, config, model_name, model_config_):
  """Writes ``config.json`` and ``model.json``; refuses a workdir of a different model."""
  model_file = workdir / checkpoint.MODEL_FILE
  spec = {"model": model_name, "config": model_config_}
  if model_file.exists():
    old = json.loads(model_file.read_text())
    if (old.get("model"), old.get("config")) != (model_name, json.loads(json.dumps(model_config_))):
      raise ValueError(f"--workdir {workdir} holds a run of a different model ({old.get('model')} "
                       f"{old.get('config')}); use a new workdir to start another run")
  if jax.process_index() == 0:
    checkpoint.write_json(model_file, spec)
    checkpoint.write_json(workdir / "config.json", config.to_dict())


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------


def make_evaluator(run, trainer, writer):
  """The run's ``evaluation.Evaluator`` over the first ``config.eval_limit`` eval examples."""
  config = run.config

  def examples():
    source = sources.open_source(config.data.name, config.data.eval_split, config.data.data_dir)
    return pipeline.eval_examples(source, host_fn=trainer.eval_fields(config, run.family),
                                  limit=config.eval_limit)

  model_inputs = lambda example: trainer.eval_inputs(config, run.family, example)
  return evaluation.Evaluator(config, run.family, run.model_kwargs, run.workdir, writer, examples,
                              model_inputs)


def train_loop(config, total, start_step, state, step_fn, next_batch, evaluate, save, writer):
  """Runs steps ``start_step .. total - 1``; returns the final state.

  ``step_fn(state, batch) -> (state, metrics)`` (jitted, state donated); ``next_batch(step)``;
  ``evaluate(params, step) -> means`` (every ``config.eval_every`` steps, on process 0, with
  the params gathered to its host by every process);
  ``save(state, step)`` every ``config.checkpoint_every``; ``step`` there counts completed
  steps. Metrics are fetched one step late, so the loop never waits on the device, except
  before an eval or a checkpoint (a non-finite loss must stop the run before its state is saved).
  """
  log, save_now, eval_now = (Every(config.log_every, total), Every(config.checkpoint_every, total),
                             Every(config.eval_every, total))
  lead = jax.process_index() == 0  # the one process that reports
  progress = Progress(total, start_step=start_step, stream=None if lead else open(os.devnull, "w"))
  reporter = Reporter(writer, progress, log, config.batch_size, last_saved=start_step or None)
  for step in range(start_step, total):
    with jax.transfer_guard(config.transfer_guard):  # "disallow": no hidden host round-trips
      state, metrics = step_fn(state, next_batch(step))
    reporter.push(step, metrics)
    if save_now(step) or eval_now(step):
      reporter.flush()
    if eval_now(step):
      params = parallel.host_tree(state["params"])  # a collective in multi-process runs
      if lead:
        evaluate(params, step + 1)
    if save_now(step):
      save(state, step + 1)
      reporter.last_saved = step + 1
  reporter.flush()
  progress.close()
  return state


class Reporter:
  """Fetches each step's metrics a step late, stops on a non-finite loss, updates the progress
  line, and every ``log(step)`` writes ``train/*`` scalars and ``perf/*`` throughput (steps/s and
  examples/s since the last log, the first step's time including compilation)."""

  def __init__(self, writer, progress, log, batch_size, last_saved=None):
    self.writer, self.progress, self.log, self.batch_size = writer, progress, log, batch_size
    self.last_saved, self.pending = last_saved, None
    self.started, self.mark = time.time(), None  # mark: (step, time) of the last logged step

  def push(self, step, metrics):
    self.flush()
    self.pending = (step, metrics)

  def flush(self):
    if self.pending is None:
      return
    step, metrics = self.pending
    self.pending = None
    metrics = jax.device_get(metrics)
    check_finite(step, metrics, self.last_saved)
    scalars = {f"train/{k}": float(v) for k, v in metrics.items() if k != "finite"}
    now = time.time()
    if self.mark is None:
      scalars["perf/first_step_s"] = now - self.started
      self.mark = (step, now)
    elif step > self.mark[0]:
      rate = (step - self.mark[0]) / max(now - self.mark[1], 1e-9)
      scalars.update({"perf/steps_per_sec": rate, "perf/examples_per_sec": rate * self.batch_size})
    self.progress.update(step + 1, loss=scalars["train/loss"], lr=scalars["train/lr"])
    if self.log(step):
      self.writer.write_scalars(step + 1, scalars)
      self.mark = (step, now)


def check_finite(step, metrics, last_checkpoint):
  if not math.isfinite(float(metrics["loss"])) or not bool(metrics.get("finite", True)):
    where = (f"the last checkpoint (step {last_checkpoint}) is intact" if last_checkpoint is not None
             else "no checkpoint was written")
    raise NonFiniteError(f"loss became non-finite at step {step} (loss={metrics['loss']}); training stopped "
                         f"and the bad update was not applied; {where}. Lower --config.optimizer.lr or "
                         "tighten gradient clipping (--config.optimizer.clip_grad_norm or clip_grad_value), "
                         "then rerun to resume.")


@dataclasses.dataclass
class Every:
  """Fires every ``period`` steps and at the last step (period <= 0: only at the last step)."""

  period: int
  total_steps: int

  def __call__(self, step):
    done = step + 1
    return done == self.total_steps or (self.period > 0 and done % self.period == 0)


# ---------------------------------------------------------------------------------------------
# A step outside a run (tests, benchmarks).
# ---------------------------------------------------------------------------------------------


def step_and_state(trainer, config, params, mesh, tx=None, schedule=None, compiler_options=None,
                   **update_kwargs):
  """(jitted step, state at step 0) as ``train`` builds them, from ``params`` (host or device)
  with a fresh optimizer state, placed on ``mesh`` by ``config.mesh``; ``tx``/``schedule``
  default to the config's (a 1000-step run of 100-step epochs where the config gives epochs)."""
  family = models.get(config.model.name)
  module = family.Model(**model_config(family, config.model))
  if schedule is None:
    schedule = optim.make_schedule(config.schedule, config.total_steps or 1000, 100)
  if tx is None:
    tx = optim.make_optimizer(config.optimizer, schedule)
  init = lambda p: new_state(p, trainer.init_opt(tx, p))
  shardings = state_shardings(jax.eval_shape(init, params), config, mesh)
  state = jax.jit(init, out_shardings=shardings)(jax.device_put(params, shardings["params"]))
  update = trainer.make_update(module, family, tx, config, **update_kwargs)
  return steps.make_train_step(update, schedule, config, mesh, shardings, compiler_options), state
