"""Test configuration: 8 fake CPU devices (sharding tests), a shared compilation cache. No global
matmul precision: lljax's layers carry their own (``lljax.nn.precision``)."""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402  pylint: disable=wrong-import-position

# Trainer tests compile the same steps several times (fresh run, resume, CLI); share the work.
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("LLJAX_TEST_COMPILATION_CACHE",
                                 os.path.join(tempfile.gettempdir(), f"lljax-test-xla-{os.getuid()}")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

import pathlib  # noqa: E402  pylint: disable=wrong-import-position

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position

from lljax.data import sources  # noqa: E402  pylint: disable=wrong-import-position


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


@pytest.fixture(scope='session')
def embedded_data_dir(tmp_path_factory) -> pathlib.Path:
  """A TFDS data_dir holding embedded_photos/lowlight (built on first use).

  Under pytest-xdist all workers share one directory (the parent of their
  base temp dirs); `ensure_embedded`'s lock makes only one of them build.
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent
  data_dir = root / 'lljax_tfds'
  sources.ensure_embedded('lowlight', data_dir)
  return data_dir




@pytest.fixture(scope='session')
def llflow_small_dir(tmp_path_factory) -> pathlib.Path:
  """tests/fixtures/llflow/small.pth converted to an lljax model directory (once per session)."""
  from lljax.convert import convert_checkpoint  # pylint: disable=import-outside-toplevel

  out = tmp_path_factory.mktemp('models') / 'llflow_small'
  convert_checkpoint('llflow', pathlib.Path(__file__).parent / 'fixtures' / 'llflow' / 'small.pth', out)
  return out
