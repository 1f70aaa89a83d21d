"""``python -m lljax.demo --models DIR [DIR ...] [--port 7860]``: serve the demo until Ctrl-C.

Exit status 0 after Ctrl-C or SIGTERM, 2 when no directory is a model or the port is taken.
"""

import argparse
import signal
import sys
import threading

ERROR_PREFIX = "lljax.demo: error:"


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m lljax.demo", description=__doc__.split("\n\n")[0])
  p.add_argument("--models", nargs="+", required=True,
                 help="converted model directories and/or training workdirs to choose from")
  p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0: any free port)")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (default 127.0.0.1: this machine only)")
  p.add_argument("--max_megapixels", type=float, default=None,
                 help="larger photos are processed in tiles (default: the model's, 1.0; INFWIDE 4.0)")
  args = p.parse_args(argv)
  if args.max_megapixels is not None and args.max_megapixels <= 0:
    p.error("need --max_megapixels > 0")
  return args


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import jax  # pylint: disable=import-outside-toplevel

  from lljax.demo import server as server_lib  # pylint: disable=import-outside-toplevel

  try:
    server = server_lib.serve(args.models, args.host, args.port, args.max_megapixels)
  except (ValueError, OSError) as e:
    where = f"cannot listen on {args.host}:{args.port} (choose another --port): " if isinstance(e, OSError) else ""
    print(f"{ERROR_PREFIX} {where}{e}", file=sys.stderr)
    return 2
  for entry in server.entries:
    if entry.error:
      print(f"lljax.demo: warning: {entry.error}", file=sys.stderr)
  backend = jax.devices()[0].platform  # where the demo's programs run
  stop = threading.Event()
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.set())
  usable = sum(e.error is None for e in server.entries)
  print(f"lljax.demo: {usable} model{'s' if usable != 1 else ''} on {backend} at {server.url} (Ctrl-C stops)",
        flush=True)
  while not stop.wait(0.5):  # short waits: the handlers run between them
    pass
  server.close()
  print("lljax.demo: stopped", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
