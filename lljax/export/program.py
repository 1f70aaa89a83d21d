"""The deployable program of a model: its official enhance path on model-ready inputs.

``Program.apply(*arrays)`` is what every export format contains: the family's ``enhance``
(temperature 0, the official test path) on NHWC float32 inputs that the host has already
prepared (``lljax.export.host``): ``low`` in [0, 1] padded to the program's size, then LLFlow's
``histeq`` (OpenCV ``equalizeHist`` per channel of the uint8 image, / 255), or INFWIDE's
``kernel`` (B, k, k). It returns the raw, unclipped (B, H, W, 3) output.

Sizes: the batch is symbolic unless fixed; height and width are symbolic multiples of the
family's ``PAD_MULTIPLE`` where the model traces with symbolic sizes, else fixed (``size``).
"""

import contextlib
import dataclasses
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lljax import checkpoint, models
from lljax.nn import precision
from lljax.nn.conv import depthwise_lowering

OUTPUT_NAME = "enhanced"
# jax.export's names for the symbolic sizes: batch, and height/width in units of PAD_MULTIPLE.
BATCH, HEIGHT, WIDTH = "b", "h", "w"


class SymbolicSizeError(ValueError):
  """The model does not trace with symbolic height/width (it needs fixed sizes)."""


def input_names(family):
  """The program's input names in order: "low", host features (LLFlow: "histeq"), "kernel"."""
  probe = np.zeros((2, 2, 3), np.uint8)
  names = ["low", *sorted(family.host_features(probe))]
  return tuple(names + (["kernel"] if getattr(family, "NEEDS_KERNEL", False) else []))


@dataclasses.dataclass(frozen=True)
class Program:
  """A model, its params, and the signature it is exported with.

  Attributes:
    model: the family name (``lljax.models``); config: the ``Model`` kwargs; params: the tree.
    batch: the fixed batch size, or None for a symbolic batch.
    size: the fixed (H, W), or None for symbolic multiples of the family's ``PAD_MULTIPLE``.
    kernel_size: INFWIDE's fixed PSF side (its Wiener stage pads by it), else None.
  """

  model: str
  config: dict
  params: Any
  batch: Optional[int] = None
  size: Optional[tuple] = None
  kernel_size: Optional[int] = None

  @functools.cached_property
  def family(self):
    return models.get(self.model)

  @functools.cached_property
  def module(self):
    return self.family.Model(**self.config)

  @property
  def names(self):
    return input_names(self.family)

  @property
  def multiple(self):
    return self.family.PAD_MULTIPLE

  def apply(self, params, *arrays):
    """The enhance output (B, H, W, 3) of the inputs named by ``names``, in that order."""
    inputs = dict(zip(self.names, arrays))
    with precision.autocast(None):
      return self.module.apply({"params": params}, inputs, method=self.module.enhance)

  def specs(self):
    """ShapeDtypeStructs of the inputs (symbolic dimensions share one scope, made once)."""
    return list(self._specs)

  @functools.cached_property
  def _specs(self):
    names = ([BATCH] if self.batch is None else []) + ([HEIGHT, WIDTH] if self.size is None else [])
    sym = dict(zip(names, jax.export.symbolic_shape(", ".join(names)))) if names else {}
    b = sym.get(BATCH, self.batch)
    hw = tuple(self.size) if self.size is not None else (sym[HEIGHT] * self.multiple, sym[WIDTH] * self.multiple)
    specs = []
    for name in self.names:
      shape = (b, self.kernel_size, self.kernel_size) if name == "kernel" else (b, *hw, 3)
      specs.append(jax.ShapeDtypeStruct(shape, jnp.float32))
    return tuple(specs)

  def function(self, depthwise):
    """The program as a function of its inputs alone, the params' own work folded to constants
    (``fold_constants``), traced with ``depthwise`` convolutions (``lljax.nn.conv``) and full
    float32 convolutions and matrix products (no TF32 or bfloat16 passes on GPU/TPU).

    Raises SymbolicSizeError when height/width are symbolic and the model does not trace so.
    """
    try:
      with depthwise_lowering(depthwise), precision.policy("highest"):
        closed = jax.make_jaxpr(self.apply)(self.params, *self.specs())
    except Exception as e:  # pylint: disable=broad-except  (shape polymorphism fails in many ways)
      if self.size is None:
        first = (str(e).strip().splitlines() or [""])[0]
        raise SymbolicSizeError(f"{self.model} does not trace with symbolic height/width "
                                f"({type(e).__name__}: {first[:160]})") from e
      raise
    run = fold_constants(closed, jax.tree.leaves(self.params))
    return lambda *inputs: run(*inputs)[0]

  def exported(self, platforms, depthwise="platform"):
    """``jax.export`` of ``function(depthwise)`` lowered for ``platforms`` (no Shardy dialect,
    which TF's StableHLO reader does not know; nothing here is sharded)."""
    with _jax_config("jax_use_shardy_partitioner", False):
      return jax.export.export(jax.jit(self.function(depthwise)), platforms=platforms)(*self.specs())


