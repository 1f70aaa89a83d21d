"""Fixtures of the demo tests: the session's demo server (the fixture-converted LLFlow and INFWIDE
models and a folder that is not a model), the reference Restorer and a dark photo."""

import pytest

import lljax
from demo_client import ROOT, DemoProcess
from lljax.convert import convert_checkpoint
from lljax.imaging import lowlight, photos
from lljax.utils.images import encode_png, to_uint8


@pytest.fixture(scope="session")
def infwide_small_dir(tmp_path_factory):
  """tests/fixtures/infwide/small.pth converted to a model directory."""
  out = tmp_path_factory.mktemp("models") / "infwide_small"
  convert_checkpoint("infwide", ROOT / "tests" / "fixtures" / "infwide" / "small.pth", out)
  return out


@pytest.fixture(scope="session")
def not_a_model(tmp_path_factory):
  folder = tmp_path_factory.mktemp("not_a_model")
  (folder / "notes.txt").write_text("no model.json here")
  return folder


@pytest.fixture(scope="session")
def demo(tmp_path_factory, llflow_small_dir, infwide_small_dir, not_a_model):
  """The running demo (a DemoProcess with ``url``) for the session; ``cwd``: its empty working folder."""
  cwd = tmp_path_factory.mktemp("demo_cwd")
  server = DemoProcess(["--models", llflow_small_dir, infwide_small_dir, not_a_model], cwd)
  server.cwd = cwd
  try:
    server.wait_url()
    yield server
  finally:
    server.stop()


@pytest.fixture(scope="session")
def llflow_restorer(llflow_small_dir):
  return lljax.load(llflow_small_dir)


@pytest.fixture(scope="session")
def dark_photo():
  """A real photo darkened by lljax's low-light model, 52x78: the model pads it to 56x80 (not to
  a multiple of 32, which would change the result): uint8."""
  low, _ = lowlight.synthesize_low_light(photos.load_photo("chelsea")[100:152, 120:198], 0)
  return to_uint8(low)


@pytest.fixture(scope="session")
def dark_png(dark_photo):
  return encode_png(dark_photo)
