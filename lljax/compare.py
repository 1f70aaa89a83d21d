"""``python -m lljax.compare``: several models on one photo, side by side on a labelled contact sheet.

  python -m lljax.compare --models converted/llflow_lol converted/ssflow_lol converted/devudp_lol \\
      IMG_0042.jpg --output sheet.png
  python -m lljax.compare --models converted/* low/779.png --target high/779.png --output 779_sheet.png

The quickest way to choose a model for your photos. Each ``--models`` directory (a converted
release or a training workdir) enhances the photo at full resolution, as ``python -m
lljax.enhance`` would with the same ``--max_megapixels``/``--tile``/``--overlap``/``--exposure``/
``--precision``/``--self_ensemble``. ``--output`` gets a grid of panels ``--panel_width`` pixels
wide (default 512; only the sheet is scaled: Lanczos when shrinking, nearest neighbour when
enlarging): the input first, the ground truth second when ``--target`` is given, then one panel
per model in the order given, each labelled underneath with the model's name and directory, the
seconds its run took (the first run of a photo size includes XLA compilation, and the label
says so; ``--warm`` runs each model once more and also shows that time) and, with ``--target``,
PSNR/SSIM under the protocol of the model's paper (``lljax.metrics.protocols``, e.g. LLFlow's
GT-mean recipe) and under ``honest`` (no ground-truth information; what you would see).
``sheet.json`` beside ``sheet.png`` holds the same numbers (every metric of each protocol, the
load and run times), and a table goes to stdout.

Photos are read as ``lljax.enhance`` reads them (8/16-bit PNG, JPEG with its EXIF orientation,
grayscale); the target must have the photo's size. Non-blind deblurring models (INFWIDE) take
the photo's blur kernel as enhance does: ``photo_kernel.png``/``.npy`` next to the photo, or
``--kernel FILE``; the other models ignore it.

Errors. Problems with the command (no models, a directory that is not a model or does not load,
an unreadable photo or target, a target of another size, a deblurring model without a kernel, an
existing output without ``--overwrite``) stop before any model runs, with one line
``lljax.compare: error: ...`` and exit status 2. A model that fails while it runs keeps its
place on the sheet as a grey panel with the error in its label, is reported on stderr and in the
JSON (``"error"``), and the exit status is then 1. The sheet (PNG, or JPEG for ``.jpg``) and its
JSON are written atomically, never onto the photo, the target or the kernel, and never over an
existing file unless ``--overwrite``.

In Python: ``compare([DIR, ...], image_hwc_float01, target_uint8) -> Comparison(sheet, rows,
panels)``.
"""

import argparse
import math
import pathlib
import sys
import time
import types
from typing import NamedTuple

import numpy as np

from lljax.enhance import OVERLAP, PRECISION_HELP, PRECISIONS, TILE, UsageError, max_pixels

ERROR_PREFIX = "lljax.compare: error:"
PANEL_WIDTH = 512  # default width of a panel on the sheet, pixels
MAX_COLUMNS = 4
PAD = 8  # pixels around and between panels
BACKGROUND, TEXT, ERROR_TEXT, FAILED_FILL = (24, 24, 24), (235, 235, 235), (255, 128, 112), (72, 72, 72)
_MAX_WRAP = 4  # lines one label line may wrap to


class Panel(NamedTuple):
  """One panel of a sheet. ``title``: "input", "target" or the model's label; ``lines``: the
  label's text as drawn; ``image_box``/``label_box``: (top, left, height, width) in sheet pixels."""

  title: str
  lines: tuple
  image_box: tuple
  label_box: tuple


class Comparison(NamedTuple):
  """``sheet``: uint8 [H, W, 3]; ``rows``: one dict per model (see ``compare``); ``panels``:
  input, target (when given), then one ``Panel`` per model in the order of ``rows``."""

  sheet: np.ndarray
  rows: list
  panels: list


# ---------------------------------------------------------------------------------------------
# Models.


