"""``python -m lljax.train --config configs/<model>.py[:arg] --workdir DIR [--config.x=y ...]``.

Thin entry point: flags -> config -> the trainer of the model's kind. Re-running with the same
workdir resumes from its newest checkpoint. From Python (e.g. a notebook, where the accelerator
belongs to the kernel and a subprocess could not use it), ``train(config, workdir)`` does the
same with a config from ``lljax.config_lib.load_config("configs/<model>.py[:arg]")``.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lljax import config_lib, distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/<model>.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
# Multi-process runs (one process per host): all three, or JAX_COORDINATOR_ADDRESS,
# JAX_NUM_PROCESSES and JAX_PROCESS_ID, or nothing on clusters JAX detects (TPU pods, SLURM, MPI).
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0's coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout", 60, "Seconds after which JAX counts a silent process as lost; lljax reports it after a quarter of this.")

# Errors a user can fix from the message alone: shown as one line, without a traceback.
_USER_ERRORS = (config_lib.ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError,
                PermissionError, ValueError, FloatingPointError, distributed.DistributedError)


def train(config, workdir):
  """Trains ``config`` (a ConfigDict of a ``configs/*.py`` file) into ``workdir``, resuming if it
  holds checkpoints: the Python twin of the command line (which also sets the compilation cache)."""
  from lljax import models, trainers  # pylint: disable=import-outside-toplevel

  return trainers.get(models.get(config.model.name).KIND).train(config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _WORKDIR.value is None:
    raise app.UsageError("--workdir is required")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO
  import jax  # pylint: disable=import-outside-toplevel

  # Compiled train steps are reused across runs and resumptions of the same model.
  cache = os.environ.get("LLJAX_COMPILATION_CACHE", os.path.expanduser("~/.cache/lljax/xla"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
  try:
    run = distributed.settings(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    distributed.initialize(run, heartbeat_timeout=_HEARTBEAT.value)
    train(_CONFIG.value, _WORKDIR.value)
  except distributed.DistributedError as e:
    print(f"lljax.train: error: {e}", file=sys.stderr, flush=True)
    # Skip JAX's exit handlers: their shutdown barrier would wait for the lost process, then abort.
    os._exit(2)  # pylint: disable=protected-access
  except _USER_ERRORS as e:
    print(f"lljax.train: error: {e}", file=sys.stderr)
    sys.exit(2)


def run():
  flags.mark_flag_as_required("config")
  try:
    app.run(main)
  except config_lib.ConfigError as e:  # raised while absl parses --config
    print(f"lljax.train: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  run()
