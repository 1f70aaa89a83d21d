"""Rematerialisation (gradient checkpointing) of model blocks, switched on for a trace.

``with rematerialize(True): jax.grad(loss)(...)`` makes every block built with
``remat_block(cls)`` a ``flax.linen.remat`` of itself: the backward pass keeps only each
block's inputs and recomputes its inside, so activation memory grows with the number of blocks
instead of the number of layers, for about one more forward pass of compute. The blocks are the
flows' ``FlowStep``, the encoders' repeated blocks (LLFlow's RRDB, UPT-Flow's transformer
blocks, SSFlow's U-Net blocks), DEvUDP's ResBlocks and INFWIDE's ResBlocks and cross-residual
blocks. Parameter names and values are unchanged, so checkpoints work either way, and so are
the results (up to XLA's float reassociation). The saving is XLA's to make: GPU/TPU schedules
exploit it. XLA's CPU backend does not: it removes the optimization barriers that keep the
recomputation apart before its last CSE and its scheduling, so the recomputed forward is merged
back into the original or scheduled beside it, and temp memory stays the same
(``benchmarks/README.md``). On a CPU, ``config.microbatches`` is what cuts activation memory.

Like ``lljax.nn.precision.autocast`` the setting is read while tracing: wrap the traced body
(the train step's gradient computation), not the call of a compiled function.
"""

import contextlib
import contextvars
import functools

import flax.linen as nn

_ENABLED = contextvars.ContextVar("lljax_remat", default=False)


@contextlib.contextmanager
def rematerialize(enabled=True):
  """Blocks made by ``remat_block`` inside this context are rematerialised (if ``enabled``)."""
  token = _ENABLED.set(bool(enabled))
  try:
    yield
  finally:
    _ENABLED.reset(token)


def remat_block(cls, methods=None):
  """``cls``, or its ``nn.remat`` when called inside ``rematerialize(True)``.

  ``methods``: the methods to checkpoint besides ``__call__`` (e.g. a flow step's
  ``forward``/``inverse``). Construct the block with an explicit name or inside ``setup``:
  flax's auto-names derive from the class name, which ``nn.remat`` changes.
  """
  return _remat(cls, tuple(methods) if methods else None) if _ENABLED.get() else cls


@functools.lru_cache(maxsize=None)
def _remat(cls, methods):
  return nn.remat(cls, methods=list(methods)) if methods else nn.remat(cls)
