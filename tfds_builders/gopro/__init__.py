"""`gopro`: the GOPRO_Large dynamic-scene deblurring dataset."""

from tfds_builders.gopro.gopro_dataset_builder import Builder
