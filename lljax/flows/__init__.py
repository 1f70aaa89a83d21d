"""Normalizing-flow layers shared by every flow model (LLFlow, UPT-Flow, SSFlow).

Every layer exposes the same two methods on NHWC arrays:

* ``forward(x, cond=None) -> (y, logdet)``: the encode direction (image -> latent),
* ``inverse(y, cond=None) -> (x, logdet)``: the decode direction,

where ``logdet`` has shape ``[B]`` (log|det J| in nats of that direction, so the two are
negatives of each other). ``cond`` is the layer's conditioning feature map or None.
"""

from lljax.flows.actnorm import ACTNORM_INIT, ActNorm, init_actnorms
from lljax.flows.coupling import (CondAffineSeparatedAndCond, Conv2dZeros, CouplingNet, CrossAffineCoupling, FlowConv2d,
                                  split_cross)
from lljax.flows.invconv import InvConv1x1
from lljax.flows.multilevel import MultiLevelFlow
from lljax.flows.prior import gaussian_log_prob, sample_gaussian
from lljax.flows.squeeze import Squeeze
from lljax.flows.step import FlowStep

__all__ = [
    "ACTNORM_INIT",
    "ActNorm",
    "CondAffineSeparatedAndCond",
    "Conv2dZeros",
    "CouplingNet",
    "CrossAffineCoupling",
    "FlowConv2d",
    "FlowStep",
    "InvConv1x1",
    "MultiLevelFlow",
    "Squeeze",
    "gaussian_log_prob",
    "init_actnorms",
    "sample_gaussian",
    "split_cross",
]
