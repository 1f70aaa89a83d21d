"""The numerical precision of convolutions and matrix products, set for the duration of a trace.

``policy(setting)`` is what users pick (``lljax.load(..., precision=)``, ``--precision``, the
configs' ``precision``); every lljax convolution and matrix product reads it while tracing and
passes it to XLA as the op's precision, so a lowered program carries it and no global flag
(``jax_default_matmul_precision``) is needed or consulted:

* ``"highest"`` (default): float32 products, as the official PyTorch code computes (torch keeps
  float32 convolutions and matmuls on CPU; converted checkpoints reproduce its outputs).
* ``"default"``: the backend's default: float32 on CPU, TF32 tensor cores on recent NVIDIA GPUs,
  one bfloat16 pass on TPU; faster there, less exact (``README.md``, "Precision").
* ``"bfloat16"``: ``autocast("bfloat16")`` below: convolutions and matmuls in bfloat16.

Mixed precision in the style of ``torch.autocast``:
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

import jax
import jax.numpy as jnp

SETTINGS = ("highest", "default", "bfloat16")
_COMPUTE_DTYPE = contextvars.ContextVar("lljax_compute_dtype", default=None)
_PRECISION = contextvars.ContextVar("lljax_precision", default=jax.lax.Precision.HIGHEST)


@contextlib.contextmanager
def policy(setting):
  """Traces inside the block with the ``setting`` of ``SETTINGS`` (see the module docstring)."""
  token = _PRECISION.set(jax.lax.Precision.DEFAULT if checked(setting) == "default" else jax.lax.Precision.HIGHEST)
  try:
    with autocast("bfloat16" if setting == "bfloat16" else None):
      yield
  finally:
    _PRECISION.reset(token)


def checked(setting):
  """``setting`` if it is one of ``SETTINGS``, else a ValueError naming them."""
  if setting not in SETTINGS:
    raise ValueError(f"precision {setting!r}: use one of {', '.join(SETTINGS)}")
  return setting


def dot_precision():
  """The ``jax.lax.Precision`` of a conv/matmul traced now: the policy's for float32 compute;
  ``DEFAULT`` under a 16-bit autocast (one pass of 16-bit inputs is all there is)."""
  return jax.lax.Precision.DEFAULT if _COMPUTE_DTYPE.get() is not None else _PRECISION.get()


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
