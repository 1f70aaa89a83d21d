"""The command line of ``python -m lljax.compare``: its arguments, the output paths (never an
input, never an existing file without ``--overwrite``), reading the photo, target and kernel,
and ``run``, which writes the sheet, its JSON and the stdout table; ``main`` maps errors to
``lljax.compare: error: ...`` and exit status 2.
"""

import argparse
import pathlib
import sys
import types

from lljax.compare.comparison import compare
from lljax.compare.models import model_families, one_line
from lljax.compare.sheet import MAX_COLUMNS, PANEL_WIDTH
from lljax.enhance import OVERLAP, PRECISION_HELP, PRECISIONS, TILE, UsageError

ERROR_PREFIX = "lljax.compare: error:"


def parse_args(argv):
  summary = sys.modules[__package__].__doc__.split("\n\n")[0]  # the first paragraph of lljax.compare's docstring
  p = argparse.ArgumentParser(prog="python -m lljax.compare", description=summary,
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
