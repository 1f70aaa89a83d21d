"""Data: degradation synthesis, embedded photos, TFDS sources and input pipelines."""
