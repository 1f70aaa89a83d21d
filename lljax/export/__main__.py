"""``python -m lljax.export``: a converted release or training workdir -> a deployable artefact.

  python -m lljax.export --model converted/devudp --format stablehlo --output devudp.stablehlo
  python -m lljax.export --model converted/llflow_lol --format onnx --shape 400x600 --output llflow.onnx
  python -m lljax.export --model runs/infwide --format tflite --shape 256x256 --output infwide.tflite

Writes the artefact at ``--output`` and its parity report at ``--output``.report.json (see
``lljax.export``); inputs and outputs are described in the report's ``signature`` and prepared by
``lljax.export.host``. Exit status: 0 written, 1 parity failure (nothing written), 2 usage error.
"""

import argparse
import sys

ERROR_PREFIX = "lljax.export: error:"


def _shape(text):
  try:
    h, w = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"--shape must be HxW, e.g. 400x600, got {text!r}") from None
  if h < 1 or w < 1:
    raise argparse.ArgumentTypeError(f"--shape sides must be positive, got {text!r}")
  return h, w


def parse_args(argv):
  from lljax.export import FORMATS, TOLERANCE  # pylint: disable=import-outside-toplevel

  p = argparse.ArgumentParser(prog="python -m lljax.export", description=__doc__.split("\n\n")[0])
  p.add_argument("--model", required=True, help="converted model directory or training workdir")
  p.add_argument("--step", type=int, default=None, help="checkpoint step of a workdir (default: latest)")
  p.add_argument("--format", required=True, choices=FORMATS)
  p.add_argument("--output", required=True, help="artefact path (a folder for savedmodel)")
  p.add_argument("--shape", type=_shape, default=None,
                 help="fixed HxW input size (default: symbolic, where the model allows)")
  p.add_argument("--batch", type=int, default=None, help="fixed batch size (default: symbolic)")
  p.add_argument("--kernel_size", type=int, default=None,
                 help="deblurring models: the kernel input's side (default: the model's, 37)")
  p.add_argument("--tolerance", type=float, default=TOLERANCE,
                 help=f"largest accepted max abs difference from lljax (default {TOLERANCE:g})")
  p.add_argument("--allow_mismatch", action="store_true", help="write the artefact even above --tolerance")
  p.add_argument("--overwrite", action="store_true", help="replace an existing artefact and report")
  args = p.parse_args(argv)
  if args.batch is not None and args.batch < 1 or args.kernel_size is not None and args.kernel_size < 1:
    p.error("--batch and --kernel_size must be positive")
  return args


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  from lljax import export  # pylint: disable=import-outside-toplevel
  from lljax.export import formats, program  # pylint: disable=import-outside-toplevel

  try:
    result = export.export(args.model, args.format, args.output, step=args.step, batch=args.batch,
                           shape=args.shape, kernel_size=args.kernel_size, overwrite=args.overwrite,
                           allow_mismatch=args.allow_mismatch, tolerance=args.tolerance)
  except program.SymbolicSizeError as e:
    print(f"{ERROR_PREFIX} {e}; pass --shape HxW to export a fixed size", file=sys.stderr)
    return 2
  except export.ExportError as e:
    print(f"{ERROR_PREFIX} {e}", file=sys.stderr)
    return 1 if isinstance(e, export.ParityError) else 2
  except (formats.MissingExtraError, FileNotFoundError, ValueError) as e:
    print(f"{ERROR_PREFIX} {e}", file=sys.stderr)
    return 2
  for row in result["samples"]:
    print(f"  {row['sample']:<20} max abs diff {row['max_abs_diff']:.3g}  rel {row['max_rel_diff']:.3g}")
  status = "ok" if result["passed"] else f"MISMATCH above {result['tolerance']:g} (kept: --allow_mismatch)"
  print(f"{result['artefact']} ({result['file_size_bytes']} bytes, {result['runtime']}): {status}; "
        f"report {export.report_path(result['artefact'])}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
