"""`lol_blur`: LOL-Blur (LEDNet), low-light and blurred video frames."""

from tfds_builders.lol_blur.lol_blur_dataset_builder import Builder
