"""Training of the full-precision reference models (SGD + Nesterov + one-cycle, as for CIFAR ResNets)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lwcompress.evaluate import Classifier


@dataclass
class PretrainConfig:
    epochs: int = 5
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0


class PretrainModule(Classifier):
    """Cross-entropy training with a one-cycle schedule stepped per batch, in channels-last layout (per batch of 128
    at 64x64, `experiments/probes/train_speed.py`: mobilenet_v2 1.56x faster on 1 and 2 threads, resnet18 1.25x on
    1 thread and a tie on 2); the model is handed back in the default layout."""

    def __init__(self, model: nn.Module, cfg: PretrainConfig) -> None:
        super().__init__(model)
        self.cfg = cfg
        self.loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def on_fit_start(self) -> None:
        self.model.to(memory_format=torch.channels_last)

    def on_fit_end(self) -> None:
        self.model.to(memory_format=torch.contiguous_format)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.global_step}")
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        # No weight decay on BN affine parameters and biases: decaying them only hurts small nets.
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        opt = torch.optim.SGD(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.lr,
            momentum=self.cfg.momentum,
            nesterov=True,
        )
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.cfg.lr, total_steps=total, pct_start=0.25)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
