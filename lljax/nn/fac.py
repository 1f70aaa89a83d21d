"""Filter-adaptive convolution (FAC, Zhou et al. 2019; LEDNet's and SSFlow's ``KernelConv2D``).

Every pixel and channel of a feature map is filtered with its own k x k kernel predicted by
another branch of the network:

    out[b, i, j, c] = sum_{ky, kx} pad(x)[b, i + ky, j + kx, c] * K[b, i, j, c*k*k + ky*k + kx]

with ``pad`` replicating the border by (k - 1) / 2 pixels (torch ``mode="replicate"``). The
channel layout of K is torch's ``unfold`` order: channel-major, then kernel row, then column,
so a tap (ky, kx) reads the input at offset (ky - (k-1)/2, kx - (k-1)/2). The kernels are not
normalised and there is no bias; LEDNet/SSFlow apply LeakyReLU(0.2) afterwards.

The sum runs as k*k shifted multiply-adds, so no (B, H, W, C, k*k) patch tensor is ever
materialised (the kernel tensor itself is already that large: 3200 channels at 1/4 resolution
in SSFlow).
"""

from lljax.nn.padding import pad2d


def filter_adaptive_conv(x, kernels, kernel_size=5):
  """Per-pixel, per-channel dynamic filtering.

  Args:
    x: (B, H, W, C) features.
    kernels: (B, H, W, C * k * k) filters in torch's layout ``c*k*k + ky*k + kx``.
    kernel_size: k, odd.

  Returns:
    (B, H, W, C), in the dtype of ``x * kernels``.
  """
  k = kernel_size
  if k % 2 != 1:
    raise ValueError(f"filter_adaptive_conv needs an odd kernel size, got {k}")
  b, h, w, c = x.shape
  if kernels.shape != (b, h, w, c * k * k):
    raise ValueError(f"kernels must have shape {(b, h, w, c * k * k)} for x {x.shape} and k={k}, "
                     f"got {kernels.shape}")
  p = (k - 1) // 2
  padded = pad2d(x, p, "replicate")
  taps = kernels.reshape(b, h, w, c, k * k)
  out = None
  for ky in range(k):
    for kx in range(k):
      term = padded[:, ky : ky + h, kx : kx + w, :] * taps[..., ky * k + kx]
      out = term if out is None else out + term
  return out
