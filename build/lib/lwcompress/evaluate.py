"""Accuracy (through a Lightning Trainer, so every logger sees it) and model size accounting."""

from __future__ import annotations

import warnings

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader


class Classifier(pl.LightningModule):
    """Wraps an image classifier so that Lightning can test (and, in pretraining, train) it."""

    def __init__(self, model: nn.Module, prefix: str = "") -> None:
        super().__init__()
        self.model = model
        self.prefix = prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _top1(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x)
        if not torch.isfinite(logits).all():
            raise FloatingPointError(f"{self.prefix or 'model'} produced non-finite logits")
        acc = (logits.argmax(1) == y).float().mean() * 100
        self.log(f"{self.prefix}{stage}_top1", acc, prog_bar=True, batch_size=len(y))
        return acc

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._top1(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._top1(batch, "test")


def evaluate(model: nn.Module, loader: DataLoader, trainer: pl.Trainer, prefix: str = "", stage: str = "test") -> float:
    """Top-1 accuracy in percent of `model` on `loader`, logged as `{prefix}{stage}_top1`.

    The model runs in channels-last memory layout (oneDNN's and cuDNN's fast path for convolutions; 25-30 % less
    time on CPU, measured on resnet20) and is handed back in its usual layout.
    """
    module = Classifier(model.eval().to(memory_format=torch.channels_last), prefix)
    run = trainer.test if stage == "test" else trainer.validate
    try:
        with warnings.catch_warnings():
            # one process sees every sample (rank 0 of a job evaluates alone): nothing to sync with the other ranks
            warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
            (metrics,) = run(module, dataloaders=loader, verbose=False)
    finally:
        model.to(memory_format=torch.contiguous_format)
    return float(metrics[f"{prefix}{stage}_top1"])


def size_bits(model: nn.Module, bits: dict[str, int] | None = None) -> int:
    """Storage of all parameters and buffers in bits; `bits` overrides the width of named weights."""
    bits = bits or {}
    total = 0
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.dtype in (torch.int64, torch.long) and name.endswith("num_batches_tracked"):
            continue
        total += t.numel() * bits.get(name, t.element_size() * 8)
    return total
