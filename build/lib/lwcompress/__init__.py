"""lwcompress: data-free, layer-wise compression of trained CNNs."""

__version__ = "0.1.0"