def one_line(error):
  """An exception (or text) as one line: whitespace runs become single spaces."""
  return " ".join(str(error).split()) or type(error).__name__


def _not_a_model(directory, error):
  """UsageError for a ``--models`` directory, naming it once."""
  reason = one_line(error if not isinstance(error, KeyError) else f"model.json has no {error}")
  return UsageError(f"--models {directory}: {reason}" if str(directory) not in reason else f"--models: {reason}")


def model_families(directories):
  """[model family package] of each directory's ``model.json`` (fast: nothing is loaded).

  Raises UsageError for no directories or one that is not a model (naming it)."""
  from lljax import checkpoint, models  # pylint: disable=import-outside-toplevel

  if not directories:
    raise UsageError("no models: give one or more --models directories")
  families = []
  for directory in directories:
    try:
      families.append(models.get(checkpoint.read_model_spec(directory)["model"]))
    except (OSError, ValueError, KeyError, TypeError) as e:  # missing, unreadable or foreign model.json
      raise _not_a_model(directory, e) from None
  return families


def load_models(directories, precision="highest"):
  """[(Restorer, seconds to load)] for the directories; UsageError naming one that does not load."""
  import lljax  # pylint: disable=import-outside-toplevel

  model_families(directories)
  loaded = []
  for directory in directories:
    t0 = time.perf_counter()
    try:
      restorer = lljax.load(directory, precision=precision)
    except Exception as e:  # pylint: disable=broad-except  # missing or corrupt params, foreign files
      raise _not_a_model(directory, e) from None
    loaded.append((restorer, time.perf_counter() - t0))
  return loaded


def _timed_run(restorer, image, kernel, options):
  """(raw output HWC float32, seconds, whether XLA compiled a new program during the call)."""
  compiled = []
  previous = restorer.progress
  restorer.progress = lambda program, shape, compiling, tile, tiles: compiled.append(compiling)
  try:
    t0 = time.perf_counter()
    raw = restorer.enhance_image(image, kernel if restorer.needs_kernel else None, **options)
    return raw, time.perf_counter() - t0, any(compiled)
  finally:
    restorer.progress = previous


def paper_protocol(model_name):
  """The protocol spec of the model's paper ("honest" for models without one)."""
  from lljax.metrics import protocols  # pylint: disable=import-outside-toplevel
  return protocols.PAPER_PROTOCOL.get(model_name, "honest")


def measure(raw, target, model_name, lpips=False):
  """{protocol spec: metrics} of a raw output (HWC float, unclipped) against a uint8 HWC target:
  the model's paper protocol and ``honest`` (one entry when they are the same)."""
  from lljax.metrics import protocols  # pylint: disable=import-outside-toplevel
  specs = dict.fromkeys([paper_protocol(model_name), "honest"])
  return {spec: protocols.get(spec).measure(raw, target, with_lpips=lpips).metrics for spec in specs}


