"""TFDS dataset builders of lljax (one package per dataset, TFDS layout).

embedded_photos (no download), lol, lol_v2, lol_blur, gopro, realblur_j and
nightshot (manual downloads; see each README.md). Prepare them without
TensorFlow with `python -m lljax.data.prepare NAME --manual_dir DIR`.
"""
