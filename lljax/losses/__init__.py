"""Losses: pure functions of arrays (no models, no data)."""

from lljax.losses.nll import dequantize, nll_bits_per_pixel

__all__ = ["dequantize", "nll_bits_per_pixel"]
