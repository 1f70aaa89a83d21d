"""`realblur_j`: RealBlur-J, real camera-shake blur with aligned sharp references."""

from tfds_builders.realblur_j.realblur_j_dataset_builder import Builder
