"""Whole-image statistics that the tiles of one photo (or the frames of one clip) share.

Some layers reduce over the whole image: instance normalisation's moments, channel attention's
pooled gates and transposed-attention matrices, INFWIDE's noise-to-signal estimates. A tile that
computes them from itself sees other statistics than the whole photo, and its output drifts in
brightness or colour from its neighbour's. Such a layer asks for its statistic through
``shared_statistic``, which has three modes, chosen by how the module is applied:

* as usual (no ``image_stats`` collection: training, whole images): computed from the input;
* recording (``mutable=["image_stats"]``): computed and stored under the layer's path, so one
  pass over the whole image (or a downscaled copy) yields every layer's statistic;
* shared (``{"params": ..., "image_stats": recorded}``, not mutable): the recorded value is used
  instead of the input's own, so every tile normalises and gates like the whole image.

Statistics keep their batch axis (``B`` = 1 for a photo), so a recording is a pytree of small
float32 arrays whose structure depends only on the architecture and the input size.
"""

COLLECTION = "image_stats"

# Statistics that normalise their input's level away (instance-norm moments): shared by a photo's
# tiles, but a clip's frames keep their own, since averaging them over frames would bring back
# the very changes of light each frame's normalisation removes (``lljax.video``).
PER_FRAME = frozenset({"instance_moments"})


def shared_statistic(module, name, compute, *args):
  """``compute(*args)``, or the value recorded for ``module``'s ``name`` when one is given.

  Args:
    module: the calling Flax module (``self``); the value is stored under its path.
    name: the statistic's name, unique within ``module``.
    compute: function of ``args`` returning an array (or a tuple of arrays).
  """
  if module.is_initializing():
    return compute(*args)
  if module.is_mutable_collection(COLLECTION):
    value = compute(*args)
    module.put_variable(COLLECTION, name, value)
    return value
  if module.has_variable(COLLECTION, name):
    return module.get_variable(COLLECTION, name)
  return compute(*args)