@contextlib.contextmanager
def _jax_config(name, value):
  previous = jax.config.values[name]
  jax.config.update(name, value)
  try:
    yield
  finally:
    jax.config.update(name, previous)


def load(directory, step=None, batch=None, size=None, kernel_size=None):
  """The Program of a converted release or training workdir (latest or ``step``)."""
  from lljax import api  # pylint: disable=import-outside-toplevel

  spec = checkpoint.read_model_spec(directory)
  restorer = api.load(directory, step=step)
  family = models.get(spec["model"])
  if getattr(family, "NEEDS_KERNEL", False):
    kernel_size = kernel_size or family.KERNEL_SIZE
  elif kernel_size is not None:
    raise ValueError(f"{spec['model']} takes no blur kernel; --kernel_size is for deblurring models (INFWIDE)")
  return Program(spec["model"], restorer.config, restorer.params, batch,
                 None if size is None else tuple(int(s) for s in size), kernel_size)


def fold_constants(closed, known):
  """``closed``'s function of its remaining inputs, with the work on ``known`` done once.

  ``known`` are the values of the first inputs (the params). Equations that depend only on
  them, have static shapes and do not grow data (an inverted 1x1 flow weight, not a bias
  broadcast to the image) are evaluated here in one compiled program; the rest is re-bound, so
  a converter that translates equations one by one (ONNX) sees constants instead of, e.g., an
  LU decomposition unrolled element by element.
  """
  from jax.extend import core as jcore  # pylint: disable=import-outside-toplevel

  jaxpr = closed.jaxpr
  folded = set(jaxpr.invars[:len(known)]) | set(jaxpr.constvars)
  fold_eqns, rest_eqns = [], []
  for eqn in jaxpr.eqns:
    ins = [v for v in eqn.invars if not isinstance(v, jcore.Literal)]
    static = all(isinstance(d, (int, np.integer)) for v in eqn.outvars for d in v.aval.shape)
    grows = sum(_size(v) for v in eqn.outvars) > max([1] + [_size(v) for v in ins])
    if ins and all(v in folded for v in ins) and not eqn.effects and static and not grows:
      fold_eqns.append(eqn)
      folded.update(eqn.outvars)
    else:
      rest_eqns.append(eqn)
  used = [v for e in rest_eqns for v in e.invars if not isinstance(v, jcore.Literal)]
  used += [v for v in jaxpr.outvars if not isinstance(v, jcore.Literal)]
  residuals = list(dict.fromkeys(v for v in used if v in folded))
  known_jaxpr = jcore.Jaxpr(jaxpr.constvars, jaxpr.invars[:len(known)], residuals, fold_eqns)
  values = jax.jit(jcore.jaxpr_as_fun(jcore.ClosedJaxpr(known_jaxpr, closed.consts)))(*known)
  rest_jaxpr = jcore.Jaxpr(residuals, jaxpr.invars[len(known):], jaxpr.outvars, rest_eqns, jaxpr.effects)
  return jcore.jaxpr_as_fun(jcore.ClosedJaxpr(rest_jaxpr, [np.asarray(v) for v in values]))


def _size(v):
  return int(np.prod([d if isinstance(d, (int, np.integer)) else 1 << 30 for d in v.aval.shape], dtype=np.int64))
