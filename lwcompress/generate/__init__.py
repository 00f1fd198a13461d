"""Layer-input models: what each layer sees, without data."""

from lwcompress.generate.ranges import input_ranges

__all__ = ["input_ranges"]
