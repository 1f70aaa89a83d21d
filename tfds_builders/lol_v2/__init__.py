"""`lol_v2`: LOL-v2 (real and synthetic subsets)."""

from tfds_builders.lol_v2.lol_v2_dataset_builder import Builder
