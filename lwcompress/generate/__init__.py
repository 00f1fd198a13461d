"""Layer-input models: what each layer sees, without data (and, for reference, with it)."""

from lwcompress.generate.capture import capture_inputs
from lwcompress.generate.generators import GENERATORS, GenerationContext, GeneratorConfig, build_inputs
from lwcompress.generate.inputs import GaussianSources, LayerInputs, Pool, layer_stream, sample_shapes
from lwcompress.generate.ranges import input_ranges, mse_ranges

__all__ = [
    "GENERATORS",
    "GaussianSources",
    "GenerationContext",
    "GeneratorConfig",
    "LayerInputs",
    "Pool",
    "build_inputs",
    "capture_inputs",
    "input_ranges",
    "mse_ranges",
    "layer_stream",
    "sample_shapes",
]
