"""`embedded_photos`: degraded versions of photos shipped inside scikit-image."""

from tfds_builders.embedded_photos.embedded_photos_dataset_builder import Builder
