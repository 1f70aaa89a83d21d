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

# The names of the former single module, importable from the package as before.
from lljax.compare.cli import ERROR_PREFIX, format_table, main, output_paths, parse_args, run
from lljax.compare.comparison import Comparison, compare
from lljax.compare.models import load_models, measure, model_families, one_line, paper_protocol
from lljax.compare.sheet import (BACKGROUND, ERROR_TEXT, FAILED_FILL, MAX_COLUMNS, PAD, PANEL_WIDTH, TEXT, Panel,
                                 label_lines, render_sheet, thumbnail)
