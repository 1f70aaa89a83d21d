"""The demo's HTTP server (standard library only): the page and a small JSON API.

  GET  /                          the page (``page.html``: no external resources, works offline)
  GET  /api/models                {"models": [{id, label, directory, model, error, controls}], ...}
  POST /api/jobs                  multipart form: model (id), image (file), kernel (file, INFWIDE),
                                  temperature, exposure -> 202 {job status} or 400 {"error": one line}
  GET  /api/jobs/ID               {state: queued|running|done|error, stage, elapsed, ahead, width,
                                  height, seconds, compiled, result, before, after, error}
  GET  /api/jobs/ID/result.png    the full-size result (the input's bit depth, gray and alpha kept)
  GET  /api/jobs/ID/before.png    the slider's pictures (8-bit, at most 2048 px on a side)
  GET  /api/jobs/ID/after.png

Uploads are decoded in memory and results kept in memory: the server writes no file anywhere.
"""

import email.message
import email.parser
import email.policy
import http
import http.server
import importlib.resources
import json
import math
import re
import threading
import urllib.parse

from lljax.demo import catalog as catalog_lib
from lljax.demo import jobs as jobs_lib
from lljax.utils.images import decode_image
from lljax.utils.kernels import decode_kernel

MAX_UPLOAD_MB = 256
_JOB_FILE = re.compile(r"^/api/jobs/(\w+)/(result|before|after)\.png$")
_JOB = re.compile(r"^/api/jobs/(\w+)$")


class BadRequest(ValueError):
  """A request the page should show as an error (HTTP status + one line)."""

  def __init__(self, message, status=http.HTTPStatus.BAD_REQUEST):
    super().__init__(catalog_lib.one_line(message))
    self.status = status


def parse_form(content_type, body):
  """A multipart/form-data body -> {field: (file name or None, bytes)}."""
  header = email.message.Message()
  header["content-type"] = content_type or ""
  boundary = header.get_param("boundary")
  if header.get_content_type() != "multipart/form-data" or not boundary:
    raise BadRequest("send the photo as multipart/form-data (a form with an 'image' file field)")
  fields = {}
  for part in body.split(b"--" + boundary.encode("latin-1"))[1:-1]:
    head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
    headers = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
    name = headers.get_param("name", header="content-disposition")
    if name:
      fields[name] = (headers.get_filename(), data.removesuffix(b"\r\n"))
  return fields


def _number(fields, name):
  """A float form field, or None when absent or empty."""
  text = fields.get(name, (None, b""))[1].decode("utf-8", "replace").strip()
  if not text:
    return None
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not math.isfinite(value):
    raise BadRequest(f"{name} must be a number, got {text!r}")
  return value


def _kernel(fields, entry, controls):
  """The validated blur kernel a kernel model needs (None for the others)."""
  name, data = fields.get("kernel", (None, b""))
  if not controls["kernel"]:
    if data:
      raise BadRequest(f"{entry.spec['model']} does not take a blur kernel")
    return None
  if not data:
    raise BadRequest(f"{entry.spec['model']} is a non-blind deblurring model: choose the photo's blur "
                     "kernel image (PNG or .npy) first")
  return decode_kernel(data, name or "kernel", entry.family.KERNEL_SIZE)


def make_job(fields, entries, worker):
  """Validates a submitted form and decodes its files -> a queued-to-be Job (BadRequest if not)."""
  model = fields.get("model", (None, b""))[1].decode("utf-8", "replace").strip()
  if not model.isdigit() or int(model) >= len(entries):
    raise BadRequest(f"unknown model {model!r}: choose one of the listed models")
  entry = entries[int(model)]
  if entry.error:
    raise BadRequest(entry.error)
  name, data = fields.get("image", (None, b""))
  name = (name or "photo").replace("\\", "/").rsplit("/", 1)[-1]
  if not data:
    raise BadRequest(f"{name}: no photo received (the file is empty)")
  rgb, info = decode_image(data, name)
  controls = catalog_lib.controls(entry.family)
  kernel = _kernel(fields, entry, controls)
  options = {}
  for control in ("temperature", "exposure"):
    value = _number(fields, control)
    if value is not None and control not in controls:
      raise BadRequest(f"{entry.spec['model']} has no {control} setting")
    if value is not None:
      options[control] = value
  return jobs_lib.Job(worker.new_id(), entry, name, rgb, info, kernel, options)


