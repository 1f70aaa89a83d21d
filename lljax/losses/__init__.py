"""Losses: pure functions of arrays (no models, no data)."""

from lljax.losses.nll import dequantize, nll_bits_per_pixel
from lljax.losses.restoration import infwide_loss
from lljax.losses.self_supervised import exposure_normalised

__all__ = ["dequantize", "exposure_normalised", "infwide_loss", "nll_bits_per_pixel"]
