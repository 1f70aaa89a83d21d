"""Parameter initialisers with PyTorch's conventions, and fast host-side model initialisation.

Kernels are HWIO (conv) or (in, out) (dense); ``fan_in`` is the product of all but the last
axis. PyTorch initialises ``nn.Conv2d``/``nn.Linear`` weights with ``kaiming_uniform_(a=
sqrt(5))`` = U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and biases with the same bound; official
code often overrides this (e.g. RRDB's ``kaiming_normal_ * 0.1``). Every initialiser here
works both as a Flax/JAX initialiser ``init(key, shape, dtype)`` and on the host
(``init.host(np_rng, shape, dtype)``).

Why host initialisation: XLA's CPU compiler spends a noticeable time on each random-number
expansion of a distinct shape, so ``jax.jit(model.init)`` of a full model compiles for minutes
(``benchmarks/README.md``, "Figures behind choices in the code").
``init_variables`` instead traces the model once with ``jax.eval_shape`` while ``ParamModule``
records which initialiser made each parameter, then draws every value with NumPy from a stream
seeded by (seed, parameter path): seconds for any model, deterministic, and independent of the
order in which parameters are created.
"""

import contextlib
import contextvars
import dataclasses
import math
import zlib

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def fan_in(shape):
  """Fan-in of an HWIO conv kernel or an (in, out) dense kernel."""
  return math.prod(shape[:-1])


class Initializer:
  """Base class: subclasses define ``sample(draw, shape)`` with ``draw`` a JAX or NumPy backend."""

  def __call__(self, key, shape, dtype=jnp.float32):
    return self.sample(_JaxDraw(key), tuple(shape)).astype(dtype)

  def host(self, rng, shape, dtype=np.float32):
    return np.asarray(self.sample(_NumpyDraw(rng), tuple(shape)), dtype)


class _JaxDraw:
  xp = jnp

  def __init__(self, key):
    self.key = key

  def uniform(self, low, high, shape):
    return jax.random.uniform(self.key, shape, jnp.float32, low, high)

  def normal(self, shape):
    return jax.random.normal(self.key, shape, jnp.float32)


class _NumpyDraw:
  xp = np

  def __init__(self, rng):
    self.rng = rng

  def uniform(self, low, high, shape):
    return self.rng.uniform(low, high, shape)

  def normal(self, shape):
    return self.rng.standard_normal(shape)


@dataclasses.dataclass(frozen=True)
class Uniform(Initializer):
  """U(-bound, bound); bound = 1/sqrt(fan_in) (torch's default) when ``fan_in_of`` is None."""

  bound: float | None = None

  def sample(self, draw, shape):
    bound = self.bound if self.bound is not None else 1.0 / math.sqrt(fan_in(shape))
    return draw.uniform(-bound, bound, shape)


@dataclasses.dataclass(frozen=True)
class Normal(Initializer):
  """N(0, std^2), as ``weight.data.normal_(0, std)``."""

  std: float = 1.0

  def sample(self, draw, shape):
    return draw.normal(shape) * self.std


@dataclasses.dataclass(frozen=True)
class KaimingNormal(Initializer):
  """``kaiming_normal_(a=0, mode='fan_in')`` times ``scale``: N(0, 2/fan_in) * scale."""

  scale: float = 1.0

  def sample(self, draw, shape):
    return draw.normal(shape) * (math.sqrt(2.0 / fan_in(shape)) * self.scale)


@dataclasses.dataclass(frozen=True)
class Constant(Initializer):
  value: float = 0.0

  def sample(self, draw, shape):
    return draw.xp.full(shape, self.value, draw.xp.float32)


@dataclasses.dataclass(frozen=True)
class Orthogonal(Initializer):
  """Q of the QR decomposition of a square Gaussian matrix (Glow's invertible 1x1 conv)."""

  def sample(self, draw, shape):
    q, _ = draw.xp.linalg.qr(draw.normal(shape))
    return q


torch_default_kernel = Uniform()
zeros = Constant(0.0)
ones = Constant(1.0)


def torch_default_bias(kernel_fan_in):
  """Bias initialiser U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for a layer of the given fan-in."""
  return Uniform(1.0 / math.sqrt(kernel_fan_in))


def kaiming_normal(scale=1.0):
  return KaimingNormal(scale)


def normal(std):
  return Normal(std)


# ------------------------------------------------------------------------------------------
# Host-side initialisation of whole models.
# ------------------------------------------------------------------------------------------

_RECORDING = contextvars.ContextVar("lljax_param_recording", default=None)


class ParamModule(nn.Module):
  """Base class of every lljax module that declares parameters: records their initialisers."""

  def param(self, name, init_fn, *init_args, **kwargs):  # pylint: disable=arguments-differ
    record = _RECORDING.get()
    if record is not None:
      record["/".join((*self.path, name))] = (init_fn, init_args)
    return super().param(name, init_fn, *init_args, **kwargs)


@contextlib.contextmanager
def _recording():
  record = {}
  token = _RECORDING.set(record)
  try:
    yield record
  finally:
    _RECORDING.reset(token)


def _host_value(path, init_fn, init_args, seed, abstract):
  if not isinstance(init_fn, Initializer):
    raise TypeError(f"parameter {path} uses {init_fn!r}, which has no host initialiser; "
                    "use an lljax.nn.init Initializer")
  shape = init_args[0] if init_args else abstract.shape
  rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
  value = init_fn.host(rng, shape, abstract.dtype)
  if value.shape != abstract.shape:
    raise ValueError(f"host initialiser of {path} gave shape {value.shape}, expected {abstract.shape}")
  return value


def init_variables(module, seed, *args, method=None, **kwargs):
  """Initialises ``module``'s params on the host; returns ``{"params": numpy arrays}``.

  Args:
    module: a Flax module whose parameters are all declared by ``ParamModule`` subclasses.
    seed: int; each parameter draws from its own stream seeded by (seed, path).
    *args, method, **kwargs: as for ``module.init`` (only shapes of the inputs matter).
  """
  with _recording() as record:
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, method=method, **kwargs))
  flat = flax.traverse_util.flatten_dict(abstract.get("params", {}), sep="/")
  missing = sorted(set(flat) - set(record))
  if missing:
    raise TypeError(f"parameters not declared through ParamModule: {missing[:5]}")
  values = {path: _host_value(path, *record[path], seed, flat[path]) for path in flat}
  return {"params": flax.traverse_util.unflatten_dict(values, sep="/")}
