"""2-D convolution with PyTorch's padding semantics on NHWC arrays."""

import contextlib
import contextvars
from typing import Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import init as inits
from lljax.nn import precision

IntPair = Union[int, Sequence[int]]

_PAD_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_DEPTHWISE = contextvars.ContextVar("lljax_depthwise", default="platform")
DEPTHWISE_MODES = ("platform", "taps", "generic")


@contextlib.contextmanager
def depthwise_lowering(mode):
  """How depthwise convolutions are traced inside the block (read while tracing, like ``autocast``).

  ``"platform"`` (default): shifted taps (``depthwise_taps``) on the CPU, a grouped convolution on
  GPU and TPU, chosen by ``jax.lax.platform_dependent`` when the program is lowered, i.e. by where
  it will run, not by the process's default backend (a program lowered for several platforms, as
  ``jax.export`` does, keeps both). ``"taps"``: always the taps; ``"generic"``: always the grouped
  convolution, for converters that translate the traced program op by op (ONNX, TF graphs) and for
  tests that run every branch on one machine.
  """
  if mode not in DEPTHWISE_MODES:
    raise ValueError(f"depthwise lowering {mode!r}: use one of {', '.join(DEPTHWISE_MODES)}")
  token = _DEPTHWISE.set(mode)
  try:
    yield
  finally:
    _DEPTHWISE.reset(token)


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


