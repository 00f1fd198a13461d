"""Layer-input models: what each layer sees, without data (and, for reference, with it)."""

from lwcompress.generate.capture import capture_inputs
from lwcompress.generate.generators import (
    GENERATORS,
    SEQUENTIAL_GENERATORS,
    GenerationContext,
    GeneratorConfig,
    build_inputs,
    generator_domain,
)
from lwcompress.generate.inputs import GaussianSources, LayerInputs, PairedPool, Pool, layer_stream, sample_shapes
from lwcompress.generate.ranges import input_ranges, mse_ranges

__all__ = [
    "GENERATORS",
    "SEQUENTIAL_GENERATORS",
    "GaussianSources",
    "GenerationContext",
    "GeneratorConfig",
    "LayerInputs",
    "PairedPool",
    "Pool",
    "build_inputs",
    "capture_inputs",
    "generator_domain",
    "input_ranges",
    "mse_ranges",
    "layer_stream",
    "sample_shapes",
]
