"""Torch-compatible primitives shared by every lljax model.

Every op here reproduces the PyTorch semantics the official code relies on (explicit zero
padding, legacy ``nearest`` resizing, bilinear resizing without antialiasing, channel-major
pixel (un)shuffle), so that converted checkpoints give the same numbers. Arrays are NHWC.
"""

from lljax.nn.activation import gelu
from lljax.nn.conv import Conv2d
from lljax.nn.gates import CBAM, ECA, ChannelGate, SpatialGate
from lljax.nn.init import ParamModule, init_variables, kaiming_normal, normal, torch_default_bias, torch_default_kernel, zeros
from lljax.nn.linear import Dense
from lljax.nn.norm import LayerNorm
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
from lljax.nn.window import relative_position_index, shift_attention_mask, window_merge, window_partition

__all__ = [
    "CBAM",
    "ChannelGate",
    "Conv2d",
    "Dense",
    "ECA",
    "LayerNorm",
    "ParamModule",
    "SpatialGate",
    "init_variables",
    "gelu",
    "kaiming_normal",
    "max_pool2d",
    "normal",
    "pixel_shuffle",
    "pixel_unshuffle",
    "relative_position_index",
    "resize_bilinear",
    "resize_nearest",
    "scale_bilinear",
    "shift_attention_mask",
    "squeeze2d",
    "torch_default_bias",
    "torch_default_kernel",
    "unsqueeze2d",
    "upsample_nearest",
    "window_merge",
    "window_partition",
    "zeros",
]
