"""Evaluation through a Lightning Trainer: every sample counted once, the model handed back as it came."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lwcompress.evaluate import evaluate
from lwcompress.jobs import make_trainer
from lwcompress.schema import TrainerConfig


def test_top1_matches_a_plain_loop_and_the_layout_is_restored() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(50, 2, 8, 8), torch.randint(0, 3, (50,))
    with torch.no_grad():
        expected = float((model(x).argmax(1) == y).float().mean() * 100)
    trainer = make_trainer(TrainerConfig(enable_progress_bar=False), [])
    top1 = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=7), trainer)  # a ragged last batch
    assert abs(top1 - expected) < 1e-4
    assert all(p.is_contiguous() for p in model.parameters())  # channels-last only while evaluating
