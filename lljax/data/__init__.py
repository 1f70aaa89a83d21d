"""Data: degradation synthesis, TFDS sources and input pipelines.

* `degrade`: low light, Poisson-Gaussian noise, motion-blur kernels, INFWIDE's
  camera noise, JPEG / 8-bit quantisation (numpy, seeded).
* `manual`: reading manual downloads (archives or folders) for the builders.
* `prepare`: `python -m lljax.data.prepare NAME --manual_dir DIR`.
* `sources`: `open_source(name, split)` (TFDS, '+'-joined, 'folder:PATH').
* `pipeline`: `train_batches` (grain) and `eval_examples`.
* `photos`: the photos shipped inside scikit-image.
"""
