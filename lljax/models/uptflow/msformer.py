"""UPT-Flow's conditional encoder MSFormer (official ``Lowlight_Encoder.MSFormer``).

A 4-level Restormer U-Net (channel-attention "MDTA" + gated-dconv FFN "GDFN" blocks) whose
every level also runs a Uformer-style windowed-attention layer in parallel and adds it to the
Restormer output. In that window branch the queries and keys come from the **unbalanced point
map** (a binary mask, repeated to the feature width and moved through the same
down/upsampling convs as the features) and only the values from the features.

All arrays are NHWC. Input: the RGB low image (B, H, W, 3) in [0, 1] and the map (B, H, W, 1);
H and W must be multiples of 8. Output dict (``dim`` = 48 released):

* ``fea_up0`` (H/8, 4 dim): ``reduce_chan_level0`` of the bottleneck,
* ``fea_up1`` (H/4, 4 dim) and ``fea_up2`` (H/2, 4 dim): decoder levels 3 and 2,
* ``cat_f`` (H, 2 dim): the refinement output.

Port notes (all as in the official code): exact GELU; LayerNorm eps 1e-5 (Restormer's
"WithBias" LayerNorm and torch's LayerNorm compute the same thing); q/k of MDTA normalised by
max(||.||, 1e-12) over space; windows zero-pad the bottom/right to a multiple of the window
size *before* ``norm1`` and padded tokens are attended to (not masked); shifted windows use
Swin's region mask with -100; the depthwise q/k/v convs run on each window separately (zero
padding at the window border). Stochastic depth (timm's ``DropPath``) on both residual branches of
every window block, at the official rates (``drop_path_rates``: a float32 linspace from 0 to
``drop_path_rate`` over the encoder blocks, the full rate in the bottleneck, the encoder's
reversed in the decoder); it is active only when the module is applied with a ``"droppath"`` RNG
(the flow trainer does; inference never), or with the keep masks given in a ``"droppath"``
variable collection (tests replaying the official draws).
"""

import numpy as np

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import (ECA, Conv2d, Dense, LayerNorm, ParamModule, gelu, pixel_shuffle, pixel_unshuffle,
                      relative_position_index, shift_attention_mask, window_merge, window_partition)
from lljax.nn import init as inits
from lljax.nn import precision
from lljax.nn.image_stats import shared_statistic
from lljax.nn.remat import remat_block

DROPPATH = "droppath"


def drop_path(module, y, rate, branch):
  """timm's ``drop_path`` of ``module``'s branch output ``y`` (B, ...) in training: each sample's
  branch is kept with probability 1 - rate (then scaled by 1 / (1 - rate)) or dropped. Keep
  masks (B,) come from the ``"droppath"`` collection when given, else from the ``"droppath"``
  RNG; without either (inference) ``y`` is returned as is."""
  if rate <= 0:
    return y
  keep = 1.0 - rate
  if module.has_variable(DROPPATH, branch):
    mask = module.get_variable(DROPPATH, branch)
  elif module.has_rng(DROPPATH):
    mask = jnp.floor(keep + jax.random.uniform(module.make_rng(DROPPATH), (y.shape[0],), jnp.float32))
  else:
    return y
  return y / np.float32(keep) * mask.astype(y.dtype).reshape((-1,) + (1,) * (y.ndim - 1))

# ------------------------------------------------------------------------------------------
# Restormer branch.
# ------------------------------------------------------------------------------------------


