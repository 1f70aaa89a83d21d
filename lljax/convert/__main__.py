"""``python -m lljax.convert --model llflow --pth FILE --output DIR [--variant lol]``.

Converts an official PyTorch checkpoint into an lljax model directory that ``lljax.load``,
``python -m lljax.enhance`` and ``python -m lljax.evaluate`` read. Torch is not needed.
"""

import argparse
import sys


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m lljax.convert", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", required=True, help="model name, e.g. llflow")
  parser.add_argument("--pth", required=True, help="official PyTorch checkpoint (.pth)")
  parser.add_argument("--output", required=True, help="new directory to write (must not exist)")
  parser.add_argument("--variant", help="assert that the checkpoint is this variant (e.g. lol)")
  parser.add_argument("--stack_blocks", help="LLFlow only: comma-separated stacked RRDB block indices, "
                      "when a custom checkpoint does not use a known layout")
  args = parser.parse_args(argv)

  # Imported after parsing so that --help is instant.
  from lljax import convert  # pylint: disable=import-outside-toplevel
  from lljax.convert import torch_io  # pylint: disable=import-outside-toplevel

  kwargs = {}
  if args.stack_blocks is not None:
    kwargs["stack_blocks"] = tuple(int(b) for b in args.stack_blocks.split(",") if b.strip())
  try:
    config = convert.convert_checkpoint(args.model, args.pth, args.output, args.variant, **kwargs)
  except (FileNotFoundError, FileExistsError, ValueError, torch_io.CheckpointFormatError) as e:
    print(f"lljax.convert: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.output} ({args.model}: {', '.join(f'{k}={v}' for k, v in config.items())})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
