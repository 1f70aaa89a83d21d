"""Test configuration: 8 fake CPU devices (sharding tests), highest matmul precision (parity)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402  pylint: disable=wrong-import-position

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position


def perturb_params(params, seed=0):
  """Moves parameters off their (often identity) init the way the golden fixtures do:
  kernels + N(0, (0.5/sqrt(fan_in))^2), vectors + N(0, 0.05^2)."""
  rng = np.random.default_rng(seed)

  def move(p):
    p = np.asarray(p)
    std = 0.5 / np.sqrt(np.prod(p.shape[:-1])) if p.ndim >= 2 else 0.05
    return (p + std * rng.normal(size=p.shape)).astype(p.dtype)

  return jax.tree.map(move, params)


@pytest.fixture(name="perturb")
def perturb_fixture():
  return perturb_params
