"""An example lwcompress plug-in package (docs/extending.md): one layer-data generator, `pink_noise`."""
