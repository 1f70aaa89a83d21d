"""Orthogonal channel attention (OrthoNets, Salman et al. 2023), SSFlow's single ``BasicBlock``.

An SE block whose squeeze is not a global average but a projection of each channel onto its
own fixed spatial filter: the feature map is adaptive-average-pooled to the filter size
s x s (torch windows; a no-op when it already is s x s), multiplied by the filter bank
F (C, s, s) and summed over space, giving (B, C). F holds C mutually orthonormal s*s-vectors
(Gram-Schmidt of uniform random maps) drawn at construction and never trained; the official
code draws it unseeded, so a converted model must take it from the checkpoint
(``F_C_A.constant_filter``), where every block has its own.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import BatchNorm2d, Conv2d, Dense, adaptive_avg_pool2d
from lljax.nn import init as inits
from lljax.nn.buffers import buffer

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class GramSchmidtFilters(inits.Initializer):
  """(C, s, s) filters: Gram-Schmidt orthonormalisation of C uniform [0, 1) maps, as flattened
  s*s-vectors (official ``initialize_orthogonal_filters``). When s*s < C the C filters are
  C / (s*s) independent orthonormal bases of s*s vectors each."""

  def sample(self, draw, shape):
    c, h, w = shape
    n = h * w
    if c <= n:
      return _gram_schmidt(draw, draw.uniform(0.0, 1.0, (c, n))).reshape(shape)
    if c % n:
      raise ValueError(f"{c} Gram-Schmidt filters of {h}x{w} need C divisible by {n}")
    blocks = [_gram_schmidt(draw, draw.uniform(0.0, 1.0, (n, n))) for _ in range(c // n)]
    return draw.xp.concatenate(blocks, axis=0).reshape(shape)


def _gram_schmidt(draw, rows):
  """Rows orthonormalised in order: Q^T of the QR of rows^T with a positive diagonal of R."""
  q, r = draw.xp.linalg.qr(rows.T)
  return (q * draw.xp.sign(draw.xp.diagonal(r))).T


def orthogonal_squeeze(x, filters):
  """x: (B, H, W, C), filters: (C, s, s) -> (B, C) = sum_ij F[c, i, j] * pool_s(x)[b, i, j, c]."""
  pooled = adaptive_avg_pool2d(x, filters.shape[1:])
  return jnp.einsum("cij,bijc->bc", filters.astype(x.dtype), pooled, precision=_HIGHEST)


class OrthoAttentionBlock(inits.ParamModule):
  """Official ``BasicBlock(inplanes=C, planes=C, height=s)`` (stride 1, no downsample).

  out = BN(conv3x3(ReLU(BN(conv3x3(x))))) (bias-free convs, BN eps 1e-5, momentum 0.1);
  a = sigmoid(W2 ReLU(W1 squeeze(out))) with bias-free W1: C -> round(C/16), W2 back;
  y = ReLU(a * out + x). x: (B, H, W, C) -> same shape.

  Attributes:
    filter_size: s, the side of the Gram-Schmidt filters (64 released).
    reduction: squeeze ratio (16).
  """

  filter_size: int = 64
  reduction: int = 16

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    hidden = round(c / self.reduction)  # Python's round, as the official code (half to even)
    if hidden < 1:
      raise ValueError(f"orthogonal attention on {c} channels has round({c}/{self.reduction}) = 0 hidden units")
    out = Conv2d(c, 3, use_bias=False, name="_process_0")(x)
    out = nn.relu(BatchNorm2d(c, name="_process_1")(out))
    out = Conv2d(c, 3, use_bias=False, name="_process_3")(out)
    out = BatchNorm2d(c, name="_process_4")(out)
    filters = buffer(self, "constant_filter", GramSchmidtFilters(), (c, self.filter_size, self.filter_size))
    squeezed = orthogonal_squeeze(out, filters)
    a = nn.relu(Dense(hidden, use_bias=False, name="_excitation_0")(squeezed))
    a = jax.nn.sigmoid(Dense(c, use_bias=False, name="_excitation_2")(a))
    return nn.relu(a[:, None, None, :] * out + x)
