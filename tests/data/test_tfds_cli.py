"""The TFDS command-line wrapper: its Beam stand-in and its error without TensorFlow."""

import importlib.util

import pytest

from lljax.data import tfds_cli


def test_stand_in_beam_offers_the_base_class_tfds_subclasses():
  beam = tfds_cli._stand_in_beam()  # pylint: disable=protected-access
  assert beam.__name__ == "apache_beam"
  type("ConvertMetadataFn", (beam.DoFn,), {})  # what tfds' CLI does at import time


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed")
def test_without_tensorflow_the_error_names_the_extra():
  with pytest.raises(SystemExit, match=r"needs TensorFlow: pip install -e '\.\[tf\]'"):
    tfds_cli.main(["build", "--help"])
