"""``python -m lljax.compare`` (``lljax.compare.cli.main``; the ``lljax.compare`` docstring)."""

import sys

from lljax.compare.cli import main

if __name__ == "__main__":
  sys.exit(main())
