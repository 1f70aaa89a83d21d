"""Tiled against whole-image enhancement, per model: how far tiles change a photo that fits whole.

  python benchmarks/tile_seams.py                       # the table in README.md ("Tiles")
  python benchmarks/tile_seams.py --overlap 64
  python benchmarks/tile_seams.py --tile_statistics     # ablation: each tile's own statistics

Each model's converted small fixture (``tests/fixtures/<model>/small.pth``: the official small
configuration with perturbed random weights, so magnitudes are indicative, not a trained model's)
and ``devudp-in`` (DEvUDP's ``small`` instance-norm variant, random initialisation, seed 1)
enhances the embedded test photos ``chelsea`` and ``coffee`` (darkened to 15 %, 256x384 crops)
once whole and once in tiles (``enhance_image(max_pixels=1)``: always tiled, ``--tile`` side,
``--overlap``, the enhance command's blending, and the photo's ``GlobalContext`` computed on the
whole photo: the flows' prior map and every whole-image statistic of ``lljax.nn.image_stats``).
INFWIDE gets a 9x9 motion kernel. Reported on the clipped outputs (what users see), [0, 1] scale: the max and mean absolute
difference, and the seam step: the mean absolute jump across the tile borders' pixel pairs
(tiled output) minus the same jump in the whole output, i.e. what the borders add.
"""

import argparse
import json
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = ("llflow", "uptflow", "ssflow", "devudp", "devudp-in", "infwide")
PHOTOS = ("chelsea", "coffee")


def restorer_of(model):
  """An lljax Restorer of ``model``'s converted small fixture ("devudp-in": a random ``small``)."""
  import jax  # pylint: disable=import-outside-toplevel
  from lljax import api, models  # pylint: disable=import-outside-toplevel
  from lljax.convert import load_torch_params  # pylint: disable=import-outside-toplevel

  if model == "devudp-in":
    family = models.get("devudp")
    module = family.Model("small")
    params = module.init(jax.random.key(1), *family.init_inputs(module))["params"]
    model = "devudp"
  else:
    config, params, _ = load_torch_params(model, FIXTURES / model / "small.pth")
    module = models.get(model).Model(**config)
  return api.Restorer.of_module(model, module, params)


def seam_step(image, rows, cols):
  """Mean |difference| of the pixel pairs straddling the given rows and columns."""
  jumps = [np.abs(image[r] - image[r - 1]).mean() for r in rows] + [np.abs(image[:, c] - image[:, c - 1]).mean()
                                                                     for c in cols]
  return float(np.mean(jumps)) if jumps else 0.0


def measure(model, tile, overlap, tile_statistics=False):
  from lljax import tiling  # pylint: disable=import-outside-toplevel
  from lljax.imaging import motion, photos  # pylint: disable=import-outside-toplevel

  restorer = restorer_of(model)
  if tile_statistics:
    restorer._has_statistics = False  # pylint: disable=protected-access  (the ablation: no shared statistics)
  kernel = motion.motion_kernel(0, size=9)[0] if restorer.needs_kernel else None
  rows = []
  for name in PHOTOS:
    photo = photos.load_photo(name)[:256, :384].astype(np.float32) / 255 * 0.15
    whole = restorer.enhance_image(photo, kernel)
    h, w = photo.shape[:2]
    tiled = restorer.enhance_image(photo, kernel, max_pixels=1, prior_pixels=h * w, tile=tile, overlap=overlap)
    diff = np.abs(tiled - whole)
    m = restorer.tile_multiple
    th, tw, corners = tiling.tile_grid(tiling.round_up(h, m), tiling.round_up(w, m), tiling.round_up(tile, m),
                                       tiling.round_up(overlap, m), m)
    borders_y = sorted({y for y, _ in corners if y > 0} | {y + th for y, _ in corners if y + th < h})
    borders_x = sorted({x for _, x in corners if x > 0} | {x + tw for _, x in corners if x + tw < w})
    rows.append((diff.max(), diff.mean(), seam_step(tiled, borders_y, borders_x) - seam_step(whole, borders_y, borders_x),
                 len(corners)))
  return {"model": model, "max_abs": float(max(r[0] for r in rows)), "mean_abs": float(np.mean([r[1] for r in rows])),
          "seam_step": float(np.mean([r[2] for r in rows])), "tiles": rows[0][3],
          "context": _shared(restorer, photo, kernel), "tile_px": f"{th}/{tiling.round_up(overlap, m)}"}


def _shared(restorer, photo, kernel):
  """What a tile takes from the whole photo: "prior map" and/or "<n> statistics"."""
  import jax  # pylint: disable=import-outside-toplevel
  context = restorer.global_context(photo, kernel)
  parts = (["prior map"] if context.prior is not None else []) + (
      [f"{len(jax.tree.leaves(context.stats))} statistics"] if context.stats else [])
  return ", ".join(parts) or "–"


def padding_change(model, bucket):
  """Mean abs change of the raw whole-image output of chelsea (256x384) padded to ``bucket``."""
  from lljax.imaging import motion, photos  # pylint: disable=import-outside-toplevel

  restorer = restorer_of(model)
  kernel = motion.motion_kernel(0, size=9)[0] if restorer.needs_kernel else None
  photo = photos.load_photo("chelsea")[:256, :384].astype(np.float32) / 255 * 0.15
  default = restorer.enhance_image(photo, kernel, clip=False)
  return float(np.abs(restorer.enhance_image(photo, kernel, clip=False, bucket=bucket) - default).mean())


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", nargs="*", default=list(MODELS))
  parser.add_argument("--tile", type=int, default=128)
  parser.add_argument("--overlap", type=int, default=32)
  parser.add_argument("--tile_statistics", action="store_true",
                      help="ablation: tiles compute their own whole-image statistics (prior map still shared)")
  parser.add_argument("--bucket", type=int, default=0,
                      help="instead: how much padding the whole photo to a multiple of this changes each model's output")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  if args.bucket:
    for model in args.models:
      print(f"{model}: bucket {args.bucket} against the default padding, mean abs {padding_change(model, args.bucket):.1e}")
    return
  results = [measure(m, args.tile, args.overlap, args.tile_statistics) for m in args.models]
  if args.json:
    for r in results:
      print(json.dumps(r))
    return
  own = ", each tile's own statistics" if args.tile_statistics else ""
  print(f"tile {args.tile}, overlap {args.overlap}{own}, 256x384 photos ({', '.join(PHOTOS)})")
  print("| model | tiles | tile/overlap px | shared from the whole photo | max abs | mean abs | seam step |")
  print("|---|---|---|---|---|---|---|")
  for r in results:
    print(f"| {r['model']} | {r['tiles']} | {r['tile_px']} | {r['context']} | {r['max_abs']:.1e} | {r['mean_abs']:.1e} "
          f"| {r['seam_step']:+.1e} |")


if __name__ == "__main__":
  main()
