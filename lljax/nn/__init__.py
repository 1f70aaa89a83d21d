"""Torch-compatible primitives shared by every lljax model.

Every op here reproduces the PyTorch semantics the official code relies on (explicit zero
padding, legacy ``nearest`` resizing, bilinear resizing without antialiasing, channel-major
pixel (un)shuffle), so that converted checkpoints give the same numbers. Arrays are NHWC.
"""

from lljax.nn.buffers import BUFFERS, assign_buffers
from lljax.nn.conv import Conv2d, ConvTranspose2d
from lljax.nn.fac import filter_adaptive_conv
from lljax.nn.init import ParamModule, init_variables, kaiming_normal, normal, torch_default_bias, torch_default_kernel, zeros
from lljax.nn.layers import Linear, PReLU
from lljax.nn.norm import BatchNorm2d
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

__all__ = [
    "BUFFERS",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Linear",
    "PReLU",
    "ParamModule",
    "adaptive_avg_pool2d",
    "assign_buffers",
    "avg_pool2d",
    "filter_adaptive_conv",
    "init_variables",
    "interpolation_matrix",
    "kaiming_normal",
    "max_pool2d",
    "normal",
    "pad2d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "resize_bilinear",
    "resize_bilinear_dense",
    "resize_nearest",
    "scale_bilinear",
    "squeeze2d",
    "torch_default_bias",
    "torch_default_kernel",
    "unsqueeze2d",
    "upsample_nearest",
    "zeros",
]
