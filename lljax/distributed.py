"""Running as one process of several: launch settings, ``jax.distributed`` start-up, and a peer's
death turned into a clear error.

A multi-host run is the same command started once per host (or per process). Its settings come
from flags (``--coordinator_address``, ``--num_processes``, ``--process_id``), else the generic
environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), else what
JAX detects by itself (TPU pod slices, SLURM, Open MPI, Kubernetes/GKE); with none of these the
run is one process. The three generic settings go together: a partial or inconsistent set is a
one-line ``DistributedError`` naming what is missing.

Every process then feeds its own rows of each global batch (``lljax.data.pipeline``), takes part
in checkpointing (Orbax writes each process's shards), and only process 0 writes metrics,
samples and the run files. When a process dies, the others end with one line saying how to
resume (exit status 2): ``peer_errors`` on an error of a collective or barrier that names a lost
peer, at once, and ``watch_peers``, a ``Watchdog``, in the silent cases (a process blocked in a
collective or barrier that only fails when the coordination service notices the death).

Why a watchdog of our own: the coordination service notices a dead process after
``heartbeat_timeout`` and then aborts every other process from a C++ thread (SIGABRT, no Python
exception, no word on resuming), and the hook JAX's client offers to replace that abort cannot be
used from Python (its status argument fails to convert). The watchdog's own heartbeats go through
the service's key-value store and call a peer lost after a quarter of ``heartbeat_timeout``, so it
speaks first.
"""

import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
from typing import Callable, Optional

import jax

_heartbeat_timeout = 100  # JAX's default; ``initialize`` records the run's
ENV = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
       "process_id": "JAX_PROCESS_ID"}
def _count(env, *names):
  return max([int(env.get(n) or 1) for n in names] or [1])


# Multi-process clusters whose settings JAX's own detection (``jax._src.clusters``) reads.
_AUTO_DETECTED = {
    "TPU pod slice": lambda env: _count(env, "TPU_WORKER_COUNT", "CLOUD_TPU_TASK_COUNT") > 1
                                 or "," in env.get("TPU_WORKER_HOSTNAMES", ""),
    "SLURM": lambda env: _count(env, "SLURM_NTASKS") > 1,
    "Open MPI": lambda env: "OMPI_MCA_orte_hnp_uri" in env and _count(env, "OMPI_COMM_WORLD_SIZE") > 1,
    "Kubernetes": lambda env: "KUBERNETES_SERVICE_HOST" in env and "JOB_COMPLETION_INDEX" in env,
}


class DistributedError(RuntimeError):
  """The multi-process settings are wrong, or a process of the run was lost."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """How this process joins the run: ``explicit`` settings, ``auto`` detection (``cluster``
  names it), or neither (one process)."""

  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  cluster: Optional[str] = None

  @property
  def explicit(self):
    return self.coordinator_address is not None

  @property
  def multi_process(self):
    return self.explicit or self.cluster is not None


def settings(coordinator_address=None, num_processes=None, process_id=None, env=None):
  """The run's ``Settings`` from flags (None: not given), then ``env`` (default ``os.environ``)."""
  env = os.environ if env is None else env
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
  values, sources = {}, {}
  for name, value in given.items():
    if value in (None, ""):
      value = env.get(ENV[name]) or None
      sources[name] = ENV[name]
    else:
      sources[name] = f"--{name}"
    values[name] = value
  present = [n for n, v in values.items() if v is not None]
  if not present:
    cluster = next((name for name, detected in _AUTO_DETECTED.items() if detected(env)), None)
    return Settings(cluster=cluster)
  missing = [n for n in ENV if values[n] is None]
  if missing:
    have = ", ".join(f"{sources[n]}={values[n]}" for n in present)
    need = " and ".join(f"--{n} (or {ENV[n]})" for n in missing)
    raise DistributedError(f"incomplete multi-process settings: {have} given, but {need} missing; "
                           "set all three on every process, or none for one process")
  return _validated(values, sources)


def _validated(values, sources):
  address = str(values["coordinator_address"])
  if not re.fullmatch(r"\[?[\w.\-:]+\]?:\d+", address):
    raise DistributedError(f"{sources['coordinator_address']}={address!r} is not host:port")
  try:
    count, index = int(values["num_processes"]), int(values["process_id"])
  except ValueError:
    raise DistributedError(f"{sources['num_processes']}={values['num_processes']!r} and "
                           f"{sources['process_id']}={values['process_id']!r} must be integers") from None
  if count < 1 or not 0 <= index < count:
    raise DistributedError(f"{sources['process_id']}={index} is not in [0, {count}) "
                           f"({sources['num_processes']}={count})")
  return Settings(address, count, index)


def initialize(run_settings, heartbeat_timeout=60, initialization_timeout=300):
  """Starts ``jax.distributed`` for a multi-process run (before any device is used); a no-op for
  one process or when it already runs. ``heartbeat_timeout`` (seconds) bounds how long the
  others wait on a dead process."""
  if not run_settings.multi_process or jax.distributed.is_initialized():
    return
  global _heartbeat_timeout
  _heartbeat_timeout = int(heartbeat_timeout)
  kwargs = dict(heartbeat_timeout_seconds=int(heartbeat_timeout), initialization_timeout=int(initialization_timeout))
  if run_settings.explicit:
    kwargs.update(coordinator_address=run_settings.coordinator_address,
                  num_processes=run_settings.num_processes, process_id=run_settings.process_id)
  try:
    jax.distributed.initialize(**kwargs)
  except (RuntimeError, ValueError) as e:
    where = run_settings.coordinator_address or run_settings.cluster
    raise DistributedError(f"could not join the multi-process run ({where}): {str(e).splitlines()[0]}") from e