class Handler(http.server.BaseHTTPRequestHandler):
  """Routes of the module docstring; every error is JSON {"error": one line}."""

  server_version = "lljax-demo"
  protocol_version = "HTTP/1.1"

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    pass  # one line per poll would drown the terminal; errors reach the page

  def _send(self, status, body, content_type, headers=()):
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Cache-Control", "no-store")
    for key, value in headers:
      self.send_header(key, value)
    self.end_headers()
    self.wfile.write(body)

  def _json(self, value, status=http.HTTPStatus.OK):
    self._send(status, json.dumps(value).encode(), "application/json")

  def _error(self, error):
    self._json({"error": str(error)}, getattr(error, "status", http.HTTPStatus.BAD_REQUEST))

  def do_GET(self):  # pylint: disable=invalid-name
    path = urllib.parse.urlsplit(self.path).path
    try:
      if path in ("/", "/index.html"):
        self._send(http.HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
      elif path == "/api/models":
        self._json({"models": [e.describe() for e in self.server.entries], "max_upload_mb": MAX_UPLOAD_MB})
      elif match := _JOB.match(path):
        job = self._job(match.group(1))
        self._json(job.status(self.server.worker.ahead(job)))
      elif match := _JOB_FILE.match(path):
        self._job_file(self._job(match.group(1)), match.group(2))
      else:
        raise BadRequest(f"no such page: {path}", http.HTTPStatus.NOT_FOUND)
    except BadRequest as e:
      self._error(e)

  def _job(self, job_id):
    job = self.server.worker.get(job_id)
    if job is None:
      raise BadRequest(f"no job {job_id} (results are kept for the last {self.server.worker.keep} photos)",
                       http.HTTPStatus.NOT_FOUND)
    return job

  def _job_file(self, job, which):
    if job.state != "done":
      raise BadRequest(f"{job.name} is not done ({job.state})", http.HTTPStatus.CONFLICT)
    headers = ()
    if which == "result":
      download = job.name.rsplit(".", 1)[0] + "_enhanced.png"
      ascii_name = download.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
      headers = (("Content-Disposition", f"attachment; filename=\"{ascii_name}\"; "
                                         f"filename*=UTF-8''{urllib.parse.quote(download)}"),)
    self._send(http.HTTPStatus.OK, job.result["png" if which == "result" else which], "image/png", headers)

  def do_POST(self):  # pylint: disable=invalid-name
    path = urllib.parse.urlsplit(self.path).path
    try:
      length = int(self.headers.get("Content-Length") or 0)
      if length > MAX_UPLOAD_MB << 20:
        self.close_connection = True  # the body is not read
        raise BadRequest(f"upload of {length / 2**20:.0f} MB is too large (at most {MAX_UPLOAD_MB} MB)",
                         http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
      body = self.rfile.read(length)
      if path != "/api/jobs":
        raise BadRequest(f"no such endpoint: POST {path}", http.HTTPStatus.NOT_FOUND)
      job = make_job(parse_form(self.headers.get("Content-Type"), body), self.server.entries, self.server.worker)
      self.server.worker.submit(job)
      self._json(job.status(self.server.worker.ahead(job)), http.HTTPStatus.ACCEPTED)
    except ValueError as e:  # BadRequest, ImageReadError, kernel errors
      self._error(e if isinstance(e, BadRequest) else BadRequest(e))


class DemoServer(http.server.ThreadingHTTPServer):
  """The demo on ``host:port`` (port 0: a free one); ``start()`` serves from a background thread.

  Attributes:
    entries: the catalog. worker: the jobs.Worker. url: ``http://host:port/``.
  """

  daemon_threads = True

  def __init__(self, entries, host="127.0.0.1", port=7860, max_megapixels=None):
    super().__init__((host, port), Handler)
    self.entries, self.worker = entries, jobs_lib.Worker(max_megapixels)
    self.page = importlib.resources.files("lljax.demo").joinpath("page.html").read_bytes()
    self._thread = None

  @property
  def port(self):
    return self.server_address[1]

  @property
  def url(self):
    host = self.server_address[0]
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}/"

  def start(self):
    self._thread = threading.Thread(target=self.serve_forever, name="lljax-demo-http", daemon=True)
    self._thread.start()
    return self

  def close(self):
    """Stops serving, frees the port and stops the worker (after its running photo, at most 5 s)."""
    if self._thread is not None:
      self.shutdown()
      self._thread.join()
    self.server_close()
    self.worker.close()


def serve(model_dirs, host="127.0.0.1", port=7860, max_megapixels=None):
  """Starts the demo for ``model_dirs`` in background threads; returns the running DemoServer.

  Raises ValueError when no directory is a model and OSError when the port cannot be bound.
  """
  return DemoServer(catalog_lib.catalog(model_dirs), host, port, max_megapixels).start()
