"""Torch-compatible primitives shared by every lljax model.

Every op here reproduces the PyTorch semantics the official code relies on (explicit zero
padding, legacy ``nearest`` resizing, bilinear resizing without antialiasing, channel-major
pixel (un)shuffle), so that converted checkpoints give the same numbers. Arrays are NHWC.
"""

from lljax.nn.activation import PReLU, gelu
from lljax.nn.buffers import BUFFERS, assign_buffers
from lljax.nn.conv import Conv2d, ConvTranspose2d
from lljax.nn.fac import filter_adaptive_conv
from lljax.nn.fft import circular_conv, image_nsr, median3x3, psf2otf, wiener_deconv, wiener_nsr
from lljax.nn.gates import CBAM, ECA, ChannelGate, SpatialGate
from lljax.nn.init import ParamModule, init_variables, kaiming_normal, normal, torch_default_bias, torch_default_kernel, zeros
from lljax.nn.linear import Dense
from lljax.nn.norm import BatchNorm2d, LayerNorm, instance_norm
from lljax.nn.padding import pad2d
from lljax.nn.pool import adaptive_avg_pool2d, avg_pool2d
from lljax.nn.resample import (
    interpolation_matrix,
    max_pool2d,
    pixel_shuffle,
    pixel_unshuffle,
    resize_bilinear,
    resize_bilinear_dense,
    resize_nearest,
    scale_bilinear,
    squeeze2d,
    unsqueeze2d,
    upsample_nearest,
)
from lljax.nn.window import relative_position_index, shift_attention_mask, window_merge, window_partition

__all__ = [
    "BUFFERS",
    "BatchNorm2d",
    "CBAM",
    "ChannelGate",
    "Conv2d",
    "ConvTranspose2d",
    "Dense",
    "ECA",
    "LayerNorm",
    "PReLU",
    "ParamModule",
    "SpatialGate",
    "adaptive_avg_pool2d",
    "assign_buffers",
    "avg_pool2d",
    "circular_conv",
    "filter_adaptive_conv",
    "gelu",
    "image_nsr",
    "init_variables",
    "instance_norm",
    "interpolation_matrix",
    "kaiming_normal",
    "max_pool2d",
    "median3x3",
    "normal",
    "pad2d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "psf2otf",
    "relative_position_index",
    "resize_bilinear",
    "resize_bilinear_dense",
    "resize_nearest",
    "scale_bilinear",
    "shift_attention_mask",
    "squeeze2d",
    "torch_default_bias",
    "torch_default_kernel",
    "unsqueeze2d",
    "upsample_nearest",
    "wiener_deconv",
    "wiener_nsr",
    "window_merge",
    "window_partition",
    "zeros",
]
