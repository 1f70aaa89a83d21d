"""Multi-process training as users launch it: two processes on this machine (one CPU device each,
gloo collectives) train like one process on two devices, their checkpoint loads and resumes on
one device, a lost process ends the other with a clear error, and bad settings are one line."""

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import lljax
from helpers import override
from lljax import distributed
from lljax.config_lib import load_config
from lljax.trainers import flow

ROOT = pathlib.Path(__file__).parents[1]
CONFIG = ROOT / "configs" / "llflow.py"
STEPS = 3


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _overrides(data_dir, total_steps, checkpoint_every=STEPS):
  return [f"--config.{k}={v}" for k, v in dict(
      total_steps=total_steps, batch_size=4, **{"data.crop_size": 32, "data.data_dir": data_dir, "mesh.data": -1,
                                                "eval_every": 0, "log_every": 1, "checkpoint_every": checkpoint_every}
  ).items()]


def _launch(workdir, data_dir, cache, total_steps, explicit_flags=False, heartbeat=None, checkpoint_every=STEPS):
  """Starts the two processes of one run; returns their Popen objects."""
  port, procs = _free_port(), []
  for index in range(2):
    env = {**os.environ, "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo", "LLJAX_COMPILATION_CACHE": str(cache),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    args = [sys.executable, "-m", "lljax.train", f"--config={CONFIG}:quick", f"--workdir={workdir}",
            *_overrides(data_dir, total_steps, checkpoint_every)]
    launch = {"coordinator_address": f"127.0.0.1:{port}", "num_processes": 2, "process_id": index}
    if explicit_flags:
      args += [f"--{k}={v}" for k, v in launch.items()]
    else:
      env.update({distributed.ENV[k]: str(v) for k, v in launch.items()})
    if heartbeat:
      args.append(f"--heartbeat_timeout={heartbeat}")
    procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  return procs


def _losses(workdir):
  return [json.loads(line)["train/loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
          if "train/loss" in line]


def test_two_processes_train_as_one_process_on_two_devices_and_restore_anywhere(tmp_path, embedded_data_dir):
  procs = _launch(tmp_path / "two", embedded_data_dir, tmp_path / "cache", STEPS, explicit_flags=True)
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  assert "new run" in outputs[0][0] and "new run" not in outputs[1][0]  # only process 0 reports

  # The same run in one process on two devices (this process has 8 fake CPU devices).
  config = override(load_config(f"{CONFIG}:quick"), total_steps=STEPS, batch_size=4, eval_every=0, log_every=1,
                    checkpoint_every=STEPS, **{"data.crop_size": 32, "data.data_dir": str(embedded_data_dir),
                                               "mesh.data": 2})
  flow.train(config, tmp_path / "one")
  # Equal up to the order of float reductions (the reference process compiles for 8 devices).
  np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-6)
  two, one = lljax.load(tmp_path / "two"), lljax.load(tmp_path / "one")  # loads on one device
  assert all(len(a.sharding.device_set) == 1 for a in jax.tree.leaves(two.params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-5), jax.device_get(two.params),
               jax.device_get(one.params))

  # The two-process checkpoint resumes in one process on one device.
  config.total_steps, config.mesh.data = STEPS + 1, 1
  flow.train(config, tmp_path / "two")
  assert sorted(int(p.name) for p in (tmp_path / "two" / "checkpoints").iterdir()) == [STEPS, STEPS + 1]
  assert len(_losses(tmp_path / "two")) == STEPS + 1


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_lost_process_ends_the_others_with_a_clear_error(tmp_path, embedded_data_dir, how):
  """Process 1 is killed (its sockets close) or frozen (they stay open: only heartbeats tell) once
  the run has made progress; process 0 stops within the heartbeat bound with one line saying how
  to resume, instead of waiting forever in a collective or being aborted by the runtime. A
  checkpoint every step keeps process 0 in Orbax's commit barrier most of the time, where the
  runtime's abort used to win."""
  workdir = tmp_path / "run"
  procs = _launch(workdir, embedded_data_dir, tmp_path / "cache", 10_000, heartbeat=30, checkpoint_every=1)
  deadline = time.time() + 400
  while not (workdir / "metrics.jsonl").exists() or len(_losses(workdir)) < 3:
    assert time.time() < deadline and procs[0].poll() is None, procs[0].communicate()[1][-3000:]
    time.sleep(1)
  procs[1].send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
  killed = time.time()
  try:
    _, err = procs[0].communicate(timeout=180)
  finally:
    procs[1].kill()
    procs[1].communicate()
  assert time.time() - killed < 90  # the heartbeat bound (30 s) and a margin
  assert procs[0].returncode == 2, err[-3000:]
  assert "lost contact with the others" in err and "rerun the same command on every process" in err
  assert "resume from the last checkpoint (step" in err


class _Store:
  """The coordination service's key-value store as the watchdog uses it; ``down`` makes it unreachable."""

  def __init__(self):
    self.values, self.down = {}, False

  def key_value_set(self, key, value, allow_overwrite=False):
    if self.down:
      raise RuntimeError("UNAVAILABLE: failed to connect")
    assert allow_overwrite
    self.values[key] = value

  def key_value_try_get(self, key):
    if self.down:
      raise RuntimeError("UNAVAILABLE: failed to connect")
    if key not in self.values:
      raise RuntimeError(f"NOT_FOUND: {key} not found")
    return self.values[key]


def _watch(store, index, count):
  lost = []
  dog = distributed.Watchdog(store, index, count, silence=0.3, on_lost=lambda *a: lost.append(a), period=0.02)
  return dog.start(), lost


def test_watchdog_reports_a_silent_peer_but_not_a_finished_or_unstarted_one():
  store = _Store()
  dogs = [_watch(store, i, 3) for i in range(3)]
  time.sleep(0.6)
  assert all(not lost for _, lost in dogs)  # all beating
  dogs[1][0].stop(finished=True)  # ends on purpose
  dogs[2][0].stop(finished=False)  # dies
  time.sleep(0.8)
  dogs[0][0].stop()
  assert len(dogs[0][1]) == 1 and dogs[0][1][0][0] == 2 and dogs[0][1][0][1] > 0.3

  store = _Store()
  dog, lost = _watch(store, 0, 2)
  time.sleep(0.6)
  assert not lost  # a peer that never started is left to the coordination service
  store.down = True  # the service (on process 0) is gone
  time.sleep(0.6)
  dog.stop(finished=False)
  assert lost and lost[0][0] == 0


@pytest.fixture
def two_processes(monkeypatch):
  """This process posing as process 0 of 2 (for the parts of ``lljax.distributed`` that only ask)."""
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: 0)