def _l2_normalize(x, axis=-1):
  """torch ``F.normalize``: x / max(||x||, 1e-12), written so that its gradient is finite at 0."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), 1e-24))


class MDTA(ParamModule):
  """Multi-Dconv head transposed attention (official ``Attention``): a (C/h x C/h) attention
  across channels per head. Params ``temperature`` (heads,), convs ``qkv``, ``qkv_dwconv``,
  ``project_out`` (bias-free)."""

  num_heads: int

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    temperature = self.param("temperature", inits.ones, (self.num_heads,))
    qkv = Conv2d(3 * c, 1, use_bias=False, name="qkv")(x)
    qkv = Conv2d(3 * c, 3, groups=3 * c, use_bias=False, name="qkv_dwconv")(qkv)
    # channels split as (head, d), tokens last: (B, heads, d, HW)
    heads = lambda t: t.reshape(b, h * w, self.num_heads, c // self.num_heads).transpose(0, 2, 3, 1)
    q, k, v = (heads(t) for t in jnp.split(qkv, 3, axis=-1))

    def attention(q, k):  # (B, heads, d, d): a whole-image statistic the tiles of a photo can share
      q, k = _l2_normalize(q), _l2_normalize(k)
      attn = jnp.einsum("bnds,bnes->bnde", q, k, precision=precision.dot_precision()) * temperature[:, None, None]
      return jax.nn.softmax(attn, axis=-1)

    attn = shared_statistic(self, "attention", attention, q, k)
    out = jnp.einsum("bnde,bnes->bnds", attn, v, precision=precision.dot_precision())
    out = out.transpose(0, 3, 1, 2).reshape(b, h, w, c)
    return Conv2d(c, 1, use_bias=False, name="project_out")(out)


class GDFN(nn.Module):
  """Gated-Dconv feed-forward (official ``FeedForward``): 1x1 -> depthwise 3x3 -> split ->
  GELU(x1) * x2 -> 1x1, hidden width ``int(C * expansion)``, no biases."""

  expansion: float = 2.66

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    hidden = int(c * self.expansion)
    x = Conv2d(2 * hidden, 1, use_bias=False, name="project_in")(x)
    x1, x2 = jnp.split(Conv2d(2 * hidden, 3, groups=2 * hidden, use_bias=False, name="dwconv")(x), 2, axis=-1)
    return Conv2d(c, 1, use_bias=False, name="project_out")(gelu(x1) * x2)


class TransformerBlock(nn.Module):
  """Restormer block: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

  num_heads: int
  expansion: float = 2.66

  @nn.compact
  def __call__(self, x):
    x = x + MDTA(self.num_heads, name="attn")(LayerNorm(name="norm1")(x))
    return x + GDFN(self.expansion, name="ffn")(LayerNorm(name="norm2")(x))


# ------------------------------------------------------------------------------------------
# Uformer window branch.
# ------------------------------------------------------------------------------------------


