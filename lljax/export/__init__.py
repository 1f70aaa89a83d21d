"""Deployable artefacts of lljax models, each with its measured agreement with lljax.

``export(model_dir, fmt, output)`` (CLI: ``python -m lljax.export``) writes the official enhance
path of a converted release or training workdir as a StableHLO, ONNX, TF SavedModel or TFLite
artefact at ``output`` and its parity report at ``output.report.json``:

* the artefact takes model-ready NHWC float32 inputs (``program``): the image in [0, 1] padded to
  the artefact's size, plus LLFlow's ``histeq`` or INFWIDE's ``kernel``; ``host.prepare`` makes
  them from photos and ``host.finish`` crops and clips the raw output;
* the report gives the signature (input/output names, shapes with symbolic dimensions, dtypes),
  the file size, the converter and runtime versions, and per sample photo the max absolute and
  relative difference between the artefact, run in its target runtime, and lljax (``report``).
  A difference above ``tolerance`` (1e-4) is an error naming the worst sample unless
  ``allow_mismatch``; nothing is written then.

Nothing is overwritten without ``overwrite``; the artefact is written under a temporary name and
renamed into place once its report is complete.
"""

import os
import pathlib
import shutil
import tempfile

TOLERANCE = 1e-4
FORMATS = ("stablehlo", "onnx", "savedmodel", "tflite")
# (model, format) pairs that cannot be exported, with the reason.
UNSUPPORTED = {("infwide", "onnx"): "its Wiener deconvolution needs 2-D FFTs and complex arithmetic, and "
                                    "jax2onnx 0.17.1 lowers only 1-D FFTs of complex-typed inputs; use stablehlo "
                                    "or savedmodel",
               ("infwide", "tflite"): "TF 2.21's TFLite converter crashes (segmentation fault) on its 2-D FFTs; "
                                      "use stablehlo or savedmodel"}
# Formats whose batch is fixed (default 1): jax2onnx does not convert every model with a symbolic
# batch, and LiteRT's CPU delegate does not reshape symbolic sizes; TFLite sizes are fixed too.
FIXED_BATCH = ("onnx", "tflite")
FIXED_SIZE = ("tflite",)


class ExportError(ValueError):
  """A usage problem: an unsupported pair, an existing output."""


class ParityError(ExportError):
  """The artefact differs from lljax by more than the tolerance."""


def report_path(output):
  return pathlib.Path(f"{output}.report.json")


def _check_output(output, overwrite):
  for path in (pathlib.Path(output), report_path(output)):
    if path.exists() and not overwrite:
      raise ExportError(f"{path} already exists; choose another --output or pass --overwrite")


def _remove(path):
  if path.is_dir() and not path.is_symlink():
    shutil.rmtree(path)
  elif path.exists() or path.is_symlink():
    path.unlink()


def signature(program):
  """The artefact's inputs and outputs as the report gives them (``host.prepare`` reads it)."""
  specs = program.specs()
  shape = lambda s: [d if isinstance(d, int) else str(d) for d in s.shape]
  from lljax.export.program import OUTPUT_NAME  # pylint: disable=import-outside-toplevel
  return {
      "model": program.model,
      "inputs": [{"name": n, "shape": shape(s), "dtype": "float32"} for n, s in zip(program.names, specs)],
      "outputs": [{"name": OUTPUT_NAME, "shape": shape(specs[0]), "dtype": "float32"}],
      "pad_multiple": program.multiple,
      "size": None if program.size is None else list(program.size),
      "kernel_size": program.kernel_size,
  }


def export(model_dir, fmt, output, *, step=None, batch=None, shape=None, kernel_size=None, overwrite=False,
           allow_mismatch=False, tolerance=TOLERANCE, log=print):
  """Writes ``model_dir``'s enhance program as ``fmt`` at ``output``; returns the report (dict).

  Args:
    batch: fixed batch size (None: symbolic; 1 for onnx and tflite). shape: fixed (H, W) (None: symbolic multiples of
      the model's size multiple, where the model traces so; required for tflite). kernel_size: INFWIDE's PSF side
      (default: the model's 37).
  Raises:
    ExportError: unsupported pair or existing output; ParityError (a subclass): a difference
      above ``tolerance`` without ``allow_mismatch``.
    formats.MissingExtraError: the format's extra is not installed.
    program.SymbolicSizeError: the model needs ``shape``.
  """
  from lljax import checkpoint  # pylint: disable=import-outside-toplevel
  from lljax.export import formats, program as program_lib, report  # pylint: disable=import-outside-toplevel

  if fmt not in FORMATS:
    raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
  model = checkpoint.read_model_spec(model_dir)["model"]
  if (model, fmt) in UNSUPPORTED:
    raise ExportError(f"{model} cannot be exported to {fmt}: {UNSUPPORTED[model, fmt]}")
  if fmt in FIXED_SIZE and shape is None:
    raise ExportError(f"{fmt} artefacts have a fixed input size: pass --shape HxW")
  batch = 1 if batch is None and fmt in FIXED_BATCH else batch
  formats.require(fmt)
  output = pathlib.Path(output)
  _check_output(output, overwrite)
  program = program_lib.load(model_dir, step, batch, shape, kernel_size)
  sig = signature(program)
  output.parent.mkdir(parents=True, exist_ok=True)
  tmp_dir = pathlib.Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
  try:
    artefact = tmp_dir / output.name
    log(f"lljax.export: writing {model} as {fmt} ...")
    info = formats.WRITERS[fmt](program, artefact)
    log(f"lljax.export: measuring {fmt} against lljax in {formats.runtime(fmt)} ...")
    rows = report.parity(sig, formats.LOADERS[fmt](artefact, program.names), report.reference(program))
    worst = max(rows, key=lambda r: r["max_abs_diff"])
    result = {
        "model": model, "source": str(model_dir), "step": step, "format": fmt, "artefact": str(output),
        "file_size_bytes": _size(artefact), "runtime": formats.runtime(fmt), **info, "signature": sig,
        "host_preprocessing": "lljax.export.host.prepare(signature, images, kernels) / host.finish; see its docstring",
        "samples": rows, "max_abs_diff": worst["max_abs_diff"],
        "max_rel_diff": max(r["max_rel_diff"] for r in rows), "worst_sample": worst["sample"],
        "tolerance": tolerance, "passed": worst["max_abs_diff"] <= tolerance,
    }
    if not result["passed"] and not allow_mismatch:
      raise ParityError(f"{fmt} artefact differs from lljax by {worst['max_abs_diff']:.3g} (> {tolerance:g}) "
                        f"on the output of sample {worst['sample']!r}; nothing written "
                        "(pass --allow_mismatch to keep it)")
    if overwrite:
      _remove(output)
    os.replace(artefact, output)
    checkpoint.write_json(report_path(output), result)
    return result
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)


def _size(path):
  path = pathlib.Path(path)
  return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
