"""A client for the demo tests: the server as its users start it (``python -m lljax.demo``, a
subprocess) and its HTTP API (importable as ``demo_client``: pytest puts this folder on sys.path).

The server shares the suite's persistent compilation cache and matmul precision, so its programs
are the ones the tests' own ``lljax.load(...).enhance`` compiles.
"""

import json
import os
import pathlib
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import jax
import pytest


ROOT = pathlib.Path(__file__).parents[2]
START_TIMEOUT = 120  # seconds for the server to start answering (importing JAX on a busy CI machine)


class DemoProcess:
  """``python -m lljax.demo *args --port 0`` in ``cwd``; ``url`` once it printed it."""

  def __init__(self, args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
           "JAX_DEFAULT_MATMUL_PRECISION": jax.config.jax_default_matmul_precision or "highest",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1"}
    if jax.config.jax_compilation_cache_dir:
      env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    self.process = subprocess.Popen([sys.executable, "-m", "lljax.demo", *map(str, args), "--port", "0"],
                                    cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    self.lines = []
    self._lines = queue.Queue()
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()
    self.url = None

  def _read(self):
    for line in self.process.stdout:
      self.lines.append(line.rstrip("\n"))
      self._lines.put(line)

  @property
  def output(self):
    return "\n".join(self.lines)

  def wait_url(self, timeout=START_TIMEOUT):
    """Waits for the "... at http://... (Ctrl-C stops)" line; fails with the output otherwise."""
    deadline = time.monotonic() + timeout
    while self.url is None:
      try:
        line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
      except queue.Empty:
        pytest.fail(f"the demo did not start within {timeout} s; its output:\n{self.output}")
      if match := re.search(r" at (http://\S+/) \(Ctrl-C stops\)", line):
        self.url = match.group(1)
      elif self.process.poll() is not None:
        pytest.fail(f"the demo exited with {self.process.returncode}:\n{self.output}")
    return self.url

  def stop(self, sig=signal.SIGTERM, timeout=60):
    """Sends ``sig``; returns the exit status (None if it did not stop within ``timeout`` s: killed)."""
    if self.process.poll() is None:
      self.process.send_signal(sig)
    try:
      return self.process.wait(timeout)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
      return None
    finally:
      self._reader.join(10)  # its last lines are in ``output``


def multipart(fields):
  """{name: str or (file name, bytes)} -> (body, content type) of a multipart/form-data form."""
  boundary = "lljax-test-" + secrets.token_hex(8)
  body = b""
  for name, value in fields.items():
    if isinstance(value, tuple):
      head = f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
      head += "Content-Type: application/octet-stream\r\n"
      data = value[1]
    else:
      head, data = f'Content-Disposition: form-data; name="{name}"\r\n', str(value).encode()
    body += f"--{boundary}\r\n{head}\r\n".encode() + data + b"\r\n"
  return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url, data=None, content_type=None):
  """(HTTP status, headers, body bytes) of a GET (or POST of ``data``); errors are answers too."""
  req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if content_type else {})
  try:
    with urllib.request.urlopen(req, timeout=60) as response:
      return response.status, response.headers, response.read()
  except urllib.error.HTTPError as e:
    return e.code, e.headers, e.read()


def submit(url, **fields):
  """POSTs a job form -> (HTTP status, JSON answer)."""
  status, _, body = request(url + "api/jobs", *multipart(fields))
  return status, json.loads(body)


def wait_job(url, job_id, timeout=300):
  """Polls a job until it is done or failed -> its final status."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    status = json.loads(request(f"{url}api/jobs/{job_id}")[2])
    if status["state"] in ("done", "error"):
      return status
    time.sleep(0.2)
  pytest.fail(f"job {job_id} did not finish within {timeout} s")
