"""Images before they are datasets: synthetic degradations, embedded photos, manual downloads.

Degradations (numpy, deterministic given a seed):
* `srgb`: sRGB curves, 8-bit quantisation, JPEG round trips.
* `lowlight`: under-exposure with Poisson-Gaussian sensor noise (optionally
  after motion blur).
* `motion`: random camera-trajectory blur kernels (INFWIDE's recipe) and
  circular blur.
* `camera`: INFWIDE's CMOS camera noise and its night-blur synthesis.

Sources of images:
* `photos`: the photos shipped inside scikit-image.
* `manual`: a manual download's `Layout`, `ManualDataError` and the
  `DataRoot` that reads checked images from it.
* `finder`: `locate(manual_dir, layout)`, the download as a folder or an
  archive.

This package sits below both `tfds_builders` and `lljax.data` and imports
neither (it may import `lljax.utils`). Submodules are not imported here.
"""