class Conv2d(inits.ParamModule):
  """``torch.nn.Conv2d`` on NHWC input.

  Parameters are ``kernel`` (kh, kw, in/groups, out) — the torch OIHW weight transposed by
  (2, 3, 1, 0) — and ``bias`` (out,). Padding is explicit and symmetric as in torch
  (default ``kernel_size // 2``), never XLA's 'SAME', which differs for strided convs.

  Attributes:
    features: output channels.
    kernel_size: int or (kh, kw).
    stride: int or (sh, sw).
    padding: int or (ph, pw) applied on both sides; None means kernel_size // 2.
    padding_mode: 'zeros', 'reflect', 'replicate' or 'circular' (torch names).
    use_bias: whether to add a bias.
    groups: feature groups (``groups == in_channels`` is a depthwise conv).
    dilation: int or (dh, dw).
    kernel_init / bias_init: default to torch's own initialisation.
  """

  features: int
  kernel_size: IntPair = 3
  stride: IntPair = 1
  padding: Optional[IntPair] = None
  padding_mode: str = "zeros"
  use_bias: bool = True
  groups: int = 1
  dilation: IntPair = 1
  kernel_init: Optional[Callable] = None
  bias_init: Optional[Callable] = None
  dtype: Optional[jnp.dtype] = None

  @nn.compact
  def __call__(self, x):
    """x: (B, H, W, C_in) -> (B, H', W', features)."""
    kh, kw = _pair(self.kernel_size)
    in_ch = x.shape[-1]
    if in_ch % self.groups:
      raise ValueError(f"{in_ch} input channels are not divisible by groups={self.groups}")
    kshape = (kh, kw, in_ch // self.groups, self.features)
    kernel = self.param("kernel", self.kernel_init or inits.torch_default_kernel, kshape)
    pad = _pair(self.padding) if self.padding is not None else (kh // 2, kw // 2)
    x, pads = _pad(x, pad, self.padding_mode)
    dtype = self.dtype or precision.compute_dtype(x)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    grouped = lambda x, kernel: jax.lax.conv_general_dilated(
        x, kernel, window_strides=_pair(self.stride), padding=pads, rhs_dilation=_pair(self.dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups,
        precision=precision.dot_precision())
    taps = lambda x, kernel: depthwise_taps(x, kernel, pads, _pair(self.stride), _pair(self.dilation))
    mode = _DEPTHWISE.get()
    if not self.groups == in_ch == self.features > 1 or mode == "generic":
      y = grouped(x, kernel)
    elif mode == "taps":
      y = taps(x, kernel)
    else:
      y = jax.lax.platform_dependent(x, kernel, cpu=taps, default=grouped)
    if self.use_bias:
      bias_init = self.bias_init or inits.torch_default_bias(inits.fan_in(kshape))
      y = y + self.param("bias", bias_init, (self.features,)).astype(dtype)
    return y


def depthwise_taps(x, kernel, pads, stride=(1, 1), dilation=(1, 1)):
  """A depthwise convolution (one filter per channel) as kh*kw shifted multiply-adds.

  x: (B, H, W, C); kernel: (kh, kw, 1, C); pads: ((top, bottom), (left, right)) zero padding.
  The same result as ``conv_general_dilated(..., feature_group_count=C)``, accumulated in at
  least float32. XLA's CPU backend runs grouped convolutions on its naive emitter, far slower
  than these shifted multiply-adds, which made UPT-Flow's Restormer encoder (depthwise convs in
  every block) slower than the official PyTorch code (``benchmarks/README.md``, "Enhance per
  model").
  """
  kh, kw = kernel.shape[:2]
  (sh, sw), (dh, dw) = stride, dilation
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  out_h = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
  out_w = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
  acc = jnp.promote_types(x.dtype, jnp.float32)
  out = None
  for i in range(kh):
    for j in range(kw):
      window = xp[:, i * dh : i * dh + (out_h - 1) * sh + 1 : sh, j * dw : j * dw + (out_w - 1) * sw + 1 : sw]
      term = window.astype(acc) * kernel[i, j, 0].astype(acc)
      out = term if out is None else out + term
  return out.astype(jnp.result_type(x, kernel))


def _pad(x, pad, mode):
  """Returns (x, lax padding): zero padding is left to the conv, other modes use jnp.pad."""
  ph, pw = pad
  if mode not in _PAD_MODES:
    raise ValueError(f"unknown padding_mode {mode!r}; expected one of {sorted(_PAD_MODES)}")
  if _PAD_MODES[mode] is None:
    return x, ((ph, ph), (pw, pw))
  x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode=_PAD_MODES[mode])
  return x, ((0, 0), (0, 0))


class ConvTranspose2d(inits.ParamModule):
  """``torch.nn.ConvTranspose2d`` on NHWC input (groups 1, dilation 1).

  Output size ``(H - 1) * stride - 2 * padding + kernel_size + output_padding``. Parameter
  ``kernel`` is (kh, kw, in, out): the torch weight (in, out, kh, kw) transposed by (2, 3, 0, 1),
  unflipped. It runs as the equivalent direct convolution: the input dilated by the stride,
  padded by ``k - 1 - padding`` (plus ``output_padding`` at the bottom/right), convolved with
  the spatially flipped kernel. Default initialisation is torch's, whose fan-in for a
  transposed conv is ``out * kh * kw`` (the weight's second dimension).
  """

  features: int
  kernel_size: IntPair = 3
  stride: IntPair = 1
  padding: IntPair = 0
  output_padding: IntPair = 0
  use_bias: bool = True
  kernel_init: Optional[Callable] = None
  bias_init: Optional[Callable] = None

  @nn.compact
  def __call__(self, x):
    """x: (B, H, W, C_in) -> (B, H', W', features)."""
    kh, kw = _pair(self.kernel_size)
    kshape = (kh, kw, x.shape[-1], self.features)
    torch_fan_in = kh * kw * self.features
    default = inits.Uniform(1.0 / torch_fan_in**0.5)
    kernel = self.param("kernel", self.kernel_init or default, kshape)
    pads = [(k - 1 - p, k - 1 - p + op)
            for k, p, op in zip((kh, kw), _pair(self.padding), _pair(self.output_padding))]
    dtype = precision.compute_dtype(x)
    y = jax.lax.conv_general_dilated(
        x.astype(dtype), jnp.flip(kernel, (0, 1)).astype(dtype), window_strides=(1, 1), padding=pads,
        lhs_dilation=_pair(self.stride), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision.dot_precision())
    if self.use_bias:
      y = y + self.param("bias", self.bias_init or default, (self.features,)).astype(dtype)
    return y