class WindowAttention(ParamModule):
  """Window attention with depthwise-conv token projections (official ``WindowAttention``
  with ``ConvProjection``); q and k are projected from the unbalanced-point-map windows.

  softmax(q k^T * head_dim^-1/2 * temperature + relative position bias + mask) v, then
  ``proj``. Params ``relative_position_bias_table`` ((2 ws - 1)^2, heads), ``temperature``
  (heads,), depthwise convs ``to_q``/``to_k``/``to_v`` (with bias), Linear ``proj``.
  """

  num_heads: int
  win_size: int

  @nn.compact
  def __call__(self, x_windows, map_windows, mask=None):
    """x_windows, map_windows: (B, nW, ws, ws, C); mask: (nW, ws^2, ws^2) or None."""
    b, n_win, ws, _, c = x_windows.shape
    heads, n = self.num_heads, ws * ws
    table = self.param("relative_position_bias_table", inits.normal(0.02), ((2 * ws - 1) ** 2, heads))
    temperature = self.param("temperature", inits.ones, (heads,))

    def project(name, windows):
      y = Conv2d(c, 3, groups=c, name=name)(windows.reshape(b * n_win, ws, ws, c))
      return y.reshape(b, n_win, n, heads, c // heads).transpose(0, 1, 3, 2, 4)  # (B, nW, h, N, d)

    q = project("to_q", map_windows) * (c // heads) ** -0.5
    k = project("to_k", map_windows)
    v = project("to_v", x_windows)
    attn = jnp.einsum("bwhnd,bwhmd->bwhnm", q, k, precision=precision.dot_precision()) * temperature[:, None, None]
    bias = table[relative_position_index(ws).reshape(-1)].reshape(n, n, heads).transpose(2, 0, 1)
    attn = attn + bias
    if mask is not None:
      attn = attn + mask[:, None]
    out = jnp.einsum("bwhnm,bwhmd->bwhnd", jax.nn.softmax(attn, axis=-1), v, precision=precision.dot_precision())
    out = out.transpose(0, 1, 3, 2, 4).reshape(b, n_win, ws, ws, c)
    return Dense(c, kernel_init=inits.normal(0.02), bias_init=inits.zeros, name="proj")(out)


class LeFF(nn.Module):
  """Locally-enhanced feed-forward: 1x1 (no activation) -> depthwise 3x3 + GELU -> 1x1 -> ECA."""

  mlp_ratio: float = 4.0

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    hidden = int(c * self.mlp_ratio)
    x = Conv2d(hidden, 1, name="conv1")(x)
    x = gelu(Conv2d(hidden, 3, groups=hidden, name="dwconv")(x))
    return ECA(name="eca")(Conv2d(c, 1, name="conv2")(x))


class LeWinBlock(nn.Module):
  """Uformer LeWin block (official ``LeWinTransformerBlock``, conv projection, LeFF).

  x + crop(W-MSA(LN(pad(x)))), then x + LeFF(LN(x)). The window grid is padded with zeros at
  the bottom/right to a multiple of ``win_size`` before ``norm1``; ``shift`` > 0 rolls both
  the features and the map by -shift and masks across the rolled-together regions.
  """

  num_heads: int
  win_size: int
  shift: int = 0
  mlp_ratio: float = 4.0
  drop_path: float = 0.0

  @nn.compact
  def __call__(self, x, point_map):
    """x, point_map: (B, H, W, C) -> (B, H, W, C)."""
    _, h, w, _ = x.shape
    ws, shift = self.win_size, self.shift
    pad = ((0, 0), (0, -h % ws), (0, -w % ws), (0, 0))
    shortcut = x
    x, point_map = jnp.pad(x, pad), jnp.pad(point_map, pad)
    hp, wp = x.shape[1:3]
    x = LayerNorm(name="norm1")(x)
    mask = None
    if shift:
      mask = jnp.asarray(shift_attention_mask(hp, wp, ws, shift))
      x, point_map = (jnp.roll(t, (-shift, -shift), axis=(1, 2)) for t in (x, point_map))
    out = WindowAttention(self.num_heads, ws, name="attn")(
        window_partition(x, ws), window_partition(point_map, ws), mask)
    out = window_merge(out, hp, wp)
    if shift:
      out = jnp.roll(out, (shift, shift), axis=(1, 2))
    x = shortcut + drop_path(self, out[:, :h, :w], self.drop_path, "attn")
    return x + drop_path(self, LeFF(self.mlp_ratio, name="mlp")(LayerNorm(name="norm2")(x)), self.drop_path, "mlp")


class UformerLayer(nn.Module):
  """``depth`` LeWin blocks (official ``BasicUformerLayer``); odd blocks shift by ws // 2;
  ``drop_paths``: each block's stochastic-depth rate."""

  depth: int
  num_heads: int
  win_size: int
  mlp_ratio: float = 4.0
  drop_paths: Sequence[float] = ()

  @nn.compact
  def __call__(self, x, point_map):
    rates = tuple(self.drop_paths) or (0.0,) * self.depth
    for i in range(self.depth):
      shift = 0 if i % 2 == 0 else self.win_size // 2
      block = remat_block(LeWinBlock)(self.num_heads, self.win_size, shift, self.mlp_ratio, rates[i],
                                      name=f"blocks_{i}")
      x = block(x, point_map)
    return x


# ------------------------------------------------------------------------------------------
# The U-Net.
# ------------------------------------------------------------------------------------------


def _restormer(name, n, num_heads, expansion):
  """n Restormer blocks named ``{name}_{i}``, applied in sequence (the official nn.Sequential)."""
  blocks = [remat_block(TransformerBlock)(num_heads, expansion, name=f"{name}_{i}") for i in range(n)]

  def run(x):
    for block in blocks:
      x = block(x)
    return x

  return run


def _resample(name, features, shuffle):
  """Official Down/Upsample: bias-free 3x3 conv, then pixel (un)shuffle by 2."""
  conv = Conv2d(features, 3, use_bias=False, name=name)
  return lambda t: (pixel_shuffle if shuffle else pixel_unshuffle)(conv(t), 2)


class MSFormer(nn.Module):
  """Attributes (official names; the released model uses the defaults with ``win_size`` 5
  for the LOL checkpoints and 8 for the others):
    dim: width of level 1 (levels 2..4: 2, 4, 8 times).
    heads: Restormer heads of levels 1..4 (decoder levels reuse them).
    depths: blocks of the 7 stages (enc 1-3, bottleneck, dec 3-1), for both branches.
    num_heads: Uformer heads of the 7 stages.
    num_refinement: Restormer refinement blocks at full resolution.
    ffn_expansion_factor: GDFN width factor.
    win_size: attention window size.
    mlp_ratio: LeFF width factor.
    drop_path_rate: stochastic depth of the window blocks in training (``drop_path_rates``).
  """

  dim: int = 48
  heads: Sequence[int] = (2, 2, 4, 8)
  depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2)
  num_heads: Sequence[int] = (1, 2, 4, 8, 8, 4, 2)
  num_refinement: int = 2
  ffn_expansion_factor: float = 2.66
  win_size: int = 5
  mlp_ratio: float = 4.0
  drop_path_rate: float = 0.1

  def drop_path_rates(self):
    """Each of the 7 stages' block rates, as the official ``MSFormer.__init__`` computes them."""
    dep = self.depths
    enc = [float(r) for r in np.linspace(0.0, self.drop_path_rate, sum(dep[:3]), dtype=np.float32)]
    dec = enc[::-1]
    starts = np.cumsum([0, *dep[:3]])
    dec_starts = np.cumsum([0, *dep[4:7]])
    return ([enc[starts[i]:starts[i + 1]] for i in range(3)] + [[self.drop_path_rate] * dep[3]]
            + [dec[dec_starts[i]:dec_starts[i + 1]] for i in range(3)])

  @nn.compact
  def __call__(self, img, point_map):
    """img: (B, H, W, 3) in [0, 1]; point_map: (B, H, W, 1) in {0, 1} -> dict (module doc)."""
    d, hs, dep, uh, ef = self.dim, self.heads, self.depths, self.num_heads, self.ffn_expansion_factor
    restormer = lambda name, i, c_heads: _restormer(name, dep[i], c_heads, ef)
    rates = self.drop_path_rates()
    uformer = lambda name, i: UformerLayer(dep[i], uh[i], self.win_size, self.mlp_ratio, tuple(rates[i]),
                                           name=name)
    conv1x1 = lambda name, f: Conv2d(f, 1, use_bias=False, name=name)

    inp1 = Conv2d(d, 3, use_bias=False, name="patch_embed")(img)
    map1 = jnp.repeat(point_map, d, axis=-1)
    enc1 = restormer("encoder_level1", 0, hs[0])(inp1)
    x1 = enc1 + uformer("encoderlayer_1", 0)(inp1, map1)

    down = _resample("down1_2", d // 2, shuffle=False)
    inp2, map2 = down(x1), down(map1)
    enc2 = restormer("encoder_level2", 1, hs[1])(inp2)
    x2 = enc2 + uformer("encoderlayer_2", 1)(enc2, map2)  # sic: the window branch sees enc2

    down = _resample("down2_3", d, shuffle=False)
    inp3, map3 = down(x2), down(map2)
    enc3 = restormer("encoder_level3", 2, hs[2])(inp3)
    x3 = enc3 + uformer("encoderlayer_3", 2)(inp3, map3)

    down = _resample("down3_4", 2 * d, shuffle=False)
    inp4, map4 = down(x3), down(map3)
    latent = restormer("latent", 3, hs[3])(inp4) + uformer("bottlen", 3)(inp4, map4)
    fea_up0 = conv1x1("reduce_chan_level0", 4 * d)(latent)

    up = _resample("up4_3", 16 * d, shuffle=True)
    dec3_in, map_d3 = up(latent), up(map4)
    dec3_in = conv1x1("reduce_chan_level3", 4 * d)(jnp.concatenate([dec3_in, enc3], axis=-1))
    dec3 = restormer("decoder_level3", 4, hs[2])(dec3_in) + uformer("decoderlayer_1", 4)(dec3_in, map_d3)

    up = _resample("up3_2", 8 * d, shuffle=True)
    dec2_in, map_d2 = up(dec3), up(map_d3)
    dec2_in = conv1x1("reduce_chan_level2", 4 * d)(jnp.concatenate([dec2_in, enc2], axis=-1))
    map_d2 = jnp.tile(map_d2, (1, 1, 1, 2))  # official .repeat(1, 2, 1, 1): 2 d -> 4 d channels
    dec2 = restormer("decoder_level2", 5, hs[1])(dec2_in) + uformer("decoderlayer_2", 5)(dec2_in, map_d2)

    up = _resample("up2_1", 8 * d, shuffle=True)
    dec1_in, map_d1 = up(dec2), up(map_d2)
    dec1_in = conv1x1("reduce_chan_level1", 2 * d)(jnp.concatenate([dec1_in, enc1], axis=-1))
    dec1 = restormer("decoder_level1", 6, hs[0])(dec1_in) + uformer("decoderlayer_3", 6)(dec1_in, map_d1)
    cat_f = _restormer("refinement", self.num_refinement, hs[0], ef)(dec1)
    return {"fea_up0": fea_up0, "fea_up1": dec3, "fea_up2": dec2, "cat_f": cat_f}
