"""Model registry: small nets for 28x28 data, torchvision ImageNet models, and user models by import path."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lwcompress.errors import UserError
from lwcompress.models.checkpoint import load_checkpoint, load_weights, save_checkpoint
from lwcompress.models.inputs import declared_normalization
from lwcompress.models.small import TINY_SETTINGS, CifarResNet, SmallMobileNetV2
from lwcompress.registry import Registry

__all__ = ["MODELS", "ModelConfig", "build_model", "load_checkpoint", "load_weights", "save_checkpoint"]

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


@dataclass
class ModelConfig:
    """Which network to build and which weights to put in it.

    `weights`: None (random init), "DEFAULT" (torchvision's pretrained weights; needs internet) or the path
    of a checkpoint. `target` builds any user model class by import path ("pkg.module.Class") with `kwargs`.
    `normalization`: the input normalization the model was trained with, {"mean": [...], "std": [...]} per
    channel, or "from_checkpoint" (its meta must record it); None: the checkpoint's record, else the data set's
    (with a warning). `input_size`: the side of the square images the model takes (None: the checkpoint's record,
    else anything). See `lwcompress.models.inputs`.
    """

    name: str = "resnet20"
    weights: str | None = None
    target: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    normalization: Any = None
    input_size: int | None = None

    def __post_init__(self) -> None:
        self.normalization = declared_normalization(self.normalization)
        if self.input_size is not None and self.input_size < 1:
            raise UserError(f"input_size={self.input_size}: must be a positive image side in pixels")
        if self.name == "custom" and not self.target:
            # checked config nodes name their group in front: "model.target is required ..."
            raise UserError("target is required with model=custom: the model class to build (pkg.module.Class)")


@MODELS.register("resnet20")
def resnet20(num_classes: int, in_channels: int) -> nn.Module:
    return CifarResNet(20, 16, num_classes, in_channels)


@MODELS.register("resnet8_tiny")
def resnet8_tiny(num_classes: int, in_channels: int) -> nn.Module:
    return CifarResNet(8, 4, num_classes, in_channels)


@MODELS.register("mobilenetv2_small")
def mobilenetv2_small(num_classes: int, in_channels: int) -> nn.Module:
    return SmallMobileNetV2(num_classes=num_classes, in_channels=in_channels)


@MODELS.register("mobilenetv2_tiny")
def mobilenetv2_tiny(num_classes: int, in_channels: int) -> nn.Module:
    return SmallMobileNetV2(TINY_SETTINGS, stem=8, head=32, num_classes=num_classes, in_channels=in_channels)


def _torchvision(arch: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_channels: int, pretrained: bool = False) -> nn.Module:
        import torchvision

        if in_channels != 3:
            raise UserError(f"model {arch} takes 3-channel images, the data has {in_channels}")
        if pretrained:
            if num_classes != 1000:
                raise UserError(f"model.weights=DEFAULT gives 1000 ImageNet classes, the data has {num_classes}")
            return torchvision.models.get_model(arch, weights="DEFAULT")
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)

    return build


for _arch in ("resnet18", "resnet50", "mobilenet_v2"):
    MODELS.register(_arch)(_torchvision(_arch))


def _import(target: str) -> Callable[..., nn.Module]:
    module, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"model.target={target}: cannot import ({e})") from None


def build_model(cfg: ModelConfig, num_classes: int, in_channels: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network named by `cfg` and load its weights; returns (model in eval mode, checkpoint meta)."""
    meta: dict[str, Any] = {}
    pretrained = cfg.weights == "DEFAULT"
    if cfg.target:
        if pretrained:
            raise UserError("model.weights=DEFAULT is only for torchvision models; give a checkpoint path")
        model = _import(cfg.target)(**cfg.kwargs)
    elif pretrained:
        if cfg.name not in ("resnet18", "resnet50", "mobilenet_v2"):
            raise UserError(f"model.weights=DEFAULT is only for torchvision models, not '{cfg.name}'")
        model = MODELS.get(cfg.name)(num_classes, in_channels, pretrained=True, **cfg.kwargs)
    else:
        model = MODELS.get(cfg.name)(num_classes, in_channels, **cfg.kwargs)
    if cfg.weights and not pretrained:
        meta = load_weights(model, cfg.weights)
    return model.eval(), meta
