"""Data: TFDS sources and input pipelines.

* `prepare`: `python -m lljax.data.prepare NAME --manual_dir DIR`.
* `sources`: `open_source(name, split)` (TFDS, '+'-joined, 'folder:PATH').
* `pipeline`: `train_batches` (grain) and `eval_examples`.
* `tfds_cli`: the TFDS command line (needs TensorFlow).

The degradations, the embedded photos and the reading of manual downloads
that the builders in `tfds_builders` use live in `lljax.imaging`.
"""
