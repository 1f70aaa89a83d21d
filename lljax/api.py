"""The public Python API: ``lljax.load(directory)`` -> a ``Restorer``.

A directory is either a training workdir (``python -m lljax.train``; the latest checkpoint is
used unless ``step`` is given) or a converted release (``python -m lljax.convert``). Images at
the API are NHWC float32 in [0, 1]; model-specific preprocessing (LLFlow's histogram
equalisation and log input, padding to the model's size multiple) happens inside.

``Restorer.enhance_image`` handles one photo of any size: shape buckets (so a folder of mixed
sizes compiles a few programs, not one per image), overlapping tiles with blended seams above a
pixel budget (``lljax.tiling``) and the x8 geometric self-ensemble. Everything a model computes
from the whole image comes from the whole image when it is tiled: one pass over the photo (box-
downscaled to the context budget if larger) gives its ``GlobalContext`` — the flows' prior map
(LLFlow's and SSFlow's colour map) and every layer's whole-image statistic (DEvUDP's instance-norm
moments, UPT-Flow's channel gates and transposed-attention matrices, INFWIDE's noise-to-signal
estimates; ``lljax.nn.image_stats``) — and every tile decodes with it, so tiles agree in colour
and brightness. A tile's own colour map (``prior="tile"``) sees only the tile and drifts from tile
to tile. Host features such as LLFlow's histogram equalisation are always computed on the full
image, never per tile. A context can also be passed in (``enhance_image(context=...)``), e.g.
one smoothed over the frames of a clip.
"""

import dataclasses
import math
from typing import Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lljax import checkpoint, inference, models, tiling
from lljax.imaging import exposure as exposure_lib
from lljax.inference import pad_to_multiple  # noqa: F401  (public: lljax.api.pad_to_multiple)
from lljax.utils.images import to_uint8
from lljax.utils.kernels import check_kernels


def _as_images(images, name="images"):
  """NHWC (or a single HWC) float array in [0, 1] -> float32 NHWC numpy."""
  x = np.asarray(images, np.float32)
  if x.ndim == 3:
    x = x[None]
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"{name} must be NHWC (or HWC) RGB arrays, got shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contain NaN or Inf values")
  if x.min() < -1e-3 or x.max() > 1 + 1e-3:
    raise ValueError(f"{name} must be in [0, 1] (got [{x.min():.3g}, {x.max():.3g}]); divide uint8 by 255")
  return np.clip(x, 0.0, 1.0)



@flax.struct.dataclass
class GlobalContext:
  """The whole-image quantities that the tiles of one photo (or the frames of a clip) share.

  A pytree: ``jax.tree.map`` over it maps ``prior`` and ``stats`` (e.g. to average contexts over
  frames); for one model and photo size its structure and shapes are fixed.

  Attributes:
    prior: the flow's prior map of the photo box-downscaled by ``factor``, (h, w, C) float32, or
      None (models without a prior map, or not asked for).
    stats: the recorded ``lljax.nn.image_stats`` of the (downscaled) photo, arrays with a batch
      axis of one; {} for models without whole-image statistics.
    factor: the box-downscaling factor the context was computed at (1: the photo itself).
    size: (H, W) of the photo it describes.
  """

  prior: Optional[np.ndarray]
  stats: dict
  factor: int = flax.struct.field(pytree_node=False, default=1)
  size: tuple = flax.struct.field(pytree_node=False, default=(0, 0))