def test_a_peer_error_ends_the_process_before_the_enclosing_clean_up(two_processes):
  events = []

  @contextlib.contextmanager
  def checkpoints():  # like Orbax's close, which would wait for the lost peer
    try:
      yield
    finally:
      events.append("close")

  with pytest.raises(distributed.DistributedError, match=r"lost contact .*Gloo.*; resume from step 4"):
    with checkpoints(), distributed.peer_errors(lambda: "resume from step 4", on_lost=events.append):
      raise RuntimeError("Gloo: connection closed by peer")
  assert len(events) == 2 and events[0].startswith("process 0 of 2 lost contact") and events[1] == "close"

  with pytest.raises(ValueError, match="bad crop"):  # not about a peer: unchanged, no report
    with distributed.peer_errors(lambda: "", on_lost=events.append):
      raise ValueError("bad crop")
  assert len(events) == 2


def test_one_process_never_reports_a_lost_peer():
  reported = []
  with pytest.raises(TimeoutError):
    with distributed.watch_peers(lambda: "", on_lost=reported.append), \
         distributed.peer_errors(lambda: "", on_lost=reported.append):
      raise TimeoutError("barrier timed out")
  assert not reported


@pytest.mark.parametrize("env,flags,message", [
    ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234", "JAX_NUM_PROCESSES": "2"}, [],
     "--process_id (or JAX_PROCESS_ID) missing"),
    ({}, ["--coordinator_address=127.0.0.1:1234", "--process_id=0"], "--num_processes (or JAX_NUM_PROCESSES) missing"),
    ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, [],
     "JAX_PROCESS_ID=2 is not in [0, 2)"),
])
def test_incomplete_settings_are_one_line_errors(tmp_path, env, flags, message):
  env = {**{k: v for k, v in os.environ.items() if k not in distributed.ENV.values()}, **env}
  result = subprocess.run([sys.executable, "-m", "lljax.train", f"--config={CONFIG}:quick",
                           f"--workdir={tmp_path / 'w'}", *flags], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("lljax.train: error: incomplete multi-process settings") or "is not in" in lines[-1]
  assert message in lines[-1] and "Traceback" not in result.stderr
  assert not (tmp_path / "w").exists()


def test_settings_sources_and_cluster_detection():
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:8476", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  assert distributed.settings(env=env) == distributed.Settings("10.0.0.1:8476", 4, 3)
  assert distributed.settings(process_id=1, env=env).process_id == 1  # a flag wins over the environment
  assert distributed.settings(env={}) == distributed.Settings()
  assert not distributed.Settings().multi_process
  assert distributed.settings(env={"SLURM_NTASKS": "8"}).cluster == "SLURM"
  assert distributed.settings(env={"TPU_WORKER_HOSTNAMES": "a,b"}).cluster == "TPU pod slice"
  with pytest.raises(distributed.DistributedError, match="is not host:port"):
    distributed.settings(env={**env, "JAX_COORDINATOR_ADDRESS": "nohost"})
