"""``python -m lljax.enhance``: enhance your own photos with a converted or trained model.

  python -m lljax.enhance --model converted/llflow_lol photos/ --output enhanced/
  python -m lljax.enhance --model runs/llflow 'night/*.jpg' IMG_0042.png --output out --bit_depth 16

Inputs are files, folders (their images; ``--recursive`` descends) and globs. Each image is
written to ``--output`` under its own name (relative path for folder inputs) as a PNG (8-bit, or
``--bit_depth 16``; ``--format jpg`` for JPEG). Any size works: whole images are reflect-padded
to a shape bucket (``--bucket``, so a folder of mixed sizes compiles a handful of programs) and
cropped back; images above ``--max_megapixels`` (default: the model's, 1.0 for most) are
processed in overlapping tiles with blended seams, so memory stays bounded (a 24-megapixel photo
runs on a laptop). For the flows that decode from a prior map (LLFlow's and SSFlow's colour
map) the map of a tiled image comes from one pass over a downscaled copy of the whole photo
(``--prior global``, their default; ``--prior tile`` uses each tile's own), so all tiles decode
from the same colour estimate; other models refuse ``--prior``. Every other whole-image statistic
(instance-norm moments, channel attention, noise estimates) comes from that pass too.
``--no_tiles`` enhances whole and reports images above the budget instead. See ``lljax.api``.

Files: 8/16-bit PNG, JPEG (EXIF orientation applied) and everything Pillow reads; grayscale
inputs give grayscale outputs (ITU-R 601 luma of the enhanced RGB) and alpha channels are carried
over unchanged. Safety: an input is never overwritten, the output folder may not be an input
folder unless ``--force``, existing outputs are skipped unless ``--overwrite``, writes are atomic;
unreadable files are reported and skipped, and the exit status is then 1 (2 for usage errors).
``--self_ensemble`` averages the 8 flips/transposes (8x slower).

Videos (.mp4 .mov .avi .mkv inputs; folders or globs of frames with ``--video``) are enhanced by
``lljax.video`` into one video each, with the same frame rate, size and frame count, the global
prior and statistics smoothed over ``--window`` frames and restarted at scene cuts.

Non-blind deblurring models (INFWIDE) need each photo's blur kernel: ``photo_kernel.png`` (8/16-bit
grayscale) or ``photo_kernel.npy`` (2-D float) next to ``photo.jpg``, or one ``--kernel FILE`` for
all inputs; any odd or even size up to the model's support (37x37), normalised to unit sum. Folder
scans skip files named ``*_kernel.*``. A missing, empty, negative or too large kernel is reported
for that photo, which is skipped.
"""

import argparse
import glob
import os
import pathlib
import sys

import numpy as np

from lljax import video

PRECISIONS = ("highest", "default", "bfloat16")  # lljax.nn.precision.SETTINGS, without importing jax
PRECISION_HELP = ("convolution/matmul precision: highest (float32, reproduces the official outputs; default), "
                  "default (the backend's: TF32 or bfloat16 passes on GPU/TPU, faster) or bfloat16")

ERROR_PREFIX = "lljax.enhance: error:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N")
TILE, OVERLAP = 512, 128  # default tile side and overlap in pixels


def max_pixels(family, max_megapixels=None):
  """Images with more pixels than this are processed in tiles (default: the model's, 1.0 MP)."""
  # Whole images are exact; tiles share the whole image's context but approximate near seams.
  return int((max_megapixels or getattr(family, "MAX_MEGAPIXELS", 1.0)) * 1e6)


class UsageError(ValueError):
  """A problem with the command line as a whole (nothing is processed)."""


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m lljax.enhance", description=__doc__.split("\n\n")[0])
  p.add_argument("inputs", nargs="+", help="image files, folders or globs; or videos (see lljax.video)")
  p.add_argument("--model", required=True, help="converted model directory or training workdir")
  p.add_argument("--step", type=int, default=None, help="checkpoint step of a workdir (default: latest)")
  p.add_argument("--output", required=True, help="folder for the enhanced images")
  p.add_argument("--recursive", action="store_true", help="descend into subfolders of folder inputs")
  p.add_argument("--format", choices=("png", "jpg"), default="png", help="output format (default png)")
  p.add_argument("--bit_depth", type=int, choices=(8, 16), default=8, help="PNG bit depth (default 8)")
  p.add_argument("--suffix", default="", help="appended to each output file name, e.g. _enhanced")
  p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
  p.add_argument("--force", action="store_true", help="allow --output to be an input folder")
  p.add_argument("--self_ensemble", action="store_true", help="average over 8 flips/transposes")
  p.add_argument("--precision", choices=PRECISIONS, default="highest",
                 help=PRECISION_HELP)
  p.add_argument("--max_megapixels", type=float, default=None,
                 help="larger images are processed in tiles (default: the model's, 1.0; INFWIDE 4.0)")
  p.add_argument("--no_tiles", action="store_true",
                 help="enhance every image whole; images above --max_megapixels are reported and skipped")
  p.add_argument("--tile", type=int, default=TILE, help=f"tile side in pixels (default {TILE})")
  p.add_argument("--overlap", type=int, default=OVERLAP, help=f"tile overlap in pixels (default {OVERLAP})")
  p.add_argument("--bucket", type=int, default=32,
                 help="pad whole images to a multiple of this to share compiled shapes (default 32)")
  p.add_argument("--prior", choices=("global", "tile"), default=None,
                 help="LLFlow and SSFlow, tiled images: prior map from the downscaled whole image "
                      "(their default) or per tile; an error for other models")
  p.add_argument("--temperature", type=float, default=0.0, help="flows: sampling temperature (default 0)")
  p.add_argument("--exposure", default=None,
                 help="'auto' (mean brightness 0.43) or a target mean brightness in (0, 1) for each output; "
                      "default: the model's own")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--jpeg_quality", type=int, default=95)
  p.add_argument("--kernel", default=None,
                 help="deblurring models: one blur kernel file (PNG/.npy) for every input "
                      "(default: <stem>_kernel.png or .npy next to each image)")
  video.add_arguments(p)
  args = p.parse_args(argv)
  if args.format == "jpg" and args.bit_depth == 16:
    p.error("JPEG is 8-bit; use --format png for --bit_depth 16")
  bad_megapixels = args.max_megapixels is not None and args.max_megapixels <= 0
  if bad_megapixels or args.tile < 16 or not 0 <= args.overlap < args.tile:
    p.error("need --max_megapixels > 0, --tile >= 16 and 0 <= --overlap < --tile")
  return args


