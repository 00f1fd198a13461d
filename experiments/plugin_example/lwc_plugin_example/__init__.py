"""An example lwcompress plug-in package (docs/extending.md): a layer-data generator, `pink_noise`, and a learned
rounding, `offset_round`."""
