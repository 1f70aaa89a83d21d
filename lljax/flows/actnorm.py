"""Activation normalisation (Glow) with the official data-dependent initialisation.

``y = (x + bias) * exp(logs)`` per channel; ``logdet = sum(logs) * H * W``.

PyTorch initialises ``bias = -mean(x)`` and ``logs = log(scale / (std(x) + 1e-6))`` (mean and
population std over batch and space) on the first forward pass in training mode, each ActNorm
seeing the output of the already initialised layers before it. Flax cannot mutate params in
``apply``, so the same pass runs with the ``"actnorm_init"`` collection mutable: every ActNorm
then computes its statistics from its own input, uses them at once (so downstream layers see
initialised activations, exactly like the official single pass), and records them.
``init_actnorms`` writes the recorded values into the params. Under ``jit`` on a sharded batch
the statistics are over the global batch (the official code used each GPU's own batch).
"""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn.init import ParamModule, zeros
from lljax.nn.precision import logdet_dtype

ACTNORM_INIT = "actnorm_init"


class ActNorm(ParamModule):
  """Per-channel affine with data-dependent init. Params ``bias`` and ``logs``, both (C,).

  Attributes:
    num_features: C.
    scale: target std of the initialised output (official ``actnorm_scale``, 1.0).
  """

  num_features: int
  scale: float = 1.0

  def setup(self):
    self.bias = self.param("bias", zeros, (self.num_features,))
    self.logs = self.param("logs", zeros, (self.num_features,))

  def _bias_logs(self, x):
    if self.is_initializing() or not self.is_mutable_collection(ACTNORM_INIT):
      return self.bias, self.logs
    x = jax.lax.stop_gradient(x)
    bias = -jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean((x + bias) ** 2, axis=(0, 1, 2))
    logs = jnp.log(self.scale / (jnp.sqrt(var) + 1e-6))
    self.put_variable(ACTNORM_INIT, "bias", bias)
    self.put_variable(ACTNORM_INIT, "logs", logs)
    return bias, logs

  def forward(self, x, cond=None):
    """x: (B, H, W, C) -> ((x + bias) * exp(logs), logdet [B])."""
    del cond
    bias, logs = self._bias_logs(x)
    y = (x + bias) * jnp.exp(logs)
    return y, _broadcast_logdet(jnp.sum(logs) * x.shape[1] * x.shape[2], x)

  def inverse(self, y, cond=None):
    """y: (B, H, W, C) -> (y * exp(-logs) - bias, -logdet [B])."""
    del cond
    x = y * jnp.exp(-self.logs) - self.bias
    return x, _broadcast_logdet(-jnp.sum(self.logs) * y.shape[1] * y.shape[2], y)

  def __call__(self, x):
    """Plain normalisation (used after coupling-net convs, where the logdet is not counted)."""
    return self.forward(x)[0]


def _broadcast_logdet(value, x):
  return jnp.broadcast_to(value.astype(logdet_dtype(x)), (x.shape[0],))


def init_actnorms(params, actnorm_values):
  """Returns ``params`` with every ActNorm's bias/logs replaced by the recorded init values.

  Args:
    params: the model's params (nested dict).
    actnorm_values: the ``"actnorm_init"`` collection from an ``apply`` with it mutable.
  """
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  for path, value in flax.traverse_util.flatten_dict(flax.core.unfreeze(actnorm_values)).items():
    if path not in flat:
      raise KeyError(f"ActNorm init value {'/'.join(path)} has no matching parameter")
    flat[path] = value.astype(flat[path].dtype)
  return flax.traverse_util.unflatten_dict(flat)