# ---------------------------------------------------------------------------------------------
# Planning: which file goes where.


def _folder_images(folder, recursive, exclude=None):
  """Images in ``folder`` (hidden files, kernel files and anything under ``exclude`` left out)."""
  from lljax.utils.kernels import is_kernel_file  # pylint: disable=import-outside-toplevel

  pattern = "**/*" if recursive else "*"
  exclude = exclude.resolve() if exclude is not None else None
  return sorted(p for p in folder.glob(pattern)
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_kernel_file(p)
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                and not (exclude is not None and p.resolve().is_relative_to(exclude)))


def collect_inputs(inputs, recursive=False, output=None):
  """Expands files, folders and globs -> [(path, relative output name)], plus input folders.

  Folder scans skip ``output`` (e.g. ``photos/ --output photos/enhanced --recursive`` run twice).
  """
  jobs, folders = [], []
  for spec in inputs:
    path = pathlib.Path(spec)
    if path.is_dir():
      folders.append(path)
      jobs += [(p, p.relative_to(path)) for p in _folder_images(path, recursive, output)]
    elif path.is_file():
      jobs.append((path, pathlib.Path(path.name)))
      folders.append(path.parent)
    elif glob.has_magic(spec):
      matches = sorted(pathlib.Path(m) for m in glob.glob(spec, recursive=True))
      files = [m for m in matches if m.is_file() and not _is_kernel(m)]
      if not files:
        raise UsageError(f"no files match {spec!r}")
      jobs += [(m, pathlib.Path(m.name)) for m in files]
      folders += sorted({m.parent for m in files})
    else:
      raise UsageError(f"{spec} does not exist")
  if not jobs:
    raise UsageError("no images found in " + ", ".join(inputs))
  return jobs, folders


def _is_kernel(path):
  from lljax.utils.kernels import is_kernel_file  # pylint: disable=import-outside-toplevel
  return is_kernel_file(path)


def _kernel_for(source, args, max_size):
  """The validated blur kernel of ``source`` (``--kernel`` or the file next to it)."""
  from lljax.utils.kernels import kernel_path_for, read_kernel  # pylint: disable=import-outside-toplevel
  return read_kernel(args.kernel if args.kernel else kernel_path_for(source), max_size)


def _same(a, b):
  try:
    return a.exists() and b.exists() and os.path.samefile(a, b)
  except OSError:
    return False


def plan(args):
  """[(input path, output path)]; raises UsageError for collisions or a forbidden output folder."""
  output = pathlib.Path(args.output)
  jobs, folders = collect_inputs(args.inputs, args.recursive, output)
  if not args.force:
    for folder in folders:
      if output.resolve() == folder.resolve() or _same(output, folder):
        raise UsageError(f"--output {output} is the input folder {folder}; choose another folder "
                         "(or pass --force: inputs are still never overwritten)")
  extension = ".jpg" if args.format == "jpg" else ".png"
  planned, seen = [], {}
  for source, rel in jobs:
    target = output / rel.with_name(rel.stem + args.suffix + extension)
    key = os.path.normcase(str(target.resolve()))
    if key in seen and seen[key] != source:
      raise UsageError(f"{seen[key]} and {source} would both be written to {target}; "
                       "rename one or use --suffix")
    if key not in seen:
      seen[key] = source
      planned.append((source, target))
  return planned


# ---------------------------------------------------------------------------------------------
# Pixels.