def _run_one(directory, restorer, load_seconds, image, target, kernel, options, warm, lpips):
  """(row dict, output HWC float in [0, 1] or None when the model failed)."""
  name = pathlib.Path(directory).resolve().name or str(directory)
  row = {"directory": str(directory), "model": restorer.model_name, "label": f"{restorer.model_name} - {name}",
         "load_seconds": load_seconds, "seconds": None, "includes_compilation": None, "seconds_warm": None,
         "paper_protocol": paper_protocol(restorer.model_name), "metrics": None, "error": None}
  try:
    raw, row["seconds"], row["includes_compilation"] = _timed_run(restorer, image, kernel, options)
    if warm:
      row["seconds_warm"] = _timed_run(restorer, image, kernel, options)[1]
    if target is not None:
      row["metrics"] = measure(raw, target, restorer.model_name, lpips)
  except Exception as e:  # pylint: disable=broad-except  # one failing model keeps its panel
    row["error"] = one_line(e)
    return row, None
  return row, np.clip(raw, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Labels and the sheet.


def _seconds_text(row):
  first = f"{row['seconds']:.2f} s" + (" incl. compile" if row["includes_compilation"] else "")
  if row["seconds_warm"] is None:
    return first
  return f"{row['seconds_warm']:.2f} s warm, first {first}"


def _metric_text(spec, metrics):
  psnr = metrics["psnr"]
  psnr = f"{psnr:.2f} dB" if math.isfinite(psnr) else f"{psnr} dB"
  return f"{spec}: {psnr}, SSIM {metrics['ssim']:.3f}"


def label_lines(row):
  """The text under a model's panel: name - directory, time, then PSNR/SSIM per protocol."""
  if row["error"] is not None:
    return [row["label"], f"failed: {row['error']}"]
  lines = [row["label"], _seconds_text(row)]
  for spec, metrics in (row["metrics"] or {}).items():
    lines.append(_metric_text(spec, metrics))
  return lines


def thumbnail(image, width):
  """HWC float in [0, 1] (or uint8) -> uint8 [round(H * width / W), width, 3]: Pillow's Lanczos
  filter when shrinking, nearest neighbour when enlarging (a small photo shows its pixels)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel

  u8 = to_uint8(np.asarray(image))
  h, w = u8.shape[:2]
  size = (int(width), max(1, round(h * width / w)))
  if size == (w, h):
    return u8
  resample = Image.Resampling.LANCZOS if width < w else Image.Resampling.NEAREST
  return np.asarray(Image.fromarray(u8).resize(size, resample))


def _font(panel_width):
  """Pillow's built-in font (no font file), its size scaled to the panel: 16 px at 512."""
  from PIL import ImageFont  # pylint: disable=import-outside-toplevel
  return ImageFont.load_default(size=max(10, panel_width // 32))


def _pieces(word, font, width):
  """``word`` split into pieces at most ``width`` pixels wide (most words are one piece)."""
  pieces = []
  while font.getlength(word) > width and len(word) > 1:
    n = 1
    while font.getlength(word[:n + 1]) <= width:
      n += 1
    pieces.append(word[:n])
    word = word[n:]
  return pieces + [word]


def _wrap(text, font, width, max_lines):
  """``text`` broken into lines at most ``width`` pixels wide: at spaces, and inside words longer
  than a line; at most ``max_lines`` lines, the last one ending in "..." when text is left over."""
  lines, line = [], ""
  for word in (piece for w in text.split(" ") for piece in _pieces(w, font, width)):
    candidate = f"{line} {word}" if line else word
    if line and font.getlength(candidate) > width:
      lines.append(line)
      candidate = word
    line = candidate
  lines.append(line)
  if len(lines) > max_lines:
    last = lines[max_lines - 1]
    while last and font.getlength(last + "...") > width:
      last = last[:-1]
    lines = lines[:max_lines - 1] + [last + "..."]
  return lines


def _grid(count, columns=None):
  """(rows, columns) for ``count`` panels: at most MAX_COLUMNS wide, rows as even as possible."""
  if columns is None:
    rows = math.ceil(count / MAX_COLUMNS)
    columns = math.ceil(count / rows)
  columns = max(1, min(int(columns), count))
  return math.ceil(count / columns), columns


def render_sheet(cells, panel_width=PANEL_WIDTH, columns=None):
  """Draws panels in a grid -> (uint8 sheet [H, W, 3], [Panel]).

  Args:
    cells: [(title, image, lines, failed)]: ``image`` uint8 [h, panel_width, 3] (all the same
      size) or None (a grey panel; ``failed``: its label drawn in the error colour); ``lines``:
      label text, wrapped to the panel here.
    panel_width: panel width in pixels. columns: grid columns (default: up to MAX_COLUMNS).
  """
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel

  font = _font(panel_width)
  line_height = font.getbbox("Ag")[3] + max(2, panel_width // 128)
  margin = max(3, panel_width // 64)
  text_width = panel_width - 2 * margin
  wrapped = [[w for line in lines for w in _wrap(line, font, text_width, _MAX_WRAP)] for _, _, lines, _ in cells]
  panel_height = next(image.shape[0] for _, image, _, _ in cells if image is not None)
  label_height = max(len(lines) for lines in wrapped) * line_height + 2 * margin
  rows, cols = _grid(len(cells), columns)
  sheet = Image.new("RGB", (cols * panel_width + (cols + 1) * PAD,
                            rows * (panel_height + label_height) + (rows + 1) * PAD), BACKGROUND)
  draw = ImageDraw.Draw(sheet)
  panels = []
  for i, ((title, image, _, failed), lines) in enumerate(zip(cells, wrapped)):
    row, col = divmod(i, cols)
    top, left = PAD + row * (panel_height + label_height + PAD), PAD + col * (panel_width + PAD)
    if image is None:
      draw.rectangle([left, top, left + panel_width - 1, top + panel_height - 1], fill=FAILED_FILL)
    else:
      sheet.paste(Image.fromarray(image), (left, top))
    for j, line in enumerate(lines):
      y = top + panel_height + margin + j * line_height
      draw.text((left + margin, y), line, font=font, fill=ERROR_TEXT if failed else TEXT)
    panels.append(Panel(title, tuple(lines), (top, left, panel_height, panel_width),
                        (top + panel_height, left, label_height, panel_width)))
  return np.asarray(sheet), panels


# ---------------------------------------------------------------------------------------------
# The comparison.


def _as_float_image(image, name):
  """uint8/uint16/float HWC (or gray HW) -> float32 HWC RGB in [0, 1]."""
  from lljax.utils.images import to_float01  # pylint: disable=import-outside-toplevel

  x = np.asarray(image)
  x = to_float01(x) if x.dtype in (np.uint8, np.uint16) else x.astype(np.float32)
  if x.ndim == 2:
    x = np.repeat(x[..., None], 3, axis=-1)
  if x.ndim != 3 or x.shape[-1] != 3:
    raise UsageError(f"the {name} must be an HxWx3 RGB image, got shape {x.shape}")
  return x


def _check_inputs(image, target, exposure):
  """(float image, uint8 target or None); UsageError for a target of another size or a bad exposure."""
  from lljax.imaging.exposure import target_of  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel

  try:
    target_of(exposure)
  except ValueError as e:
    raise UsageError(f"--exposure: {e}") from None
  image = _as_float_image(image, "photo")
  if target is not None:
    target = to_uint8(_as_float_image(target, "target"))
    if target.shape != image.shape:
      raise UsageError(f"the target is {target.shape[1]}x{target.shape[0]} pixels and the photo "
                       f"{image.shape[1]}x{image.shape[0]}: a ground truth must have the photo's size")
  return image, target


def _check_kernel(kernel, loaded):
  """UsageError when a deblurring model has no (valid) kernel."""
  from lljax.utils.kernels import check_kernel  # pylint: disable=import-outside-toplevel

  for directory, (restorer, _) in loaded:
    if not restorer.needs_kernel:
      continue
    if kernel is None:
      raise UsageError(f"--models {directory}: {restorer.model_name} is a non-blind deblurring model and needs "
                       "the photo's blur kernel (--kernel FILE, or photo_kernel.png/.npy next to the photo)")
    try:
      check_kernel(kernel, restorer.family.KERNEL_SIZE, "--kernel")
    except ValueError as e:
      raise UsageError(str(e)) from None


def _cells(image, target, rows, outputs, panel_width, image_name, target_name):
  """``render_sheet``'s cells: input, target (if any), then each model's output or failure."""
  h, w = image.shape[:2]
  named = lambda what, name: f"{what}: {name}" if name else what
  cells = [("input", thumbnail(image, panel_width), [named("input", image_name), f"{w}x{h} pixels"], False)]
  if target is not None:
    cells.append(("target", thumbnail(target, panel_width), [named("target", target_name), "ground truth"], False))
  for row, output in zip(rows, outputs):
    failed = output is None
    cells.append((row["label"], None if failed else thumbnail(output, panel_width), label_lines(row), failed))
  return cells


def compare(model_dirs, image, target=None, kernel=None, *, panel_width=PANEL_WIDTH, columns=None,
            precision="highest", max_megapixels=None, warm=False, lpips=False, image_name=None,
            target_name=None, log=None, **enhance_options):
  """Runs every model on one photo and draws the labelled contact sheet.

  Args:
    model_dirs: model directories (converted releases or training workdirs), in panel order.
    image: the photo, HWC (or HW gray) float in [0, 1], uint8 or uint16.
    target: optional ground truth of the same size (uint8, uint16 or float in [0, 1]): adds its
      panel and each model's PSNR/SSIM under its paper's protocol and ``honest``.
    kernel: the photo's (kh, kw) blur kernel, for non-blind deblurring models (ignored by others).
    panel_width: panel width on the sheet in pixels (the models run at full resolution).
    columns: grid columns (default: at most MAX_COLUMNS, rows as even as possible).
    precision: of every model (``lljax.load``). max_megapixels: tile above this (default: each
      model's own, as ``lljax.enhance``). warm: run each model a second time and report that time.
    lpips: add LPIPS to the metrics (loads the LPIPS network). image_name, target_name: shown in
      those panels' labels. log: optional ``callable(str)`` told about progress.
    **enhance_options: passed to ``Restorer.enhance_image`` (tile, overlap, exposure,
      self_ensemble, bucket, ...).

  Returns:
    ``Comparison(sheet, rows, panels)``: ``sheet`` uint8 [H, W, 3]; ``rows`` one dict per model:
    ``directory``, ``model``, ``label``, ``load_seconds``, ``seconds`` (the first run, which
    includes XLA compilation when ``includes_compilation``), ``seconds_warm`` (None unless
    ``warm``), ``paper_protocol``, ``metrics`` ({protocol spec: {"psnr", "ssim", ...}} or None
    without a target) and ``error`` (None, or why the model failed: its panel is grey).

  Raises:
    UsageError: no models, a directory that is not a model, a target of another size, a
      deblurring model without a kernel, a bad ``exposure``; nothing has run then.
  """
  log = log or (lambda text: None)
  model_dirs = list(model_dirs)
  image, target = _check_inputs(image, target, enhance_options.get("exposure"))
  loaded = list(zip(model_dirs, load_models(model_dirs, precision)))
  _check_kernel(kernel, loaded)
  rows, outputs = [], []
  for i, (directory, (restorer, load_seconds)) in enumerate(loaded, start=1):
    options = {"max_pixels": max_pixels(restorer.family, max_megapixels), **enhance_options, "clip": False}
    row, output = _run_one(directory, restorer, load_seconds, image, target, kernel, options, warm, lpips)
    log(f"{i}/{len(loaded)} {row['label']}: " + (f"failed: {row['error']}" if row["error"] else _seconds_text(row)))
    rows.append(row)
    outputs.append(output)
  cells = _cells(image, target, rows, outputs, panel_width, image_name, target_name)
  sheet, panels = render_sheet(cells, panel_width, columns)
  return Comparison(sheet, rows, panels)


# ---------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m lljax.compare", description=__doc__.split("\n\n")[0],
                              usage="%(prog)s --models DIR [DIR ...] photo --output SHEET [options]")
  p.add_argument("photo", nargs="?", help="the photo to enhance (may follow the --models directories)")
  p.add_argument("--models", nargs="+", required=True, metavar="DIR",
                 help="converted model directories or training workdirs, in panel order")
  p.add_argument("--output", required=True, help="the contact sheet (.png or .jpg); its JSON goes beside it")
  p.add_argument("--target", default=None, help="ground truth of the photo: adds PSNR/SSIM to every panel")
  p.add_argument("--kernel", default=None,
                 help="deblurring models: the photo's blur kernel (PNG/.npy; default: <stem>_kernel.png or "
                      ".npy next to the photo)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing sheet and JSON (never the photo)")
  p.add_argument("--panel_width", type=int, default=PANEL_WIDTH,
                 help=f"panel width on the sheet in pixels (default {PANEL_WIDTH}; models run at full size)")
  p.add_argument("--columns", type=int, default=None, help=f"grid columns (default: up to {MAX_COLUMNS})")
  p.add_argument("--warm", action="store_true", help="run each model twice and also show the second (warm) time")
  p.add_argument("--lpips", action="store_true", help="with --target: add LPIPS to the JSON")
  p.add_argument("--precision", choices=PRECISIONS, default="highest", help=PRECISION_HELP)
  p.add_argument("--max_megapixels", type=float, default=None,
                 help="larger photos are processed in tiles (default: each model's, 1.0; INFWIDE 4.0)")
  p.add_argument("--tile", type=int, default=TILE, help=f"tile side in pixels (default {TILE})")
  p.add_argument("--overlap", type=int, default=OVERLAP, help=f"tile overlap in pixels (default {OVERLAP})")
  p.add_argument("--exposure", default=None,
                 help="'auto' (mean brightness 0.43) or a target mean brightness in (0, 1) for every output; "
                      "default: each model's own")
  p.add_argument("--self_ensemble", action="store_true", help="average over 8 flips/transposes (8x slower)")
  p.add_argument("--jpeg_quality", type=int, default=95, help="for a .jpg sheet")
  args = p.parse_args(argv)
  if args.photo is None:  # `--models A B photo.jpg`: --models took the photo too
    if len(args.models) < 2 or pathlib.Path(args.models[-1]).is_dir():
      p.error("give the photo after the --models directories (or before --models)")
    args.photo = args.models.pop()
  bad_megapixels = args.max_megapixels is not None and args.max_megapixels <= 0
  if bad_megapixels or args.tile < 16 or not 0 <= args.overlap < args.tile:
    p.error("need --max_megapixels > 0, --tile >= 16 and 0 <= --overlap < --tile")
  if args.panel_width < 32 or (args.columns is not None and args.columns < 1):
    p.error("need --panel_width >= 32 and --columns >= 1")
  return args


def _same_file(a, b):
  a, b = pathlib.Path(a), pathlib.Path(b)
  try:
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
  except OSError:
    return False


def output_paths(args):
  """(sheet path, JSON path, format); UsageError for a bad suffix, an input or an existing file."""
  sheet = pathlib.Path(args.output)
  fmt = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}.get(sheet.suffix.lower())
  if fmt is None:
    raise UsageError(f"--output {sheet}: the sheet is a .png or .jpg file")
  report = sheet.with_suffix(".json")
  for path in (sheet, report):
    for name, source in (("photo", args.photo), ("target", args.target), ("kernel", args.kernel)):
      if source is not None and _same_file(path, source):
        raise UsageError(f"--output: {path} is the {name}; refusing to overwrite it")
    if path.exists() and not args.overwrite:
      raise UsageError(f"{path} exists; pass --overwrite to replace it or choose another --output")
  return sheet, report, fmt


def _read(path, what):
  """A photo file -> its pixels (uint8/uint16 HWC RGB); UsageError when it cannot be read."""
  from lljax.utils.images import read_image  # pylint: disable=import-outside-toplevel
  try:
    return read_image(path)[0]
  except FileNotFoundError:
    raise UsageError(f"{what} {path} does not exist") from None
  except (OSError, ValueError) as e:  # ImageReadError is a ValueError
    message = str(e) if str(path) in str(e) else f"{path}: {e}"
    raise UsageError(f"{what}: {message}") from None


def _kernel(args, families):
  """The photo's blur kernel when a model needs one, else None; UsageError if it is missing."""
  from lljax.utils.kernels import kernel_path_for, read_kernel  # pylint: disable=import-outside-toplevel

  deblurring = [(d, f) for d, f in zip(args.models, families) if getattr(f, "NEEDS_KERNEL", False)]
  if not deblurring:
    if args.kernel:
      raise UsageError("--kernel: none of the --models is a deblurring model that takes kernels")
    return None
  directory, family = deblurring[0]
  try:
    return read_kernel(args.kernel or kernel_path_for(args.photo), min(f.KERNEL_SIZE for _, f in deblurring))
  except (OSError, ValueError) as e:
    raise UsageError(f"--models {directory}: {family.__name__.rsplit('.', 1)[-1]} is a non-blind deblurring "
                     f"model and needs the photo's blur kernel: {e}") from None


def format_table(rows):
  """The stdout table: one line per model (time, then paper-protocol and honest PSNR/SSIM)."""
  lines = [f"{'model':<32} {'seconds':>9}  {'paper protocol':<16} {'PSNR':>6} {'SSIM':>6}  "
           f"{'honest PSNR':>11} {'SSIM':>6}"]
  for row in rows:
    if row["error"]:
      lines.append(f"{row['label']:<32} failed: {row['error']}")
      continue
    seconds = f"{row['seconds']:.2f}" + ("*" if row["includes_compilation"] else " ")
    metrics = row["metrics"] or {}
    paper, honest = metrics.get(row["paper_protocol"], {}), metrics.get("honest", {})
    value = lambda m, k, d: f"{m[k]:.{d}f}" if k in m else "-"
    lines.append(f"{row['label']:<32} {seconds:>9}  {row['paper_protocol']:<16} {value(paper, 'psnr', 2):>6} "
                 f"{value(paper, 'ssim', 3):>6}  {value(honest, 'psnr', 2):>11} {value(honest, 'ssim', 3):>6}")
  lines.append("* the first run of this photo size, including XLA compilation (--warm times a second run)")
  return "\n".join(lines)


def run(args, out=None, err=None):
  """Compares the models ``args`` names and writes the sheet; returns 0, or 1 if a model failed."""
  from lljax import checkpoint, enhance  # pylint: disable=import-outside-toplevel

  out, err = out or sys.stdout, err or sys.stderr
  sheet_path, report_path, fmt = output_paths(args)
  families = model_families(args.models)
  image = _read(args.photo, "photo")
  target = _read(args.target, "--target") if args.target else None
  kernel = _kernel(args, families)
  print(f"comparing {len(args.models)} model{'s' if len(args.models) != 1 else ''} on {args.photo}", file=out)
  result = compare(args.models, image, target, kernel, panel_width=args.panel_width, columns=args.columns,
                   precision=args.precision, max_megapixels=args.max_megapixels, warm=args.warm,
                   lpips=args.lpips, image_name=pathlib.Path(args.photo).name,
                   target_name=pathlib.Path(args.target).name if args.target else None,
                   log=lambda text: print(text, file=out, flush=True), tile=args.tile, overlap=args.overlap,
                   exposure=args.exposure, self_ensemble=args.self_ensemble)
  protect = [p for p in (args.photo, args.target, args.kernel) if p]
  writer = types.SimpleNamespace(format=fmt, jpeg_quality=args.jpeg_quality)
  enhance.write(sheet_path, result.sheet, writer, protect)
  checkpoint.write_json(report_path, {
      "photo": str(args.photo), "target": args.target, "kernel": args.kernel, "sheet": str(sheet_path),
      "size": list(result.sheet.shape[:2]), "panel_width": args.panel_width,
      "options": {k: getattr(args, k) for k in ("precision", "max_megapixels", "tile", "overlap", "exposure",
                                                 "self_ensemble", "warm")},
      "models": result.rows,
      "panels": [p._asdict() for p in result.panels]})
  for row in result.rows:
    if row["error"]:
      print(f"{ERROR_PREFIX} --models {row['directory']}: {row['model']} failed: {row['error']}", file=err)
  print(format_table(result.rows), file=out)
  print(f"sheet: {sheet_path} (and {report_path.name})", file=out)
  return 1 if any(row["error"] for row in result.rows) else 0


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    return run(args)
  except (UsageError, OSError, ValueError) as e:
    print(f"{ERROR_PREFIX} {one_line(e)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
