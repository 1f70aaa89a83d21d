"""Rematerialisation (gradient checkpointing) of model blocks, switched on for a trace.

``with rematerialize(True): jax.grad(loss)(...)`` makes every block built with
``remat_block(cls)`` a checkpointed copy of itself: the backward pass keeps only each block's
inputs and recomputes its inside, so activation memory grows with the number of blocks instead
of the number of layers, for about one more forward pass of compute. The blocks are the flows'
``FlowStep``, the encoders' repeated blocks (LLFlow's RRDB, UPT-Flow's transformer blocks,
SSFlow's U-Net blocks), DEvUDP's ResBlocks and INFWIDE's ResBlocks and cross-residual blocks.
Parameter names and values are unchanged, so checkpoints work either way, and so are the
results (up to XLA's float reassociation).

Two implementations, picked by ``how``:

- ``"checkpoint"``: ``flax.linen.remat`` (``jax.checkpoint``), whose recomputation is kept apart
  by optimization barriers. GPU and TPU backends honour them. XLA's CPU backend does not: it
  removes the barriers (``OptimizationBarrierExpander``) before its last CSE and its scheduling,
  so the recomputed forward is merged back into the original or scheduled beside it and temp
  memory stays the same (``benchmarks/README.md``).
- ``"tied"``: a ``jax.custom_vjp`` whose backward recomputes the block from its inputs plus an
  exact zero derived from the block's output cotangent (``tie_after``). The recomputation then
  depends on the cotangent, so no compiler can merge it with the forward pass or run it before
  the backward pass reaches the block: a data dependency instead of a barrier. This is what
  saves memory on XLA:CPU.

The trainers pick one from the platform of the mesh a step runs on (``lljax.trainers.steps.
backend_choices``: "tied" on CPU, "checkpoint" elsewhere) unless the config names one.

Like ``lljax.nn.precision.autocast`` the setting is read while tracing: wrap the traced body
(the train step's gradient computation), not the call of a compiled function.
"""

import contextlib
import contextvars
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import lift

_MODE = contextvars.ContextVar("lljax_remat", default=None)
HOW = ("checkpoint", "tied")


@contextlib.contextmanager
def rematerialize(enabled=True, how="checkpoint"):
  """Blocks made by ``remat_block`` inside this context are rematerialised (if ``enabled``).

  ``how``: "checkpoint" or "tied" (see the module docstring).
  """
  if how not in HOW:
    raise ValueError(f"rematerialize: how must be one of {HOW}, got {how!r}")
  token = _MODE.set(how if enabled else None)
  try:
    yield
  finally:
    _MODE.reset(token)


def remat_block(cls, methods=None):
  """``cls``, or its checkpointed copy when called inside ``rematerialize(True)``.

  ``methods``: the methods to checkpoint besides ``__call__`` (e.g. a flow step's
  ``forward``/``inverse``). Construct the block with an explicit name or inside ``setup``:
  flax's auto-names derive from the class name, which the lifted class changes.
  """
  how = _MODE.get()
  return _remat(cls, tuple(methods) if methods else None, how) if how else cls


@functools.lru_cache(maxsize=None)
def _remat(cls, methods, how):
  methods = list(methods) if methods else None
  if how == "checkpoint":
    return nn.remat(cls, methods=methods)
  return nn.transforms.lift_transform(_lifted_tied_checkpoint, cls, methods=methods)


def tie_after(tree, deps):
  """``tree`` with an exact zero added to its floating leaves, a zero computed from one element
  of every floating leaf of ``deps``: the same values, which XLA must compute after ``deps``.
  (``isnan`` keeps a NaN of ``deps`` out of the zero; XLA folds ``x * 0`` only for integers.)"""
  probes = [jnp.isnan(d[(0,) * d.ndim]).astype(jnp.float32) for d in jax.tree.leaves(deps)
            if jnp.issubdtype(d.dtype, jnp.inexact) and d.size]
  if not probes:
    return tree
  zero = sum(probes) * 0.0
  tie = lambda a: a + zero.astype(a.dtype) if jnp.issubdtype(a.dtype, jnp.inexact) else a
  return jax.tree.map(tie, tree)


def tied_checkpoint(fun):
  """``fun`` (a function of pytrees of arrays, other leaves static) checkpointed: its backward
  pass keeps only the inputs and recomputes ``fun`` from them, tied to the output cotangent
  (``tie_after``) so that the recomputation can only run once the backward pass reaches it."""

  @functools.wraps(fun)
  def wrapped(*args, **kwargs):
    leaves, treedef = jax.tree.flatten((args, kwargs))
    dynamic = [i for i, leaf in enumerate(leaves) if isinstance(leaf, (jax.Array, np.ndarray, np.generic))]

    def on_arrays(*arrays):
      full = list(leaves)
      for i, a in zip(dynamic, arrays):
        full[i] = a
      args, kwargs = jax.tree.unflatten(treedef, full)
      return fun(*args, **kwargs)

    arrays = [leaves[i] for i in dynamic]
    # Closed-over tracers become explicit inputs, so that their gradients are not lost.
    converted, consts = jax.closure_convert(on_arrays, *arrays)
    return _tied_call(converted, *arrays, *consts)

  return wrapped


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _tied_call(fun, *arrays):
  return fun(*arrays)


def _tied_fwd(fun, *arrays):
  return fun(*arrays), arrays


def _tied_bwd(fun, arrays, cotangent):
  _, vjp = jax.vjp(fun, *tie_after(arrays, cotangent))
  return vjp(cotangent)


_tied_call.defvjp(_tied_fwd, _tied_bwd)


def _lifted_tied_checkpoint(fn, variables=True, rngs=True):
  """``flax.core.lift.checkpoint`` with ``tied_checkpoint`` in place of ``jax.checkpoint``."""

  def inner(scope_fn, repack_fn, variable_groups, rng_groups, *args, **kwargs):
    def rematted(variable_groups, rng_groups, *args, **kwargs):
      scope = scope_fn(variable_groups, rng_groups)
      y = fn(scope, *args, **kwargs)
      return y, repack_fn(scope)

    return tied_checkpoint(rematted)(variable_groups, rng_groups, *args, **kwargs)

  return lift.pack(inner, (variables,), (variables,), (rngs,), name="remat", enable_kwargs=True)
