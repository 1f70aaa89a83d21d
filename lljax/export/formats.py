"""The four artefact formats: how a ``Program`` is written, and how the target runtime runs it.

Each format has ``write(program, path)`` and ``load(path, names)`` (-> a function of the named feeds,
NHWC float32 numpy, returning the output;
``names`` gives the input order), plus the runtime's name and version for the report.

* ``stablehlo``: ``jax.export`` serialized, lowered for CPU, CUDA, ROCm and TPU (depthwise
  convolutions pick their CPU or generic form per platform when the artefact is called), run
  with ``jax.export.deserialize(...).call``; the params are constants inside.
* ``onnx``: the traced program with its param-only work folded to constants
  (``program.fold_constants``), converted by ``jax2onnx``, run by ``onnxruntime`` (CPU).
* ``savedmodel``: ``jax2tf`` (the StableHLO embedded in an ``XlaCallModule`` op, lowered for
  CPU, CUDA and TPU) in a ``tf.Module`` with one ``serving_default`` signature, run by TF.
* ``tflite``: that SavedModel through ``tf.lite.TFLiteConverter``, run by the LiteRT
  interpreter (``ai_edge_litert`` where installed, else ``tf.lite.Interpreter``).
"""

import contextlib
import importlib
import importlib.metadata
import pathlib
import shutil
import tempfile

import jax
import numpy as np

from lljax.export.program import OUTPUT_NAME, _jax_config

STABLEHLO_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
TF_PLATFORMS = ("cpu", "cuda", "tpu")
JAX2ONNX = "jax2onnx==0.17.1"
# format -> (how to install, modules it needs). jax2onnx is installed without its dependencies: its
# metadata caps orbax-checkpoint below lljax's pin, though it never imports orbax.
EXTRAS = {"onnx": (f"pip install 'lljax[onnx]' && pip install --no-deps {JAX2ONNX}",
                   ("onnx", "onnxruntime", "jax2onnx")),
          "savedmodel": ("pip install 'lljax[tf]'", ("tensorflow",)),
          "tflite": ("pip install 'lljax[tf]'", ("tensorflow",))}


class MissingExtraError(ImportError):
  """A format's optional dependencies are not installed."""


def require(fmt):
  """Raises MissingExtraError saying what to install when ``fmt``'s runtime is not importable."""
  install, modules = EXTRAS.get(fmt, (None, ()))
  for name in modules:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise MissingExtraError(f"--format {fmt} needs {name}, which is not installed ({e}); {install}") from e


def _version(dist):
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


# ---------------------------------------------------------------------------------------------
# StableHLO


def _stablehlo_write(program, path):
  exported = program.exported(STABLEHLO_PLATFORMS)
  pathlib.Path(path).write_bytes(exported.serialize())
  return {"platforms": list(exported.platforms), "converter": f"jax.export (jax {jax.__version__})"}


def _stablehlo_load(path, names):
  exported = jax.export.deserialize(bytearray(pathlib.Path(path).read_bytes()))
  return lambda feeds: np.asarray(exported.call(*[feeds[n] for n in names]))


# ---------------------------------------------------------------------------------------------
# ONNX


@contextlib.contextmanager
def _fast_jax2onnx_binding_check():
  """jax2onnx (0.17.1) checks that each new value is produced by the graph by scanning every
  node: quadratic in the graph size (minutes for UPT-Flow). A value whose producer node is in
  the graph passes at once here; any other still takes the original check."""
  try:
    from jax2onnx.converter import output_binding  # pylint: disable=import-outside-toplevel
    original = output_binding._value_is_graph_connected  # pylint: disable=protected-access
  except (ImportError, AttributeError):
    yield
    return

  def connected(ctx, value):
    producer = value.producer() if value is not None else None
    if producer is not None and producer.graph is ctx.builder.nodes:
      return True
    return original(ctx, value)

  output_binding._value_is_graph_connected = connected  # pylint: disable=protected-access
  try:
    yield
  finally:
    output_binding._value_is_graph_connected = original  # pylint: disable=protected-access