# Words in XLA/gloo/coordination-service/Orbax errors that mean another process went away.
_PEER_LOST = re.compile(r"connection (reset|refused|closed)|broken pipe|gloo|heartbeat|coordination service|"
                        r"peer|socket closed|unavailable|barrier|timed out|deadline exceeded", re.IGNORECASE)


def exit_lost(message):
  """The default end of a process whose peer was lost: one line on stderr, exit status 2, and no
  exit handlers (JAX's shutdown barrier would wait for the lost process, then abort)."""
  print(f"lljax: error: {message}", file=sys.stderr, flush=True)
  os._exit(2)  # pylint: disable=protected-access


class Watchdog:
  """Heartbeats through the coordination service's key-value store: every ``period`` seconds
  this process bumps its own counter and reads the others'; a peer whose counter has not moved
  for ``silence`` seconds after its first beat (or a store unreachable that long) is reported to
  ``on_lost(process_index, seconds)``. ``stop(finished=True)`` tells the others this process
  ended on purpose, so they do not mistake its exit for a loss."""

  def __init__(self, client, index, count, silence, on_lost, period=1.0):
    self._client, self._index, self._silence, self._on_lost, self._period = client, index, silence, on_lost, period
    self._peers = [p for p in range(count) if p != index]
    self._stopped = threading.Event()
    self._thread = threading.Thread(target=self._run, name="lljax-watchdog", daemon=True)

  @staticmethod
  def key(index):
    return f"lljax/watchdog/{index}"

  def start(self):
    self._thread.start()
    return self

  def stop(self, finished=True):
    self._stopped.set()
    self._thread.join()
    if finished:
      with contextlib.suppress(Exception):
        self._client.key_value_set(self.key(self._index), "finished", allow_overwrite=True)

  def _run(self):
    seen = {p: (None, None) for p in self._peers}
    reachable, beat = time.monotonic(), 0
    while not self._stopped.wait(self._period):
      now, beat = time.monotonic(), beat + 1
      try:
        self._client.key_value_set(self.key(self._index), str(beat), allow_overwrite=True)
        values = {p: self._try_get(p) for p in self._peers}
      except Exception:  # pylint: disable=broad-except
        if now - reachable > self._silence:  # the service (process 0) is gone
          return self._on_lost(0, now - reachable)
        continue
      reachable = now
      for peer, value in values.items():
        if value in (None, "finished"):  # not started yet (the service still watches it), or done
          continue
        if value != seen[peer][0]:
          seen[peer] = (value, now)
        elif now - seen[peer][1] > self._silence:
          return self._on_lost(peer, now - seen[peer][1])

  def _try_get(self, peer):
    try:
      return self._client.key_value_try_get(self.key(peer))
    except Exception as e:  # pylint: disable=broad-except
      if "not found" in str(e).lower():
        return None
      raise


def _lost_message(cause, resume_hint):
  try:
    hint = resume_hint()
  except Exception:  # pylint: disable=broad-except
    hint = "rerun the same command on every process to resume from the last checkpoint"
  return f"process {jax.process_index()} of {jax.process_count()} lost contact with the others ({cause}); {hint}"


@contextlib.contextmanager
def watch_peers(resume_hint: Callable[[], str], on_lost: Callable[[str], None] = exit_lost):
  """In a multi-process run, a ``Watchdog`` (silence: a quarter of the heartbeat timeout) calls
  ``on_lost(message)`` when a peer falls silent; ``message`` ends with ``resume_hint()`` (what to
  rerun). Enter it before anything that may wait on the others, its own clean-up included (an
  Orbax checkpoint manager's close waits in a commit barrier). One process: nothing."""
  if jax.process_count() == 1:
    yield
    return
  from jax._src import distributed as jax_distributed  # pylint: disable=import-outside-toplevel

  def lost(peer, seconds):
    on_lost(_lost_message(f"process {peer} silent for {seconds:.0f} s", resume_hint))

  watchdog = Watchdog(jax_distributed.global_state.client, jax.process_index(), jax.process_count(),
                      max(2.0, _heartbeat_timeout / 4), lost).start()
  finished = False
  try:
    yield
    finished = True
  finally:
    watchdog.stop(finished)


@contextlib.contextmanager
def peer_errors(resume_hint: Callable[[], str], on_lost: Callable[[str], None] = exit_lost):
  """In a multi-process run, an error of the runtime that says a peer is gone (a collective's
  closed connection, a barrier's timeout) calls ``on_lost(message)`` at once, before the clean-up
  of what encloses this context, which would wait for the lost peer until JAX's runtime aborts the
  process; if ``on_lost`` returns, it is raised as a ``DistributedError``. Other errors pass
  unchanged. One process: nothing."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    if jax.process_count() == 1 or isinstance(e, DistributedError):
      raise
    if isinstance(e, TimeoutError) or _PEER_LOST.search(str(e)):
      message = _lost_message(str(e).splitlines()[0][:200] if str(e) else type(e).__name__, resume_hint)
      on_lost(message)
      raise DistributedError(message) from e
    raise