class Restorer:
  """A model and its params, ready for inference.

  Attributes:
    model_name: e.g. ``"llflow"``.
    config: model hyper-parameters (the kwargs of ``Model``).
    module: the Flax module. params: its parameters.
    precision: the ``lljax.nn.precision`` setting its programs are traced with (see ``load``).
    compiled_shapes: ``(program, input shape, with a whole-image context)`` of every program this
      restorer has run (one XLA compilation each).
    progress: None, or ``callable(program, shape, compiling, tile, tiles)`` called before each
      program run (``"enhance"``, ``"prior"`` or ``"statistics"``; ``compiling``: this shape is
      new, so XLA compiles first; ``tile``/``tiles``: 1-based tile of the image and their count,
      1/1 for whole images and the context), e.g. to show progress while a long call runs.
  """

  def __init__(self, model_name, config, params, precision="highest"):
    self.model_name = model_name
    self.precision = precision
    self.config = dict(config)
    self.family = models.get(model_name)
    self.module = self.family.Model(**self.config)
    self.params = params
    # Jitted programs are shared by every Restorer of the same architecture (params are arguments),
    # so evaluating several checkpoints in one process compiles each shape once.
    self._programs = inference.programs(model_name, self.config, precision)
    self.compiled_shapes = set()  # (what, input shape) of every program compiled so far
    self.progress = None
    self._has_statistics = None  # whether the model records whole-image statistics (known after one pass)

  @classmethod
  def of_module(cls, model_name, module, params, precision="highest"):
    """A Restorer of a built ``module`` (its hyper-parameters read from its fields) and ``params``."""
    config = {f.name: getattr(module, f.name) for f in dataclasses.fields(module) if f.name not in ("parent", "name")}
    return cls(model_name, config, params, precision)

  def _note_run(self, program, shape, prior=False, tile=1, tiles=1):
    """Records a program run in ``compiled_shapes``, telling ``progress`` first."""
    key = (program, shape, prior)
    if self.progress is not None:
      self.progress(program, shape, key not in self.compiled_shapes, tile, tiles)
    self.compiled_shapes.add(key)

  def _run_enhance(self, inputs, temperature, rng, prior_map=None, stats=None, tile=1, tiles=1):
    stats = stats or None
    self._note_run("enhance", inputs["low"].shape, prior_map is not None or stats is not None, tile, tiles)
    return np.asarray(self._programs.enhance(self.params, inputs, jnp.float32(temperature), rng, prior_map, stats))

  def model_inputs(self, low):
    """Host preprocessing of NHWC float [0, 1] low images: {"low", **host features}, unpadded."""
    return inference.model_inputs(self.family, low)

  @property
  def has_prior_map(self):
    """Whether the model decodes from a prior map a tiled photo can take from the whole image."""
    return self._programs.prior is not None

  @property
  def tile_multiple(self):
    """Tile origins (and tiled photos' padded sizes) are multiples of this."""
    hook = getattr(self.family, "tile_multiple", None)
    return hook(self.module) if hook else self.family.PAD_MULTIPLE

  @property
  def needs_kernel(self):
    """Whether the model is a non-blind deblurrer that takes a blur kernel per image (INFWIDE)."""
    return bool(getattr(self.family, "NEEDS_KERNEL", False))

  def _kernel_inputs(self, kernels, batch):
    """{"kernel": (B, kh, kw)} for kernel models (validated, unit sum), {} otherwise."""
    if not self.needs_kernel:
      if kernels is not None:
        raise ValueError(f"{self.model_name} does not take blur kernels")
      return {}
    if kernels is None:
      raise ValueError(f"{self.model_name} is a non-blind deblurring model: pass a blur kernel per image")
    return {"kernel": check_kernels(kernels, batch, self.family.KERNEL_SIZE)}

  def enhance(self, images, kernels=None, temperature=0.0, seed=0, clip=True):
    """Enhances NHWC float32 images in [0, 1]; returns the same shape.

    ``kernels``: non-blind deblurring models only (``needs_kernel``): one (kh, kw) PSF for all
    images or (B, kh, kw), non-negative, any size up to the model's support; normalised here.

    Host features (e.g. histogram equalisation) are computed on the unpadded image; image and
    features are then reflect-padded at the bottom/right to the model's multiple and the output
    is cropped back. ``temperature`` > 0 samples flow latents (z = mean + temperature * eps);
    ``clip=False`` returns the raw, unbounded model output.
    """
    low = _as_images(images)
    inputs = {k: pad_to_multiple(v, self.family.PAD_MULTIPLE)[0] for k, v in self.model_inputs(low).items()}
    inputs.update(self._kernel_inputs(kernels, low.shape[0]))
    out = self._run_enhance(inputs, temperature, jax.random.key(seed))[:, : low.shape[1], : low.shape[2]]
    return np.clip(out, 0.0, 1.0) if clip else out

  def enhance_image(self, image, kernel=None, *, max_pixels=None, tile=512, overlap=128, bucket=None,
                    self_ensemble=False, prior=None, prior_pixels=None, temperature=0.0, seed=0,
                    clip=True, exposure=None, context=None, tiles=True):
    """Enhances one photo of any size: HWC (or 1HWC) float in [0, 1] -> HWC float32.

    Args:
      kernel: non-blind deblurring models only: the (kh, kw) blur kernel of this photo (with
        ``self_ensemble`` it is flipped/transposed along with the image).
      max_pixels: images with more pixels are processed in tiles (None: never tile). Tiles take
        the photo's ``GlobalContext`` (prior map and whole-image statistics).
      tile, overlap: tile side and minimum overlap in pixels (rounded up to ``tile_multiple``).
      bucket: whole images are reflect-padded at the bottom/right to a multiple of this (rounded up
        to the model's multiple; None: the model's multiple) and the output cropped back; a larger
        bucket means fewer distinct shapes to compile, at the price of a wider mirrored margin.
      self_ensemble: average the outputs over the 8 flips/transposes (x8 compute).
      prior: models with a prior map (``has_prior_map``: LLFlow's and SSFlow's colour map),
        tiled images: "global" (the context's, from the whole image) or "tile" (each tile's own);
        None: "global" where the model has one. Naming either for a model without a prior map
        is an error.
      prior_pixels: the context of a tiled photo is computed on the photo box-downscaled by an
        integer factor to at most this many pixels (default ``max_pixels``).
      temperature, seed: flow sampling (tile ``i`` uses ``fold_in(key(seed), i)``).
      clip: clip to [0, 1] (False: the raw output, averaged before clipping).
      exposure: None (the model's output), "auto" or a target mean brightness in (0, 1): the
        clipped output's mean grey level is moved there in linear light, highlights rolled off
        smoothly (``lljax.imaging.exposure``); the result is in [0, 1] whatever ``clip``.
      context: a ``GlobalContext`` of a photo of this size (``global_context``) to use instead
        of this photo's own, whole or tiled (e.g. one shared by the frames of a clip); not with
        ``self_ensemble``, whose flips each have their own.
      tiles: False refuses (ValueError) a photo above ``max_pixels`` instead of tiling it.
    """
    target = exposure_lib.target_of(exposure)  # a bad value fails before the model runs
    image = _as_images(image)
    if image.shape[0] != 1:
      raise ValueError(f"enhance_image takes one image, got a batch of {image.shape[0]}")
    if prior not in (None, "global", "tile"):
      raise ValueError(f"prior must be 'global' or 'tile', got {prior!r}")
    if prior is not None and not self.has_prior_map:
      raise ValueError(f"prior={prior!r}: {self.model_name} has no prior map to take from the whole image or "
                       "from each tile (LLFlow and SSFlow have); leave it unset")
    if context is not None and self_ensemble:
      raise ValueError("context cannot be combined with self_ensemble (each flip has its own)")
    if context is not None and tuple(context.size) != image.shape[1:3]:
      raise ValueError(f"context: made for a {context.size} photo, given {image.shape[1:3]}")
    pixels = image.shape[1] * image.shape[2]
    if not tiles and max_pixels is not None and pixels > max_pixels:
      raise ValueError(f"{image.shape[2]}x{image.shape[1]} ({pixels / 1e6:.1f} MP) is above the "
                       f"{max_pixels / 1e6:.1f} MP enhanced whole: allow tiles (enhance: drop --no_tiles) "
                       "or raise the budget (--max_megapixels)")
    prior = prior or "global"
    extra = self._kernel_extra(kernel)
    run = lambda x, t=(False, False, False): self._enhance_one(
        x, max_pixels, tile, overlap, bucket, prior, prior_pixels, temperature, seed, extra(t), context)
    if self_ensemble:
      out = sum(tiling.invert_transform(run(tiling.transform(image[0], t), t), t) for t in tiling.TRANSFORMS)
      out = out / np.float32(len(tiling.TRANSFORMS))
    else:
      out = run(image[0])
    if target is not None:
      return exposure_lib.adjust_exposure(np.clip(out, 0.0, 1.0), target)
    return np.clip(out, 0.0, 1.0) if clip else out

  def enhance_video(self, source, output, **options):
    """Enhances a clip or image sequence into the video ``output`` with the frames' contexts
    smoothed over time: ``lljax.video.enhance_video(self, source, output, **options)``."""
    from lljax import video  # pylint: disable=import-outside-toplevel  (imageio-ffmpeg is optional)
    return video.enhance_video(self, source, output, **options)

  def global_context(self, image, kernel=None, pixels=None, bucket=None):
    """The ``GlobalContext`` of one photo (HWC or 1HWC float in [0, 1]): its prior map and
    whole-image statistics, from one pass over the photo box-downscaled by an integer factor to
    at most ``pixels`` (None: the photo itself), padded like a whole image (``bucket``).
    ``kernel``: the photo's PSF for non-blind deblurring models."""
    image = _as_images(image)
    if image.shape[0] != 1:
      raise ValueError(f"global_context takes one image, got a batch of {image.shape[0]}")
    return self._context(image[0], pixels, bucket, self._kernel_extra(kernel)((False, False, False)), True)

  def _kernel_extra(self, kernel):
    """The kernel input of one photo under a self-ensemble transform: ``t -> {"kernel": ...}``."""
    if self.needs_kernel or kernel is not None:
      kernel = self._kernel_inputs(None if kernel is None else np.asarray(kernel)[None], 1)["kernel"][0]
    return lambda t: {} if kernel is None else {"kernel": tiling.transform(kernel, t)[None]}

  def _host_inputs(self, image):
    """HWC float image -> {"low": float32, feature: uint8} computed on the full image."""
    return {"low": image, **self.family.host_features(to_uint8(image))}

  def _batch(self, arrays, y=0, x=0, h=None, w=None):
    """A crop of host inputs as a float32 batch of one (uint8 features / 255)."""
    out = {}
    for k, v in arrays.items():
      crop = v[y:y + (h or v.shape[0]), x:x + (w or v.shape[1])]
      out[k] = (crop.astype(np.float32) / np.float32(255.0) if crop.dtype == np.uint8 else crop)[None]
    return out

  def _bucket(self, bucket):
    m = self.family.PAD_MULTIPLE
    return tiling.round_up(max(int(bucket or m), m), m)

  def _padded_inputs(self, image, multiple):
    """Host inputs of an HWC image reflect-padded at the bottom/right to ``multiple``."""
    h, w = image.shape[:2]
    hp, wp = tiling.round_up(h, multiple), tiling.round_up(w, multiple)
    return {k: tiling.pad_reflect(v, hp, wp) for k, v in self._host_inputs(image).items()}

  def _enhance_one(self, image, max_pixels, tile, overlap, bucket, prior, prior_pixels, temperature, seed,
                   extra, context):
    h, w = image.shape[:2]
    rng = jax.random.key(seed)
    if max_pixels is None or h * w <= max_pixels:
      arrays = self._padded_inputs(image, self._bucket(bucket))
      prior_map, stats = self._context_inputs(context, prior, arrays["low"].shape[:2])
      return self._run_enhance({**self._batch(arrays), **extra}, temperature, rng, prior_map, stats)[0, :h, :w]
    m = self.tile_multiple
    arrays = self._padded_inputs(image, m)
    hp, wp = arrays["low"].shape[:2]
    if context is None:
      context = self._context(image, prior_pixels or max_pixels, bucket, extra, prior == "global")
    prior_map, stats = self._context_inputs(context, prior, (hp, wp))
    th, tw, corners = tiling.tile_grid(hp, wp, tiling.round_up(tile, m), tiling.round_up(overlap, m), m)
    acc = np.zeros((hp, wp, 3), np.float32)
    weight = np.zeros((hp, wp, 1), np.float32)
    for i, (y, x) in enumerate(corners):
      tile_prior = None if prior_map is None else prior_map[:, y:y + th, x:x + tw]
      out = self._run_enhance({**self._batch(arrays, y, x, th, tw), **extra}, temperature,
                              jax.random.fold_in(rng, i), tile_prior, stats, i + 1, len(corners))
      wgt = tiling.tile_weights(th, tw, y, x, hp, wp, overlap=tiling.round_up(overlap, m))
      acc[y:y + th, x:x + tw] += out[0] * wgt
      weight[y:y + th, x:x + tw] += wgt
    return (acc / weight)[:h, :w]

  def _context(self, image, pixels, bucket, extra, with_prior):
    """``GlobalContext`` of an HWC image, computed at most ``pixels`` large (None: as it is)."""
    h, w = image.shape[:2]
    factor = 1 if pixels is None else max(1, math.ceil(math.sqrt(h * w / pixels)))
    small = tiling.box_downscale(image, factor)
    hs, ws = small.shape[:2]
    inputs = self._batch(self._padded_inputs(small, self._bucket(bucket)))
    prior_small = None
    if with_prior and self._programs.prior is not None:
      self._note_run("prior", inputs["low"].shape)
      prior_small = np.asarray(self._programs.prior(self.params, inputs))[0, :hs, :ws]
    stats = {}
    if self._has_statistics is not False:
      self._note_run("statistics", inputs["low"].shape)
      stats = jax.tree.map(np.asarray, self._programs.statistics(self.params, {**inputs, **extra}))
      self._has_statistics = bool(stats)
    return GlobalContext(prior_small, stats, factor, (h, w))

  @staticmethod
  def _context_inputs(context, prior, padded_size):
    """(prior map (1, H', W', C) at the padded size or None, statistics or None) of a context."""
    if context is None:
      return None, None
    prior_map = None
    if context.prior is not None and prior != "tile":
      full = tiling.upscale_bilinear(np.asarray(context.prior, np.float32), context.factor, *context.size)
      prior_map = tiling.pad_reflect(full, *padded_size)[None]
    return prior_map, (context.stats or None)

  def encode(self, low, normal):
    """Flow models: encodes ``normal`` given ``low`` -> {"z", "logdet", "prior_mean", "nll"}.

    ``nll`` is in bits per pixel location as the official code logs it (no dequantisation noise).
    Sizes must already be multiples of the model's size multiple (no padding: it would change
    the likelihood).
    """
    if self.family.KIND != "flow":
      raise TypeError(f"{self.model_name} is not a flow model; encode() is for flows")
    low, normal = _as_images(low, "low"), _as_images(normal, "normal")
    if low.shape != normal.shape:
      raise ValueError(f"low {low.shape} and normal {normal.shape} differ in shape")
    m = self.family.PAD_MULTIPLE
    if low.shape[1] % m or low.shape[2] % m:
      raise ValueError(f"encode() needs H and W divisible by {m}, got {low.shape[1]}x{low.shape[2]}")
    out = self._programs.encode(self.params, self.model_inputs(low), normal)
    return jax.tree.map(np.asarray, out)



def _abstract_params(family, config):
  module = family.Model(**config)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))["params"]


def load(directory, step=None, precision="highest"):
  """Loads a converted release or a training workdir (latest or given ``step``) as a Restorer,
  on this process's first device whatever mesh or number of processes wrote it.

  ``precision``: of the model's convolutions and matrix products (``lljax.nn.precision``):
  "highest" (float32, reproduces the official outputs; default), "default" (the backend's: TF32
  on recent NVIDIA GPUs, one bfloat16 pass on TPU) or "bfloat16" (bfloat16 compute)."""
  spec = checkpoint.read_model_spec(directory)
  family = models.get(spec["model"])
  params = checkpoint.load_params(directory, _abstract_params(family, spec["config"]), step)
  return Restorer(spec["model"], spec["config"], params, precision)
