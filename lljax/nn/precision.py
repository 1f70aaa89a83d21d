"""Mixed precision in the style of ``torch.autocast``: a compute dtype for convolutions and
matrix products, set for the duration of a trace.

``with autocast("bfloat16"): module.apply(...)`` makes every lljax ``Conv2d``,
``ConvTranspose2d`` and ``Dense`` cast its input and float32 parameters to bfloat16 and return
bfloat16, as torch's autocast does for conv/linear (the official flows trained with fp16
autocast). Parameters stay float32 (the gradients too: they flow back through the cast), and
the flows accumulate log-determinants and the prior's log-density in at least float32
(``logdet_dtype``). The setting is read while tracing, so wrap the traced function's body
(e.g. a loss inside ``jax.jit``), not the call of an already compiled function.
"""

import contextlib
import contextvars

import jax.numpy as jnp

_COMPUTE_DTYPE = contextvars.ContextVar("lljax_compute_dtype", default=None)


@contextlib.contextmanager
def autocast(dtype):
  """Sets the conv/matmul compute dtype (None or "float32": no casting) inside the block."""
  if dtype not in (None, "float32", jnp.float32, "bfloat16", jnp.bfloat16, "float16", jnp.float16):
    raise ValueError(f"compute dtype {dtype!r}: use float32, bfloat16 or float16")
  dtype = None if dtype in (None, "float32", jnp.float32) else jnp.dtype(dtype)
  token = _COMPUTE_DTYPE.set(dtype)
  try:
    yield
  finally:
    _COMPUTE_DTYPE.reset(token)


def compute_dtype(x):
  """The dtype a conv/matmul on ``x`` computes in: the autocast dtype if set, else x's."""
  return _COMPUTE_DTYPE.get() or x.dtype


def logdet_dtype(x):
  """At least float32: the dtype log-determinants and log-densities are accumulated in."""
  return jnp.promote_types(x.dtype, jnp.float32)
