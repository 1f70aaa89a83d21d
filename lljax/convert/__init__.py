"""Converters from PyTorch checkpoints to lljax parameters."""
