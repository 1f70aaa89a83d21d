"""The jitted train step every trainer runs, and what it is made of.

A trainer supplies ``update(state, batch, rng) -> (state, metrics)`` (its model-specific part);
``make_train_step`` wraps it into ``step(state, batch) -> (state, metrics)``: the step's RNG is
``fold_in(key(config.seed), state["step"])``, the body is traced under the config's compute
context (bf16 autocast, remat, microbatch loop), the step counter advances and ``metrics["lr"]``
is the schedule's rate of this update. The state (``{"step", "params", "opt"}``, see
``lljax.trainers.common``) is donated; the batch is sharded on the mesh's "data" axis.

Program-structure choices that depend on the platform (remat kind, microbatch loop) are taken
from the devices of the mesh the step runs on, never from the process's default backend, and a
config can force either choice (``config.remat_how``, ``config.microbatch_loop``).
"""

import contextlib
import contextvars

import jax
import jax.numpy as jnp

from lljax import parallel
from lljax.nn import precision
from lljax.nn.remat import rematerialize, tie_after

LOOPS = ("auto", "scan", "unrolled")
_LOOP = contextvars.ContextVar("lljax_microbatch_loop", default="scan")


def mesh_platform(mesh):
  """The platform ("cpu", "gpu", "tpu") of the mesh's devices."""
  return mesh.devices.flat[0].platform


def backend_choices(config, mesh):
  """(remat kind, microbatch loop) for a step on ``mesh``: the config's, with "auto" resolved
  from the mesh's platform — on XLA:CPU "tied" remat (it drops ``jax.checkpoint``'s barriers)
  and unrolled microbatches (convolutions in a loop body miss its fast kernels); elsewhere
  ``jax.checkpoint`` and one ``lax.scan``."""
  cpu = mesh_platform(mesh) == "cpu"
  how = config.remat_how if config.remat_how != "auto" else ("tied" if cpu else "checkpoint")
  if config.microbatch_loop not in LOOPS:
    raise ValueError(f"config.microbatch_loop={config.microbatch_loop!r}; use one of {', '.join(LOOPS)}")
  loop = config.microbatch_loop if config.microbatch_loop != "auto" else ("unrolled" if cpu else "scan")
  return how, loop


@contextlib.contextmanager
def compute_context(compute_dtype="float32", remat=False, remat_how="checkpoint", loop="scan",
                    precision_setting="highest"):
  """Wraps a step's traced body: conv/matmul precision and dtype (``lljax.nn.precision``), block
  rematerialisation (``lljax.nn.remat``) and the loop of ``accumulate_gradients``."""
  if loop not in LOOPS[1:]:
    raise ValueError(f"microbatch loop {loop!r}; use 'scan' or 'unrolled'")
  if precision_setting not in ("highest", "default"):
    raise ValueError(f"config.precision={precision_setting!r}: use 'highest' or 'default' "
                     "(bfloat16 compute is config.compute_dtype='bfloat16')")
  token = _LOOP.set(loop)
  try:
    with precision.policy(precision_setting), precision.autocast(compute_dtype), rematerialize(remat, remat_how):
      yield
  finally:
    _LOOP.reset(token)


def make_train_step(update, schedule, config, mesh, shardings, compiler_options=None):
  """``update`` as the jitted ``step(state, batch) -> (state, metrics)`` (state donated).

  ``shardings``: the state's sharding tree (``common.state_shardings``). The metrics are
  replicated scalars (``update``'s plus ``lr``). ``compiler_options``: XLA options (tests lower
  CPU optimisation levels to compile faster).
  """
  remat_how, loop = backend_choices(config, mesh)
  repl = parallel.replicated(mesh)

  def step(state, batch):
    rng = jax.random.fold_in(jax.random.key(config.seed), state["step"])
    with compute_context(config.compute_dtype, config.remat, remat_how, loop, config.precision):
      new_state, metrics = update(state, batch, rng)
    new_state = {**new_state, "step": state["step"] + 1}
    return new_state, {**metrics, "lr": jnp.asarray(schedule(state["step"]), jnp.float32)}

  return jax.jit(step, in_shardings=(shardings, parallel.batch_sharding(mesh)),
                 out_shardings=(shardings, repl), donate_argnums=(0,), compiler_options=compiler_options)


def to_float32(tree):
  """Casts the floating arrays of ``tree`` to at least float32 (losses of bf16 outputs)."""
  return jax.tree.map(lambda x: x.astype(jnp.promote_types(x.dtype, jnp.float32))
                      if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


# ---------------------------------------------------------------------------------------------
# Gradient accumulation over microbatches.
# ---------------------------------------------------------------------------------------------


def check_microbatches(config, mesh):
  """Raises a clear error unless ``config.batch_size`` splits into ``config.microbatches`` equal
  parts that each still split over the mesh's devices."""
  count, n = config.microbatches, mesh.devices.size
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


def accumulate_gradients(grad_fn, params, batch, count, advance=None, loop=None):
  """``grad_fn(params, batch) -> ((loss, aux), grads)`` over ``count`` microbatches of ``batch``
  run one after another: only one microbatch's activations are live at a time.

  Returns ((mean loss, aux stacked on a new leading axis of size ``count``), mean grads). For
  a loss that is a mean over examples this is the full batch's loss and gradient (up to float
  summation order), except where the model couples examples (batch statistics: each microbatch
  uses its own, as torch does under gradient accumulation). ``advance(params, aux) -> params``
  gives the next microbatch's params (e.g. torch buffers advanced by this one); the returned
  aux of the last microbatch then holds the final values. ``count == 1`` is one plain call.

  ``loop``: "scan" (one ``lax.scan``: the step is compiled once) or "unrolled" (the parts written
  out in sequence, see ``_accumulate_unrolled``); None: the ``compute_context``'s (the train
  step sets it from the mesh's platform, see ``backend_choices``), "scan" outside one.
  """
  if count == 1:
    (loss, aux), grads = grad_fn(params, batch)
    return (loss, jax.tree.map(lambda a: a[None], aux)), grads
  loop = _LOOP.get() if loop is None else loop
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
