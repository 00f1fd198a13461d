"""An example lwcompress plug-in package (docs/extending.md): a layer-data generator, `pink_noise`, a learned
rounding, `offset_round`, and a preconditioner, `weight_clip`."""
