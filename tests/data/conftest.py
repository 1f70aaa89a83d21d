"""Data fixtures: sources over the embedded dataset (built once per session, see tests/conftest.py)."""

import pytest

from lljax.data import sources


@pytest.fixture(scope='session')
def train_source(embedded_data_dir):
  return sources.open_source('embedded_photos/lowlight', 'train', embedded_data_dir)


@pytest.fixture(scope='session')
def test_source(embedded_data_dir):
  return sources.open_source('embedded_photos/lowlight', 'test', embedded_data_dir)
