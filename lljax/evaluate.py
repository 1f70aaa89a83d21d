"""``python -m lljax.evaluate``: a model on a test set, under the papers' protocols and the honest one.

  python -m lljax.evaluate --model converted/llflow_lol --data lol --split test
  python -m lljax.evaluate --model runs/llflow --low_dir eval15/low --gt_dir eval15/high \\
      --protocol llflow --protocol basicsr:crop_border=4 --save_images --output results/llflow

``--model`` is a converted release or a training workdir (latest checkpoint, or ``--step``).
Data come from a prepared TFDS split (``lljax.data.sources.open_source``; the embedded
``embedded_photos/lowlight`` works offline) or from two folders of images paired by file name
(extension ignored). Each image is enhanced whole as the official test scripts do (reflect-padded
to the model's multiple and cropped back), then measured under every ``--protocol`` (default:
the model's paper protocol, see ``lljax.metrics.protocols``) plus ``honest``, which is always
added. Prints a table of means and writes to ``--output``:

* ``metrics.json``: the run (model, data, protocols with their options) and per-image + mean
  metrics (every metric a protocol reports, e.g. LLFlow's three SSIM variants);
* ``metrics.csv``: one row per image and a final ``mean`` row, columns ``<protocol>/<metric>``;
* ``grid.png``: the ``--grid`` worst then best images by the first protocol's PSNR, each row
  "low | output under the first protocol | honest output | ground truth";
* with ``--save_images``: ``images/<protocol>/<name>.png``, what each protocol measured.

Averages are plain means over images, as in every official script. An existing ``--output``
with results is never overwritten unless ``--force``.
"""

import argparse
import csv
import heapq
import io
import json
import math
import os
import pathlib
import sys
import time

import numpy as np

from lljax.enhance import PRECISION_HELP, PRECISIONS
from lljax.utils.kernels import is_kernel_file

