"""TFDS dataset builders of lljax (one package per dataset, TFDS layout)."""
