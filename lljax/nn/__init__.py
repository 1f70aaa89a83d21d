"""Torch-compatible primitives shared by every lljax model.

Every op here reproduces the PyTorch semantics the official code relies on (explicit zero
padding, legacy ``nearest`` resizing, bilinear resizing without antialiasing, channel-major
pixel (un)shuffle), so that converted checkpoints give the same numbers. Arrays are NHWC.
"""

from lljax.nn.conv import Conv2d
from lljax.nn.init import ParamModule, init_variables, kaiming_normal, normal, torch_default_bias, torch_default_kernel, zeros
from lljax.nn.resample import (
    max_pool2d,
    pixel_shuffle,
    pixel_unshuffle,
    resize_bilinear,
    resize_nearest,
    scale_bilinear,
    squeeze2d,
    unsqueeze2d,
    upsample_nearest,
)

__all__ = [
    "Conv2d",
    "ParamModule",
    "init_variables",
    "kaiming_normal",
    "max_pool2d",
    "normal",
    "pixel_shuffle",
    "pixel_unshuffle",
    "resize_bilinear",
    "resize_nearest",
    "scale_bilinear",
    "squeeze2d",
    "torch_default_bias",
    "torch_default_kernel",
    "unsqueeze2d",
    "upsample_nearest",
    "zeros",
]
