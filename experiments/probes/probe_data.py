"""What the in-process probes share: a committed checkpoint with its data module and the whole validation split
(never the test set), Lightning's chatter silenced, and validation top-1."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

import lwcompress
from lwcompress.cli import load_config
from lwcompress.data import DATA, DataConfig, build_data
from lwcompress.data.base import ImageClassificationData
from lwcompress.models import ModelConfig, build_model


def load(model_name: str, threads: int) -> tuple[nn.Module, ImageClassificationData, torch.Tensor, torch.Tensor]:
    """(the committed Fashion-MNIST checkpoint of `model_name`, its data module, validation images, labels)."""
    torch.set_num_threads(threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    dm = build_data(DataConfig())
    dm.setup("fit")
    x, y = (torch.stack(t) for t in zip(*[dm.val[i] for i in range(len(dm.val))], strict=True))
    weights = Path(lwcompress.__file__).parent / "checkpoints" / "fashion_mnist" / f"{model_name}.pt"
    model, _ = build_model(ModelConfig(model_name, weights=str(weights)), 10, 1)
    return model, dm, x, torch.as_tensor(y)


@torch.no_grad()
def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 % of `model` (put in eval mode) on `x`, `y`."""
    model.eval()
    hits = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return 100 * hits / len(x)


def config_model(model_name: str, experiment: str | None = None) -> tuple[nn.Module, tuple[int, int, int]]:
    """(the checkpoint `model=model_name` names, in eval mode; its input shape (C, H, W)) as the CLI composes them
    under `experiment` (e.g. torchvision: 64x64x3), without reading data files."""
    job, dm = _config(model_name, experiment)
    model = build_model(job.model, getattr(dm, "num_classes", 10), dm.in_channels)[0].eval()
    return model, (dm.in_channels, dm.image_size, dm.image_size)


def config_val_images(model_name: str, experiment: str | None, count: int) -> torch.Tensor:
    """The first `count` validation images in the input shape and normalization the CLI gives `model_name` under
    `experiment` (reads the data files)."""
    dm = _config(model_name, experiment)[1]
    dm.setup("fit")
    return torch.stack([dm.val[i][0] for i in range(count)])


def config_normalization(model_name: str, experiment: str | None) -> dict[str, list[float]]:
    """The per-channel mean and std the CLI's data module normalizes `model_name`'s inputs with under `experiment`."""
    return _config(model_name, experiment)[1].normalization


def _config(model_name: str, experiment: str | None) -> tuple[DictConfig, ImageClassificationData]:
    job = load_config([f"model={model_name}"] + ([f"experiment={experiment}"] if experiment else []))
    return job, DATA.get(job.data.name)(job.data)