def _onnx_write(program, path):
  from jax2onnx import to_onnx  # pylint: disable=import-outside-toplevel
  import onnx  # pylint: disable=import-outside-toplevel

  fn = program.function("generic")
  with _fast_jax2onnx_binding_check():
    proto = to_onnx(fn, program.specs(), model_name=f"lljax_{program.model}",
                    input_names=list(program.names), output_names=[OUTPUT_NAME])
  onnx.save(proto, str(path))
  return {"converter": f"jax2onnx {_version('jax2onnx')} (opset {proto.opset_import[0].version})"}


def _onnx_load(path, names):  # pylint: disable=unused-argument
  import onnxruntime as ort  # pylint: disable=import-outside-toplevel

  session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
  return lambda feeds: session.run([OUTPUT_NAME], feeds)[0]


# ---------------------------------------------------------------------------------------------
# TF SavedModel and TFLite


def _polymorphic_shape(spec):
  return "(" + ", ".join(str(d) for d in spec.shape) + ")"


def _savedmodel_write(program, path, platforms=TF_PLATFORMS, depthwise="platform"):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from jax.experimental import jax2tf  # pylint: disable=import-outside-toplevel

  specs = program.specs()
  # Exported.call may be traced with other symbolic sizes (jax2tf's own) than it was exported with.
  exported = program.exported(platforms, depthwise)
  converted = jax2tf.convert(exported.call, polymorphic_shapes=[_polymorphic_shape(s) for s in specs],
                             native_serialization_platforms=platforms)
  signature = [tf.TensorSpec([d if isinstance(d, int) else None for d in s.shape], tf.float32, name=n)
               for s, n in zip(specs, program.names)]
  module = tf.Module()
  module.enhance = tf.function(lambda *xs: {OUTPUT_NAME: converted(*xs)}, autograph=False,
                               input_signature=signature)
  with _jax_config("jax_use_shardy_partitioner", False):  # converted when traced, here
    tf.saved_model.save(module, str(path), signatures=module.enhance.get_concrete_function())
  return {"platforms": list(platforms), "converter": f"jax2tf (jax {jax.__version__}, tensorflow {tf.__version__})"}


def _savedmodel_load(path, names):  # pylint: disable=unused-argument
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  serve = tf.saved_model.load(str(path)).signatures["serving_default"]
  return lambda feeds: serve(**{k: tf.constant(v) for k, v in feeds.items()})[OUTPUT_NAME].numpy()


def _tflite_write(program, path):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tmp = pathlib.Path(tempfile.mkdtemp(prefix="lljax-export-"))
  try:
    info = _savedmodel_write(program, tmp / "savedmodel", ("cpu",), "generic")
    content = tf.lite.TFLiteConverter.from_saved_model(str(tmp / "savedmodel")).convert()
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  pathlib.Path(path).write_bytes(content)
  return {"converter": info["converter"] + " + TFLiteConverter"}


def _litert_interpreter():
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    return Interpreter, f"ai-edge-litert {_version('ai-edge-litert')}"
  except ImportError:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.lite.Interpreter, f"tf.lite.Interpreter (tensorflow {tf.__version__})"


def _tflite_load(path, names):  # pylint: disable=unused-argument
  interpreter_cls, _ = _litert_interpreter()
  runner = interpreter_cls(model_path=str(path)).get_signature_runner()
  return lambda feeds: runner(**feeds)[OUTPUT_NAME]


def runtime(fmt):
  """The runtime's name and version, as the report names it."""
  if fmt == "stablehlo":
    return f"jax {jax.__version__} (jax.export.deserialize, {jax.devices()[0].platform})"
  if fmt == "onnx":
    return f"onnxruntime {_version('onnxruntime')} (CPUExecutionProvider)"
  if fmt == "savedmodel":
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return f"tensorflow {tf.__version__} (tf.saved_model.load)"
  return _litert_interpreter()[1]


WRITERS = {"stablehlo": _stablehlo_write, "onnx": _onnx_write, "savedmodel": _savedmodel_write,
           "tflite": _tflite_write}
LOADERS = {"stablehlo": _stablehlo_load, "onnx": _onnx_load, "savedmodel": _savedmodel_load,
           "tflite": _tflite_load}
FORMATS = tuple(WRITERS)
