"""Shared fixtures: the embedded dataset, built once per test session."""

import os
import pathlib

import pytest

from lljax.data import sources


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
def train_source(embedded_data_dir):
  return sources.open_source('embedded_photos/lowlight', 'train', embedded_data_dir)


@pytest.fixture(scope='session')
def test_source(embedded_data_dir):
  return sources.open_source('embedded_photos/lowlight', 'test', embedded_data_dir)
