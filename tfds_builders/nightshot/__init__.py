"""`nightshot`: NightShot (INFWIDE) sharp night photos with synthesised blur and noise."""

from tfds_builders.nightshot.nightshot_dataset_builder import Builder
