"""``python -m lljax.data.tfds_cli build tfds_builders/lol --manual_dir ~/Downloads``: TFDS's own
command line (``tfds build``, ``tfds ...``), runnable with lljax's pins.

tensorflow-datasets 4.9.10's CLI needs TensorFlow (the ``tf`` extra) and, at import time,
``apache_beam`` — only to subclass ``beam.DoFn`` in its format-conversion command. apache-beam's
releases pin pillow < 13 and protobuf < 7, which conflict with lljax's pins, and none of lljax's
builders uses Beam. So when apache_beam is not installed this entry point registers a stand-in
module with just that base class and runs the unmodified TFDS CLI; Beam-based commands (``tfds
convert_format``, ``--beam_pipeline_options``) then fail, everything else works. Prefer
``python -m lljax.data.prepare``, which needs neither TensorFlow nor this.
"""

import importlib.util
import sys
import types


def _stand_in_beam():
  """A module ``apache_beam`` with the one name TFDS's CLI touches at import time."""
  beam = types.ModuleType("apache_beam")
  beam.__doc__ = "lljax stand-in: apache-beam is not installed (see lljax.data.tfds_cli)."
  beam.DoFn = type("DoFn", (), {})
  return beam


def main(argv=None):
  if importlib.util.find_spec("tensorflow") is None:
    sys.exit("lljax.data.tfds_cli: the TFDS command line needs TensorFlow: pip install -e '.[tf]' "
             "(or use python -m lljax.data.prepare, which does not)")
  if importlib.util.find_spec("apache_beam") is None:
    sys.modules["apache_beam"] = _stand_in_beam()
  from tensorflow_datasets.scripts.cli import main as tfds_main  # pylint: disable=import-outside-toplevel

  sys.argv = ["tfds", *(sys.argv[1:] if argv is None else argv)]
  tfds_main.launch_cli()


if __name__ == "__main__":
  main()