ERROR_PREFIX = "lljax.evaluate: error:"
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_RESULT_FILES = ("metrics.json", "metrics.csv", "grid.png")
_THUMB = 256  # grid cells are box-downscaled to at most this many pixels on their longer side


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m lljax.evaluate", description=__doc__.split("\n\n")[0])
  p.add_argument("--model", required=True, help="converted model directory or training workdir")
  p.add_argument("--step", type=int, default=None, help="checkpoint step of a workdir (default: latest)")
  p.add_argument("--data", help="TFDS dataset, e.g. lol, lol_v2/real, embedded_photos/lowlight")
  p.add_argument("--split", default="test", help="TFDS split (default: test)")
  p.add_argument("--data_dir", default=None, help="TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
  p.add_argument("--low_dir", help="folder of low-light images (paired with --gt_dir by file name)")
  p.add_argument("--gt_dir", help="folder of ground-truth images")
  p.add_argument("--protocol", action="append", default=None,
                 help="protocol, e.g. llflow or basicsr:crop_border=4 (repeatable; honest is always added)")
  p.add_argument("--output", default=None, help="results folder (default: eval/<model>/<data>)")
  p.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
  p.add_argument("--save_images", action="store_true", help="save what each protocol measured as PNGs")
  p.add_argument("--grid", type=int, default=4, help="worst and best images in grid.png (0: no grid)")
  p.add_argument("--no_lpips", action="store_true", help="skip LPIPS (faster)")
  p.add_argument("--force", action="store_true", help="replace results already in --output")
  p.add_argument("--precision", choices=PRECISIONS, default="highest",
                 help=PRECISION_HELP)
  p.add_argument("--saturation", type=float, default=0.0,
                 help="INFWIDE: saturate the input as its data loader, clip(s*x, 0, 1)/s (NightShot: 1.2)")
  args = p.parse_args(argv)
  if (args.data is None) == (args.low_dir is None):
    p.error("give either --data (a TFDS dataset) or --low_dir/--gt_dir (folders of pairs)")
  if (args.low_dir is None) != (args.gt_dir is None):
    p.error("--low_dir and --gt_dir go together")
  return args


# ---------------------------------------------------------------------------------------------
# Data.


def _u8(image):
  """uint8 or uint16 HxWx3 -> uint8 (16-bit ground truths are rounded to 8 bits)."""
  if image.dtype == np.uint8:
    return image
  return np.round(image.astype(np.float32) / np.float32(257.0)).astype(np.uint8)


def folder_pairs(low_dir, gt_dir):
  """(name, low path, gt path) for files present in both folders under the same stem."""
  def index(folder):
    folder = pathlib.Path(folder)
    if not folder.is_dir():
      raise FileNotFoundError(f"{folder} is not a folder")
    found = {}
    for path in sorted(folder.iterdir()):
      if path.suffix.lower() in _IMAGE_EXTENSIONS and path.is_file() and not is_kernel_file(path):
        if path.stem in found:
          raise ValueError(f"{folder} has two images named {path.stem!r}: {found[path.stem].name}, {path.name}")
        found[path.stem] = path
    return found

  low, gt = index(low_dir), index(gt_dir)
  missing = sorted(set(low) ^ set(gt))
  if missing:
    where = lambda n: gt_dir if n in low else low_dir
    raise ValueError(f"{len(missing)} images have no partner: " + ", ".join(
        f"{n} (missing in {where(n)})" for n in missing[:5]) + (" ..." if len(missing) > 5 else ""))
  if not low:
    raise ValueError(f"no images in {low_dir}")
  return [(name, low[name], gt[name]) for name in sorted(low)]


def iterate_pairs(args, with_kernels=False):
  """Yields (name, low float32 HxWx3 in [0, 1], gt uint8 HxWx3); also returns the count first.

  ``with_kernels`` (non-blind deblurring models) adds a 4th item, the (kh, kw) blur kernel: the
  example's ``kernel`` field, or for folders the ``<stem>_kernel.png``/``.npy`` next to the low
  image (``lljax.utils.kernels``). ``--saturation s`` saturates the low image as INFWIDE does.
  """
  from lljax.utils.images import read_image, to_float01, to_uint8  # pylint: disable=import-outside-toplevel
  from lljax.utils.kernels import kernel_path_for, read_kernel  # pylint: disable=import-outside-toplevel

  saturation = getattr(args, "saturation", 0.0) or 0.0
  saturate = (lambda x: np.clip(x * saturation, 0.0, 1.0) / saturation) if saturation else (lambda x: x)
  count, pairs = _iterate_pairs(args, read_image, to_float01, to_uint8)
  if not with_kernels:
    return count, ((name, saturate(low), gt) for name, low, gt, _ in pairs)

  def gen():
    for name, low, gt, kernel in pairs:
      if not isinstance(kernel, np.ndarray):  # a low image's path: read the kernel next to it
        try:
          kernel = read_kernel(kernel_path_for(kernel), np.inf)
        except FileNotFoundError as e:
          raise FileNotFoundError(f"{name}: {e}") from e
      yield name, saturate(low), gt, kernel

  return count, gen()


def _iterate_pairs(args, read_image, to_float01, to_uint8):
  """(count, iterator of (name, low, gt, kernel array or the low image's path))."""

  if args.low_dir is not None:
    pairs = folder_pairs(args.low_dir, args.gt_dir)[:args.limit]

    def gen():
      for name, low_path, gt_path in pairs:
        low, _ = read_image(low_path)
        gt, _ = read_image(gt_path)
        if low.shape != gt.shape:
          raise ValueError(f"{low_path} {low.shape[:2]} and {gt_path} {gt.shape[:2]} differ in size")
        yield name, to_float01(low), _u8(gt), low_path

    return len(pairs), gen()
  from lljax.data import pipeline, sources  # pylint: disable=import-outside-toplevel

  source = sources.open_source(args.data, args.split, args.data_dir)
  count = len(source) if args.limit is None else min(args.limit, len(source))

  def gen():
    for ex in pipeline.eval_examples(source, limit=args.limit):
      yield ex["name"], ex["low"][0], to_uint8(ex["normal"][0]), (ex["kernel"][0] if "kernel" in ex else None)

  return count, gen()


# ---------------------------------------------------------------------------------------------
# Results.


class _Extremes:
  """Keeps grid rows of the k lowest and k highest scores."""

  def __init__(self, k):
    self.k = k
    self.low, self.high = [], []  # heaps of (key, counter, score, rows)
    self._count = 0

  def add(self, score, row_fn):
    if self.k <= 0 or not math.isfinite(score):
      return
    self._count += 1
    for heap, key in ((self.low, -score), (self.high, score)):
      if len(heap) < self.k:
        heapq.heappush(heap, (key, self._count, score, row_fn()))
      elif key > heap[0][0]:
        heapq.heapreplace(heap, (key, self._count, score, row_fn()))

  def rows(self):
    """Worst first, then best (an image in both lists appears once)."""
    worst = sorted(self.low, key=lambda e: e[2])
    seen = {e[1] for e in worst}
    best = [e for e in sorted(self.high, key=lambda e: -e[2]) if e[1] not in seen]
    return [e[3] for e in worst] + [e[3] for e in best]


def _thumb(image):
  from lljax import tiling  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel

  image = np.asarray(image)
  factor = max(1, math.ceil(max(image.shape[:2]) / _THUMB))
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / np.float32(255.0)
  return to_uint8(np.clip(tiling.box_downscale(image, factor), 0, 1))


def _mean(values):
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def _format(value, digits):
  if value is None:
    return "-"
  return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def format_table(protocols, means, count):
  lines = [f"{'protocol':<24} {'PSNR':>8} {'SSIM':>7} {'MAE':>7} {'LPIPS':>7}  ({count} images)"]
  for p in protocols:
    m = means[p.spec]
    lines.append(f"{p.spec:<24} {_format(m.get('psnr'), 2):>8} {_format(m.get('ssim'), 4):>7} "
                 f"{_format(m.get('mae'), 4):>7} {_format(m.get('lpips'), 4):>7}  {p.title}")
  return "\n".join(lines)


def _write_text(path, text):
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_csv(path, protocols, rows, means):
  columns = [f"{p.spec}/{k}" for p in protocols for k in sorted(means[p.spec])]
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["name", "height", "width"] + columns)
  for row in rows:
    values = [row[p.spec].get(k) for p in protocols for k in sorted(means[p.spec])]
    writer.writerow([row["name"], row["height"], row["width"]] + [f"{v:.6g}" if v is not None else "" for v in values])
  writer.writerow(["mean", "", ""] + [f"{means[p.spec][k]:.6g}" for p in protocols for k in sorted(means[p.spec])])
  _write_text(path, buffer.getvalue())


