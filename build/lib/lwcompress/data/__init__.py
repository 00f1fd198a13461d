"""Data registry: LightningDataModules for Fashion-MNIST, ImageNet (ImageFolder) and a generated tiny set."""

from __future__ import annotations

from collections.abc import Callable

from lwcompress.data.base import DataConfig, ImageClassificationData
from lwcompress.data.fashion_mnist import FashionMNISTData
from lwcompress.data.imagenet import ImageNetData
from lwcompress.data.synthetic import SyntheticData
from lwcompress.registry import Registry

__all__ = ["DATA", "DataConfig", "ImageClassificationData", "build_data"]

DATA: Registry[Callable[[DataConfig], ImageClassificationData]] = Registry("data")
DATA.register("fashion_mnist")(FashionMNISTData)
DATA.register("imagenet")(ImageNetData)
DATA.register("synthetic")(SyntheticData)


def build_data(cfg: DataConfig) -> ImageClassificationData:
    """Instantiate and set up the data module named by `cfg.name`."""
    dm = DATA.get(cfg.name)(cfg)
    dm.prepare_data()
    dm.setup()
    return dm
