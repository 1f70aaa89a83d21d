"""lljax: JAX/Flax normalizing-flow, GAN and deconvolution models for low-light enhancement.

The public API is ``lljax.load(directory)``, which returns a restorer for a trained or
converted checkpoint directory (see ``lljax.api``). Heavy modules are imported lazily.
"""

__version__ = "0.1.0"


def load(directory, **kwargs):
  """Loads a trained workdir or a converted checkpoint directory; see ``lljax.api.load``."""
  from lljax import api  # pylint: disable=import-outside-toplevel

  return api.load(directory, **kwargs)