def to_output(rgb, info, bit_depth):
  """Enhanced float RGB [H, W, 3] + the input's info -> the array to write (gray/alpha kept)."""
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel

  image = rgb
  if info["mode"] in _GRAY_MODES:
    image = np.clip(rgb @ np.asarray([0.299, 0.587, 0.114], np.float32), 0.0, 1.0)
  image = np.round(np.clip(image, 0, 1) * 65535.0).astype(np.uint16) if bit_depth == 16 else to_uint8(image)
  alpha = info.get("alpha")
  if alpha is not None:
    if alpha.dtype != image.dtype:
      alpha = (alpha.astype(np.uint16) * 257 if image.dtype == np.uint16
               else np.round(alpha / 257.0).astype(np.uint8))
    image = np.concatenate([image[..., None] if image.ndim == 2 else image, alpha[..., None]], axis=-1)
  return image


def write(path, image, args, protect):
  """Writes atomically; never onto a protected (input) path."""
  from lljax.utils import images as io  # pylint: disable=import-outside-toplevel

  path.parent.mkdir(parents=True, exist_ok=True)
  if args.format == "png":
    io.save_png(path, image, protect=protect)
    return None
  from PIL import Image  # pylint: disable=import-outside-toplevel

  note = None
  if image.ndim == 3 and image.shape[-1] in (2, 4):
    image, note = image[..., :-1], "alpha dropped (JPEG has none)"
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if any(os.path.exists(p) and _same(path, pathlib.Path(p)) for p in protect):
    raise ValueError(f"refusing to overwrite protected path {path}")
  tmp = path.with_name(f".{path.name}.tmp")
  try:
    Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="JPEG", quality=args.jpeg_quality)
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()
  return note


# ---------------------------------------------------------------------------------------------


def run(args, out=None, err=None):
  """Enhances everything ``args`` names; returns the exit status (0 ok, 1 some files failed)."""
  out, err = out or sys.stdout, err or sys.stderr
  import lljax  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import ImageReadError, read_image, to_float01  # pylint: disable=import-outside-toplevel
  from lljax.utils.progress import Progress  # pylint: disable=import-outside-toplevel

  from lljax import checkpoint, models  # pylint: disable=import-outside-toplevel
  family = models.get(checkpoint.read_model_spec(args.model)["model"])
  needs_kernel = bool(getattr(family, "NEEDS_KERNEL", False))
  if args.kernel and not needs_kernel:
    raise UsageError(f"--kernel: {args.model} is not a deblurring model that takes kernels")
  if args.prior and not hasattr(family.Model, "prior_map"):
    raise UsageError(f"--prior: {args.model} has no prior map to take from the whole image or from each tile "
                     "(LLFlow and SSFlow have)")
  from lljax.imaging.exposure import target_of  # pylint: disable=import-outside-toplevel
  try:
    target_of(args.exposure)
  except ValueError as e:
    raise UsageError(f"--exposure: {e}") from None
  if video.wants_video(args):
    return video.run(args, out, err)
  jobs = plan(args)
  protect = [str(source) for source, _ in jobs]
  failed, skipped, todo, done = [], [], [], 0
  for source, target in jobs:  # decide what to do before loading the model
    if any(_same(target, pathlib.Path(p)) for p in protect) or target.resolve() == source.resolve():
      failed.append(source)
      print(f"{ERROR_PREFIX} {source}: output {target} is an input file; refusing to overwrite it", file=err)
    elif target.exists() and not args.overwrite:
      skipped.append(target)
    else:
      todo.append((source, target))
  restorer = lljax.load(args.model, step=args.step, precision=args.precision) if todo else None
  progress = Progress(len(todo), every_seconds=5, stream=out, unit="image") if todo else None
  for i, (source, target) in enumerate(todo, start=1):
    try:
      kernel = _kernel_for(source, args, family.KERNEL_SIZE) if needs_kernel else None
      rgb, info = read_image(source)
      enhanced = restorer.enhance_image(
          to_float01(rgb), kernel, max_pixels=max_pixels(family, args.max_megapixels), tile=args.tile,
          overlap=args.overlap, bucket=args.bucket, self_ensemble=args.self_ensemble,
          prior=args.prior, temperature=args.temperature, seed=args.seed, exposure=args.exposure,
          tiles=not args.no_tiles)
      note = write(target, to_output(enhanced, info, args.bit_depth), args, protect)
      if note:
        print(f"lljax.enhance: {source}: {note}", file=err)
      done += 1
    except (ImageReadError, OSError, ValueError) as e:
      failed.append(source)
      message = str(e) if isinstance(e, ImageReadError) else f"{source}: {e}"
      print(f"{ERROR_PREFIX} {message}", file=err)
    progress.update(i)
  if progress:
    progress.close()
  programs = len(restorer.compiled_shapes) if restorer else 0
  summary = f"{done} enhanced into {args.output}"
  if skipped:
    summary += f", {len(skipped)} skipped (output exists; --overwrite to replace)"
  if failed:
    summary += f", {len(failed)} failed"
  print(f"{summary}; {programs} compiled shape{'s' if programs != 1 else ''}", file=out)
  return 1 if failed else 0


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    return run(args)
  except (UsageError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError,
          video.VideoDependencyError) as e:
    print(f"{ERROR_PREFIX} {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
