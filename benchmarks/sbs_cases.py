"""The cases of ``side_by_side.py`` and their inputs, shared by both sides (numpy only: the lljax
side imports it under JAX, the official side under torch).

Images are NHWC; uint8 for the flows (each side derives its own model input from them: LLFlow's
log and histogram-equalised channels, UPT-Flow's point map), float32 in [0, 1] otherwise.
"""

import dataclasses

import numpy as np

KERNEL_SIZE = 37  # INFWIDE's PSF support (NightShot)


@dataclasses.dataclass(frozen=True)
class Case:
  """One side-by-side measurement.

  model: the lljax family; variant: its ``VARIANTS`` key (enhance cases; a train step uses the
  family's release config, ``configs/<model>.py``); official: which official code runs
  (``sbs_official.BUILDERS``); kind: "enhance" (one inference call) or "train" (one update);
  shape / smoke: (batch, height, width) of a full and of a ``--smoke`` run.
  """

  model: str
  variant: str
  official: str
  kind: str
  shape: tuple
  smoke: tuple
  note: str = ""


CASES = {
    "llflow_lolpc_enhance_400x600": Case("llflow", "lol", "llflow_lolpc", "enhance", (1, 400, 600), (1, 64, 96)),
    "llflow_small_enhance_400x600": Case("llflow", "small", "llflow_small", "enhance", (1, 400, 600), (1, 64, 96)),
    "uptflow_enhance_400x600": Case("uptflow", "lol", "uptflow", "enhance", (1, 400, 600), (1, 80, 120),
                                    "window 5 (the LOL checkpoints)"),
    "ssflow_enhance_400x600": Case("ssflow", "lol_blur", "ssflow", "enhance", (1, 400, 600), (1, 64, 96)),
    "infwide_enhance_720x1280": Case("infwide", "release", "infwide", "enhance", (1, 720, 1280), (1, 64, 96),
                                     "37x37 kernel"),
    "infwide_enhance_1080x1920": Case("infwide", "release", "infwide", "enhance", (1, 1080, 1920), (1, 72, 112),
                                      "37x37 kernel"),
    "fclgan_enhance_720x1280": Case("devudp", "fclgan", "fclgan", "enhance", (1, 720, 1280), (1, 64, 96),
                                    "FCL-GAN's released generator G_B2S (lljax devudp/fclgan)"),
    "llflow_lolpc_train_b4_160": Case("llflow", "lol", "llflow_lolpc", "train", (4, 160, 160), (1, 32, 32)),
    "uptflow_train_paper": Case("uptflow", "lol", "uptflow", "train", (8, 160, 160), (1, 40, 40)),
    "ssflow_train_paper": Case("ssflow", "lol_blur", "ssflow", "train", (16, 160, 160), (1, 64, 64)),
    "devudp_train_paper": Case("devudp", "in", "fclgan", "train", (4, 256, 256), (1, 128, 128),
                               "lljax: DEvUDP (IN) step; official: FCL-GAN's step (its base; DEvUDP has no code)"),
    "infwide_train_paper": Case("infwide", "release", "infwide", "train", (8, 256, 256), (1, 64, 64)),
}


# The official checkouts (flag of sbs_official.py / side_by_side.py -> environment variable).
REPOS = {"llflow": "LLJAX_OFFICIAL_LLFLOW", "uptflow": "LLJAX_OFFICIAL_UPTFLOW",
         "uptflow_nll": "LLJAX_OFFICIAL_UPTFLOW_NLL", "ssflow": "LLJAX_OFFICIAL_SSFLOW",
         "infwide": "LLJAX_OFFICIAL_INFWIDE", "fclgan": "LLJAX_OFFICIAL_FCLGAN"}
# The checkouts each official case needs (UPT-Flow's step is LLFlow's optimize_parameters).
NEEDS = {"llflow_lolpc": ("llflow",), "llflow_small": ("llflow",), "ssflow": ("ssflow",),
         "uptflow": ("uptflow",), "infwide": ("infwide",), "fclgan": ("fclgan",)}
NEEDS_TRAIN = {"uptflow": ("uptflow", "uptflow_nll", "llflow")}


def needed_repos(case):
  """The ``REPOS`` keys the official side of ``case`` needs (``sbs_official.py``)."""
  return NEEDS_TRAIN.get(case.official, NEEDS[case.official]) if case.kind == "train" else NEEDS[case.official]


def shape_of(case, smoke=False, batch=None):
  """(batch, height, width) of a run: the case's full or smoke shape, a train step's batch
  replaced by ``batch`` when given."""
  b, h, w = case.smoke if smoke else case.shape
  return (batch if batch and case.kind == "train" else b), h, w


def blur_kernel(size=KERNEL_SIZE):
  """A smooth positive (size, size) blur kernel summing to 1 (an elongated, tilted Gaussian)."""
  y, x = np.mgrid[:size, :size] - (size - 1) / 2
  u, v = 0.8 * x + 0.6 * y, -0.6 * x + 0.8 * y
  k = np.exp(-0.5 * ((u / (size / 5)) ** 2 + (v / (size / 16)) ** 2))
  return (k / k.sum()).astype(np.float32)


def make_inputs(case, shape, seed=0):
  """The case's inputs at ``shape`` = (b, h, w), the same arrays on both sides.

  Flows: ``low_u8`` (dark), ``normal_u8`` (train). INFWIDE: ``low`` (blurred, noisy),
  ``kernel`` (b, k, k), and for training ``normal`` (sharp) and ``blurred`` (noise-free
  blurred: the target of the official forward-convolution loss). FCL-GAN / DEvUDP: ``low``
  (blurry) and, for training, ``normal`` (an unpaired sharp image).
  """
  b, h, w = shape
  rng = np.random.default_rng(seed)
  image = lambda scale: (rng.random((b, h, w, 3), np.float32) * scale).astype(np.float32)
  if case.model in ("llflow", "uptflow", "ssflow"):
    out = {"low_u8": np.round(image(0.25) * 255).astype(np.uint8)}
    if case.kind == "train":
      out["normal_u8"] = np.round(image(1.0) * 255).astype(np.uint8)
    return out
  if case.model == "infwide":
    out = {"low": image(1.0), "kernel": np.stack([blur_kernel()] * b)}
    if case.kind == "train":
      out.update(normal=image(1.0), blurred=image(1.0))
    return out
  out = {"low": image(1.0)}
  if case.kind == "train":
    out["normal"] = image(1.0)
  return out
