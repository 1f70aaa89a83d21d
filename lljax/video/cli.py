"""The video half of ``python -m lljax.enhance``: its video options (``add_arguments``), whether a
command is about videos (``wants_video``), the output of each video input (``plan_videos``), and
``run``, which enhances them with ``enhance_video`` and prints a ``summary`` line per clip.
"""

import glob
import os
import pathlib
import sys

from lljax.video.pipeline import DEFAULT_BATCH, DEFAULT_WINDOW, enhance_video
from lljax.video.io import DEFAULT_FPS, QUALITIES, VIDEO_EXTENSIONS, ffmpeg_exe, is_video_file


def add_arguments(parser):
  """The video options of ``python -m lljax.enhance``."""
  g = parser.add_argument_group("videos (.mp4 .mov .avi .mkv inputs, or image sequences with --video)")
  g.add_argument("--video", action="store_true",
                 help="treat each folder or glob input as the frames of one clip (written as <name>.mp4)")
  g.add_argument("--fps", type=float, default=None, help=f"frame rate of image sequences (default {DEFAULT_FPS})")
  g.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                 help=f"frames the global prior/statistics and exposure are averaged over, centred, restarted "
                      f"at scene cuts (default {DEFAULT_WINDOW}; 1: frame by frame)")
  g.add_argument("--video_quality", choices=QUALITIES, default="high",
                 help="high: H.264 CRF 14, plays everywhere (default); lossless: bit-exact RGB H.264")
  g.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                 help=f"frames per model call when frames are enhanced one by one (default {DEFAULT_BATCH})")


def wants_video(args):
  """Whether ``python -m lljax.enhance`` was given videos (or ``--video``)."""
  return bool(getattr(args, "video", False)) or any(is_video_file(spec) for spec in args.inputs)


def plan_videos(args):
  """[(source, output path)] of the command's video inputs; UsageError for anything else."""
  from lljax.enhance import UsageError  # pylint: disable=import-outside-toplevel

  named = []
  for spec in args.inputs:
    path = pathlib.Path(spec)
    if is_video_file(spec) and glob.has_magic(spec):
      matches = sorted(pathlib.Path(m) for m in glob.glob(spec) if os.path.isfile(m))
      if not matches:
        raise UsageError(f"no files match {spec!r}")
      named += [(m, m.stem, m.suffix) for m in matches]
    elif is_video_file(spec):
      if not path.is_file():
        raise UsageError(f"{spec} does not exist")
      named.append((path, path.stem, path.suffix))
    elif args.video and (path.is_dir() or glob.has_magic(spec)):
      name = path.name if path.is_dir() else pathlib.Path(spec).parent.name
      named.append((spec, name or "frames", ".mp4"))
    else:
      raise UsageError(f"{spec}: not a video ({', '.join(VIDEO_EXTENSIONS)}); pass --video for a folder or glob of "
                       "frames, and enhance photos in a command of their own")
  planned, seen = [], {}
  for source, name, ext in named:
    target = pathlib.Path(args.output) / f"{name}{args.suffix}{ext}"
    key = os.path.normcase(str(target.resolve()))
    if key in seen:
      raise UsageError(f"{seen[key]} and {source} would both be written to {target}; use --suffix or two commands")
    seen[key] = source
    planned.append((source, target))
  return planned


def _check_cli(args):
  from lljax.enhance import UsageError  # pylint: disable=import-outside-toplevel

  photo_only = {"--self_ensemble": args.self_ensemble, "--recursive": args.recursive,
                "--format jpg": args.format != "png", "--bit_depth 16": args.bit_depth != 8,
                "--prior tile": args.prior == "tile", "--no_tiles": args.no_tiles}
  used = [name for name, on in photo_only.items() if on]
  if used:
    raise UsageError(f"{', '.join(used)}: for photos, not videos (frames use their whole frame's global prior)")
  if args.window < 1 or args.batch < 1 or (args.fps is not None and args.fps <= 0):
    raise UsageError("need --window >= 1, --batch >= 1 and --fps > 0")
  ffmpeg_exe()  # a missing dependency stops the command before anything is loaded


def summary(result):
  """One line about a VideoResult."""
  flicker = result.flicker
  fps = float(result.fps)
  line = (f"{result.source} -> {result.output}: {result.frames} frames {result.width}x{result.height} at "
          f"{fps:g} fps, {len(result.cuts)} scene cut{'s' if len(result.cuts) != 1 else ''}, "
          f"{result.frames / max(result.seconds, 1e-9):.2f} frames/s; flicker (mean change per frame, cuts left out): "
          f"brightness {flicker['brightness_flicker']:.4f}, colour {flicker['colour_flicker']:.4f}")
  return line


def run(args, out=None, err=None):
  """``python -m lljax.enhance`` on videos: returns the exit status (0 ok, 1 some failed)."""
  import lljax  # pylint: disable=import-outside-toplevel
  from lljax import checkpoint, enhance, models  # pylint: disable=import-outside-toplevel

  out, err = out or sys.stdout, err or sys.stderr
  _check_cli(args)
  family = models.get(checkpoint.read_model_spec(args.model)["model"])
  jobs = plan_videos(args)
  protect = [str(source) for source, _ in jobs if not glob.has_magic(str(source))]
  todo = [(s, t) for s, t in jobs if args.overwrite or not t.exists()]
  restorer = lljax.load(args.model, step=args.step, precision=args.precision) if todo else None
  failed = 0
  for source, target in todo:
    try:
      kernel = enhance._kernel_for(source, args, family.KERNEL_SIZE) if restorer.needs_kernel else None  # pylint: disable=protected-access
      result = enhance_video(
          restorer, source, target, kernel=kernel, fps=args.fps, window=args.window, batch=args.batch,
          quality=args.video_quality, max_pixels=enhance.max_pixels(family, args.max_megapixels), tile=args.tile,
          overlap=args.overlap, temperature=args.temperature, seed=args.seed, exposure=args.exposure,
          overwrite=args.overwrite, progress=out, protect=protect)
      print(summary(result), file=out)
    except (OSError, ValueError) as e:
      failed += 1
      print(f"{enhance.ERROR_PREFIX} {e}", file=err)
  skipped = len(jobs) - len(todo)
  line = f"{len(todo) - failed} video{'s' if len(todo) - failed != 1 else ''} enhanced into {args.output}"
  line += f", {skipped} skipped (output exists; --overwrite to replace)" if skipped else ""
  print(line + (f", {failed} failed" if failed else ""), file=out)
  return 1 if failed else 0
