"""FFT-based deconvolution helpers: psf2otf, circular convolution, classical Wiener filtering.

Conventions: images are NHWC float, kernels (point-spread functions, PSFs) are (B, kh, kw), one
per image, shared by all channels. "Convolution" is a true convolution (the PSF is not flipped
in its OTF) whose centre is the PSF pixel ``(kh // 2, kw // 2)`` — ``scipy.ndimage.convolve``'s
centre for odd and even sizes alike.

The Wiener filter reproduces the DWDN/INFWIDE recipe (``srcs/utils/utils_deblur_dwdn.py`` and
``wiener_deblur_mc`` of INFWIDE): replicate padding by the kernel height on every side, a
per-image, per-channel hand-estimated noise-to-signal ratio (NSR) from a 3x3 median filter,
``conj(K) / (|K|^2 + NSR)`` applied circularly, the real part kept, the padding cropped.
Because the padded image and the PSF are real, the real part of the full inverse FFT equals the
inverse real FFT of the half spectrum; we use ``rfft2``/``irfft2`` (half the memory).
"""

import jax
import jax.numpy as jnp

from lljax.nn.padding import pad2d

# Devillard's 19-exchange network: after it, element 4 of 9 is their median.
_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
            (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def psf2otf(psf, shape):
  """Optical transfer function of ``psf`` (B, kh, kw) on a ``shape`` = (H, W) grid -> (B, H, W) complex.

  The PSF is placed in the top-left corner of an H x W zero array and rolled by
  ``(-(kh // 2), -(kw // 2))`` so its centre pixel lands on (0, 0), then FFT'd: multiplying an
  image's spectrum by it is a circular convolution centred like ``scipy.ndimage.convolve``.
  """
  return jnp.fft.fft2(_centred_grid(psf, shape))


def _rotf(psf, shape):
  """Half-spectrum OTF (for rfft2 of real images): (B, H, W // 2 + 1) complex."""
  return jnp.fft.rfft2(_centred_grid(psf, shape))


def _centred_grid(psf, shape):
  """The PSF zero-padded to ``shape`` with its centre pixel rolled to (0, 0)."""
  h, w = shape
  kh, kw = psf.shape[-2:]
  if kh > h or kw > w:
    raise ValueError(f"PSF {kh}x{kw} is larger than the {h}x{w} grid")
  grid = jnp.zeros(psf.shape[:-2] + (h, w), psf.dtype).at[..., :kh, :kw].set(psf)
  return jnp.roll(grid, (-(kh // 2), -(kw // 2)), axis=(-2, -1))


def normalize_psf(psf):
  """(B, kh, kw) -> each PSF divided by its sum."""
  return psf / jnp.sum(psf, axis=(-2, -1), keepdims=True)


def circular_conv(x, psf):
  """Circular (periodic) convolution of every channel of x (B, H, W, C) with psf (B, kh, kw).

  Equals ``scipy.ndimage.convolve(x[b, ..., c], psf[b], mode='wrap')``; for odd kernels also
  INFWIDE's close-loop re-blur (circular padding by (k - 1) / 2, then correlation with the
  flipped PSF). Needs kh <= H and kw <= W. Returns float (B, H, W, C) of x's dtype.
  """
  h, w = x.shape[1:3]
  otf = _rotf(psf.astype(jnp.float32), (h, w))[..., None]
  spectrum = jnp.fft.rfft2(x.astype(jnp.float32), axes=(1, 2)) * otf
  return jnp.fft.irfft2(spectrum, s=(h, w), axes=(1, 2)).astype(x.dtype)


def _views3x3(x):
  """The 9 reflect-padded 3x3 neighbours of every pixel of x (..., H, W), as a list."""
  p = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="reflect")
  h, w = x.shape[-2:]
  return [p[..., i:i + h, j:j + w] for i in range(3) for j in range(3)]


def _median9(v):
  v = list(v)
  for a, b in _MEDIAN9:
    v[a], v[b] = jnp.minimum(v[a], v[b]), jnp.maximum(v[a], v[b])
  return v[4]


@jax.custom_jvp
def median3x3(x):
  """3x3 median filter of x (..., H, W) with reflect padding (KAIR/DWDN ``MedianPool2d``).

  A min/max selection network (fused, no 9x stack in memory). Its derivative, like torch's
  median, is the derivative of the selected neighbour (the first one in raster order on ties);
  the custom rule keeps XLA from differentiating the 19 compare-exchanges (seconds of compile).
  """
  return _median9(_views3x3(x))


@median3x3.defjvp
def _median3x3_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  views = _views3x3(x)
  med = _median9(views)
  out, taken = jnp.zeros_like(med), jnp.zeros(med.shape, bool)
  for v, tv in zip(views, _views3x3(t)):
    pick = (v == med) & ~taken
    out = out + jnp.where(pick, tv, 0)
    taken = taken | pick
  return med, out


def wiener_nsr(padded, count_quirk=True):
  """DWDN's noise-to-signal estimate of each plane of ``padded`` (..., H, W) -> (...).

  ``d = median3x3(p) - p``; ``NSR = var(d) / std(p) * 8 / 30`` with unbiased (n - 1)
  normalisations around the means. ``count_quirk=True`` takes n = H * H (the official
  ``wiener_filter_para`` squares the height), which the released INFWIDE weights were trained
  with; ``False`` uses the true pixel count H * W. The two agree on square planes.
  """
  h, w = padded.shape[-2:]
  n = h * h if count_quirk else h * w
  d = median3x3(padded) - padded
  mean_d = jnp.sum(d, axis=(-2, -1), keepdims=True) / n
  var_n = jnp.sum((d - mean_d) ** 2, axis=(-2, -1)) / (n - 1)
  mean_p = jnp.sum(padded, axis=(-2, -1), keepdims=True) / n
  std_s = jnp.sqrt(jnp.sum((padded - mean_p) ** 2, axis=(-2, -1)) / (n - 1))
  return var_n / std_s * 8.0 / 3.0 / 10.0


def image_nsr(x):
  """INFWIDE's ``image_nsr`` of NHWC x -> (B, C): std(median3x3(x) - x) / rms(median3x3(x)).

  Both with an (n - 1) denominator, n = H * W; the signal term is not mean-centred.
  """
  planes = jnp.moveaxis(x, -1, 1)  # (B, C, H, W)
  n = planes.shape[-2] * planes.shape[-1]
  m = median3x3(planes)
  d = m - planes
  mean_d = jnp.sum(d, axis=(-2, -1), keepdims=True) / n
  sigma_n = jnp.sqrt(jnp.sum((d - mean_d) ** 2, axis=(-2, -1)) / (n - 1))
  sigma_s = jnp.sqrt(jnp.sum(m * m, axis=(-2, -1)) / (n - 1))
  return sigma_n / sigma_s


def wiener_filter(padded, otf_half, nsr):
  """Applies conj(K) / (|K|^2 + nsr) to real planes ``padded`` (B, H, W); ``otf_half`` is the
  (B, H, W // 2 + 1) half-spectrum OTF, ``nsr`` (B,). Returns the real (B, H, W) result."""
  h, w = padded.shape[-2:]
  gain = jnp.conj(otf_half) / (jnp.real(otf_half * jnp.conj(otf_half)) + nsr[:, None, None])
  return jnp.fft.irfft2(jnp.fft.rfft2(padded) * gain, s=(h, w))


def _channel_planes(x, k, channels_at_once, fn):
  """``fn`` of each channel of NHWC ``x`` replicate-padded by ``k``, as (C, B, ...) stacked."""
  b, h, w, c = x.shape
  planes = jnp.moveaxis(x.astype(jnp.float32), -1, 0)  # (C, B, H, W)
  pad = lambda q: pad2d(q[..., None], k, "replicate")[..., 0]
  if channels_at_once is None or channels_at_once >= c:
    out = fn(pad(planes.reshape(c * b, h, w)), jnp.arange(c * b) // b)
    return out.reshape((c, b) + out.shape[1:])
  return jax.lax.map(lambda a: fn(pad(a[0]), a[1]), (planes, jnp.arange(c)), batch_size=int(channels_at_once))


def wiener_nsrs(x, k, count_quirk=True, channels_at_once=None):
  """The NSR ``wiener_deconv`` estimates for each channel of NHWC ``x`` padded by ``k`` -> (B, C)."""
  nsr = _channel_planes(x, k, channels_at_once, lambda p, _: wiener_nsr(p, count_quirk))
  return jnp.moveaxis(nsr, 0, -1)


def wiener_deconv(x, psf, count_quirk=True, channels_at_once=None, nsr=None):
  """INFWIDE's multi-channel Wiener deconvolution (``wiener_deblur_mc``).

  Args:
    x: (B, H, W, C) float, the blurred image or feature maps.
    psf: (B, kh, kw) PSFs (normalised here to unit sum).
    count_quirk: the NSR pixel-count quirk (see ``wiener_nsr``).
    channels_at_once: None deconvolves every channel in one batched op; an int k processes k
      channels at a time in a sequential loop (same values, lower peak memory on large images).
    nsr: None estimates each channel's NSR from ``x`` (``wiener_nsrs``); or given (B, C), e.g.
      the whole image's for a tile.

  Returns:
    (B, H, W, C) float32: each channel replicate-padded by kh on every side, Wiener-filtered
    with its NSR, cropped back.
  """
  b, h, w, c = x.shape
  k = psf.shape[-2]
  psf = normalize_psf(psf.astype(jnp.float32))
  otf = _rotf(psf, (h + 2 * k, w + 2 * k))  # (B, Hp, Wp//2+1)
  given = None if nsr is None else jnp.moveaxis(nsr, -1, 0).astype(jnp.float32)  # (C, B)

  def one(p, channel):  # (n, Hp, Wp) padded planes of channel index (n,) -> (n, H, W)
    n = p.shape[0]
    otf_n = jnp.broadcast_to(otf[None], (n // b, *otf.shape)).reshape((n,) + otf.shape[1:])
    plane_nsr = wiener_nsr(p, count_quirk) if given is None else given[channel, jnp.arange(n) % b]
    return wiener_filter(p, otf_n, plane_nsr)[:, k:k + h, k:k + w]

  return jnp.moveaxis(_channel_planes(x, k, channels_at_once, one), 0, -1)

