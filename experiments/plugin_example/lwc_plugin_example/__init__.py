"""An example lwcompress plug-in package (docs/extending.md): a layer-data generator, `pink_noise`, a learned
rounding, `offset_round`, a preconditioner, `weight_clip`, and a weight grid, `percentile`."""