def _output_dir(args):
  if args.output:
    return pathlib.Path(args.output)
  data = args.data.replace("/", "_") + "_" + args.split if args.data else pathlib.Path(args.low_dir).name
  return pathlib.Path("eval") / pathlib.Path(args.model).resolve().name / data


def evaluate(args, out=None):
  """Runs the evaluation described by parsed ``args``; returns the results dict."""
  out = out or sys.stdout
  import lljax  # pylint: disable=import-outside-toplevel
  from lljax import checkpoint, models  # pylint: disable=import-outside-toplevel
  from lljax.metrics import protocols as P  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import make_grid, save_png  # pylint: disable=import-outside-toplevel
  from lljax.utils.progress import Progress  # pylint: disable=import-outside-toplevel

  # Everything that can fail fast is checked before the model is loaded.
  model_name = checkpoint.read_model_spec(args.model)["model"]
  specs = args.protocol or [P.PAPER_PROTOCOL.get(model_name, "honest")]
  protocols = [P.get(s) for s in specs]
  if not any(p.name == "honest" for p in protocols):
    protocols.append(P.get("honest"))
  if len({p.spec for p in protocols}) != len(protocols):
    raise ValueError(f"a protocol is given twice: {', '.join(p.spec for p in protocols)}")
  output = _output_dir(args)
  existing = [f for f in _RESULT_FILES if (output / f).exists()]
  if existing and not args.force:
    raise FileExistsError(f"{output} already holds results ({', '.join(existing)}); "
                          "pass --force to replace them or choose another --output")
  needs_kernel = bool(getattr(models.get(model_name), "NEEDS_KERNEL", False))
  count, pairs = iterate_pairs(args, with_kernels=needs_kernel)
  if count == 0:
    raise ValueError("no images to evaluate")
  if not needs_kernel:
    pairs = ((*pair, None) for pair in pairs)
  restorer = lljax.load(args.model, step=args.step, precision=args.precision)
  output.mkdir(parents=True, exist_ok=True)
  if args.save_images:
    for p in protocols:
      (output / "images" / p.spec.replace(":", "_")).mkdir(parents=True, exist_ok=True)
  first = protocols[0]
  extremes = _Extremes(args.grid)
  rows = []
  progress = Progress(count, every_seconds=10, stream=out, unit="image")
  t0 = time.time()
  for i, (name, low, gt, kernel) in enumerate(pairs, start=1):
    if needs_kernel and kernel is None:
      raise ValueError(f"{name}: {model_name} needs a blur kernel and the dataset has none")
    raw = restorer.enhance(low, kernel, clip=False)[0]
    row = {"name": name, "height": int(gt.shape[0]), "width": int(gt.shape[1])}
    measured = {}
    for p in protocols:
      m = p.measure(raw, gt, with_lpips=not args.no_lpips)
      row[p.spec] = m.metrics
      measured[p.spec] = m.image
      if args.save_images:
        image = m.image if m.image.dtype == np.uint8 else np.clip(m.image, 0, 1)
        if image.dtype != np.uint8:
          image = np.round(image * 65535.0).astype(np.uint16)
        save_png(output / "images" / p.spec.replace(":", "_") / f"{name}.png", image)
    honest = measured["honest"]
    cells = lambda: [_thumb(low), _thumb(measured[first.spec]), _thumb(honest), _thumb(gt)] \
        if first.name != "honest" else [_thumb(low), _thumb(honest), _thumb(gt)]
    extremes.add(row[first.spec]["psnr"], cells)
    rows.append(row)
    progress.update(i, **{"psnr": row[first.spec]["psnr"]})
  progress.close()

  means = {p.spec: {k: _mean([r[p.spec].get(k) for r in rows]) for k in rows[0][p.spec]} for p in protocols}
  results = {
      "model": {"dir": str(args.model), "name": restorer.model_name, "config": restorer.config, "step": args.step},
      "data": ({"tfds": args.data, "split": args.split} if args.data else
               {"low_dir": str(args.low_dir), "gt_dir": str(args.gt_dir)}),
      "count": len(rows),
      "protocols": {p.spec: {"name": p.name, "title": p.title, "options": p.options,
                             "lpips_net": None if args.no_lpips else p.lpips_net, "mean": means[p.spec]}
                    for p in protocols},
      "images": rows,
      "seconds": time.time() - t0,
  }
  _write_text(output / "metrics.json", json.dumps(results, indent=1, default=str) + "\n")
  write_csv(output / "metrics.csv", protocols, rows, means)
  if args.grid > 0 and extremes.rows():
    save_png(output / "grid.png", make_grid(extremes.rows()))
  print(format_table(protocols, means, len(rows)), file=out)
  print(f"results: {output}", file=out)
  return results


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    evaluate(args)
  except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError) as e:
    print(f"{ERROR_PREFIX} {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
