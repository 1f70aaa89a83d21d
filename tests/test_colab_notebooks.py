"""colab/*.ipynb run top to bottom on the CPU with tiny settings, so they never rot.

Each notebook is executed with nbclient in a kernel of the interpreter running the tests (a
kernelspec written to a temporary folder, so no user-wide kernel is involved), with this checkout
first on PYTHONPATH and two fake CPU devices (a real 2-device mesh). Its "parameters" cell is
followed by an injected cell that sets TINY = True and points the paths at temporary folders,
the test fixtures and the session's embedded TFDS data, as papermill does. The Colab-only cells
(install, Drive, TensorBoard) are guarded by IN_COLAB and are skipped here.
"""

import json
import pathlib
import re
import sys

import nbclient
import nbformat
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[1]
COLAB = ROOT / "colab"
NOTEBOOKS = ("quickstart", "train_llflow_tpu", "convert_and_evaluate")
SMALL_PTH = ROOT / "tests" / "fixtures" / "llflow" / "small.pth"
KERNEL = "lljax-notebook-test"
DEVICES = 2  # fake CPU devices in the kernel: the notebooks build a real 2-device mesh


def _parameters_cell(nb):
  cells = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", ())]
  assert len(cells) == 1, "a notebook needs exactly one cell tagged 'parameters'"
  return cells[0]


def _kernel_manager(tmp_path):
  from ipykernel.kernelspec import write_kernel_spec  # pylint: disable=import-outside-toplevel
  from jupyter_client.kernelspec import KernelSpecManager  # pylint: disable=import-outside-toplevel
  from jupyter_client.manager import KernelManager  # pylint: disable=import-outside-toplevel

  kernels = tmp_path / "kernels"
  env = {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}", "TF_CPP_MIN_LOG_LEVEL": "3"}
  write_kernel_spec(kernels / KERNEL, overrides={"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                          "{connection_file}"],
                                                 "display_name": KERNEL, "env": env})
  specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
  assert specs.get_kernel_spec(KERNEL).argv[0] == sys.executable
  return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def execute(name, tmp_path, **params):
  """Runs colab/<name>.ipynb with ``params`` injected after its parameters cell; returns it."""
  nb = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
  injected = "\n".join(f"{k} = {v!r}" for k, v in {"TINY": True, **params}.items())
  nb.cells.insert(_parameters_cell(nb) + 1, nbformat.v4.new_code_cell(injected))
  # The notebooks must work without TensorFlow and never import it.
  nb.cells.append(nbformat.v4.new_code_cell(
      'import sys\nassert not [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]'))
  work = tmp_path / "cwd"
  work.mkdir()
  client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=300,
                                   resources={"metadata": {"path": str(work)}})
  client.execute()
  return nb


def _outputs(nb, mime):
  return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", ())
          if mime in o.get("data", {})]


def _text(nb):
  return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", ()))


def _common_params(tmp_path, embedded_data_dir):
  import jax  # pylint: disable=import-outside-toplevel

  # The suite's persistent compilation cache (conftest): reruns of these tests skip compiling.
  cache = jax.config.jax_compilation_cache_dir or str(tmp_path / "xla_cache")
  return {"LLJAX_DIR": str(ROOT), "DATA_DIR": str(embedded_data_dir), "USE_DRIVE": False, "CACHE_DIR": cache}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name):
  nb = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs before committing"
  params = code[0] if "parameters" in code[0].metadata.get("tags", ()) else None
  assert params is not None and nb.cells.index(params) == _parameters_cell(nb)
  assert "TINY = False" in params.source
  source = "\n".join(c.source for c in code)
  assert "import tensorflow\n" not in source + "\n" and "tensorflow as tf" not in source
  assert 'IN_COLAB = "google.colab" in sys.modules' in source and "if IN_COLAB and" in source


def test_quickstart(tmp_path, embedded_data_dir):
  work = tmp_path / "work"
  nb = execute("quickstart", tmp_path, PTH=str(SMALL_PTH), WORK=str(work), DEMO_PORT=0,
               **_common_params(tmp_path, embedded_data_dir))
  text = _text(nb)
  assert f"lljax from {ROOT / 'lljax'}" in text  # this checkout, not another install
  assert "mesh {'data': 2}" in text
  assert json.loads((work / "converted_small" / "model.json").read_text())["model"] == "llflow"
  enhanced = sorted(p.name for p in (work / "enhanced").iterdir())
  assert enhanced == ["chelsea.png", "coffee.png"]
  assert len(_outputs(nb, "image/png")) == 2  # API before/after, CLI before/after
  assert re.search(r"lljax demo at http://127\.0\.0\.1:\d+/\nmodels: converted_small \(llflow\)\n", text)
  assert any("<iframe" in o["data"]["text/html"] for o in _outputs(nb, "text/html"))  # the page, inline


def test_train_llflow_tpu(tmp_path, embedded_data_dir):
  from lljax.utils.writers import read_jsonl  # pylint: disable=import-outside-toplevel

  workdir = tmp_path / "run"
  nb = execute("train_llflow_tpu", tmp_path, WORKDIR=str(workdir), **_common_params(tmp_path, embedded_data_dir))
  records = read_jsonl(workdir / "metrics.jsonl")
  losses = [r["train/loss"] for r in records if "train/loss" in r]
  assert len(losses) == 2 and np.all(np.isfinite(losses))
  assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["2"]
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert json.loads((workdir / "config.json").read_text())["batch_size"] == 4  # 2 per device
  assert "TensorBoard: tensorboard --logdir" in _text(nb)  # the inline magic is Colab-only
  assert len(_outputs(nb, "image/png")) == 3  # data, sample grid, low | enhanced | normal


def test_convert_and_evaluate(tmp_path, embedded_data_dir):
  output = tmp_path / "out"
  nb = execute("convert_and_evaluate", tmp_path, PTH=str(SMALL_PTH), DATASET="embedded_photos/lowlight",
               OUTPUT=str(output), **_common_params(tmp_path, embedded_data_dir))
  results = json.loads(next(output.glob("eval_*/metrics.json")).read_text())
  assert results["count"] == 2 and set(results["protocols"]) == {"llflow", "honest"}
  for protocol in results["protocols"].values():
    assert np.isfinite(protocol["mean"]["psnr"]) and protocol["lpips_net"] is None
  text = _text(nb)
  assert "metric       llflow     honest  paper - honest" in text
  assert len(_outputs(nb, "image/png")) == 1  # the worst/best grid
