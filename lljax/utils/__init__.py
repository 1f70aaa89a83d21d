"""Training utilities that do not depend on the models.

* ``lljax.utils.writers``: ``MetricWriter`` (TensorBoard + ``metrics.jsonl``)
  and ``read_jsonl``.
* ``lljax.utils.progress``: ``Progress``, throttled one-line progress reports
  with steps/s and ETA.
* ``lljax.utils.images``: image I/O (``read_image``, ``save_png``), dtype
  conversion (``to_uint8``, ``to_float01``) and sample grids (``make_grid``).
* ``lljax.utils.png16``: the NumPy/zlib codec of 16-bit colour PNGs, which
  Pillow cannot read or write (used by ``images``).

Submodules are not imported here, so importing one does not pull in the
dependencies of the others (e.g. tensorboardX).
"""
