"""`lol`: the LOL (LOw-Light) paired dataset, v1."""

from tfds_builders.lol.lol_dataset_builder import Builder
