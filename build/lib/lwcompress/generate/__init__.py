"""Layer-input models: what each layer sees, without data (and, for reference, with it)."""

from lwcompress.generate.capture import Stepwise, capture_inputs
from lwcompress.generate.data import DIAGNOSTIC_IMAGES, LayerData
from lwcompress.generate.distill import Inversion, bn_statistics_loss, distill_images
from lwcompress.generate.generators import (
    GENERATORS,
    DistilledConfig,
    GenerationContext,
    Generator,
    GeneratorConfig,
    HybridConfig,
    ImageGenerator,
    PropagatedConfig,
    able,
    bn_gaussian_inputs,
    build_inputs,
    check_sequential,
    domain_gaps,
    generator,
    generator_config,
    generator_domain,
    source_images,
)
from lwcompress.generate.inputs import GaussianSources, LayerInputs, PairedPool, Pool, layer_stream, sample_shapes
from lwcompress.generate.ranges import activation_ranges, calibrated_ranges, input_ranges, mse_ranges

__all__ = [
    "DIAGNOSTIC_IMAGES",
    "activation_ranges",
    "GENERATORS",
    "Generator",
    "ImageGenerator",
    "able",
    "bn_gaussian_inputs",
    "GaussianSources",
    "Stepwise",
    "GenerationContext",
    "Inversion",
    "GeneratorConfig",
    "DistilledConfig",
    "HybridConfig",
    "PropagatedConfig",
    "LayerData",
    "LayerInputs",
    "PairedPool",
    "Pool",
    "bn_statistics_loss",
    "build_inputs",
    "calibrated_ranges",
    "capture_inputs",
    "check_sequential",
    "distill_images",
    "domain_gaps",
    "generator",
    "generator_config",
    "generator_domain",
    "input_ranges",
    "mse_ranges",
    "layer_stream",
    "sample_shapes",
    "source_images",
]
