"""Shared fixtures: one thread per test process (CI has 2 cores), W&B offline, tiny trained checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)

BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a console script of this venv (`lwcompress ...`) as a user would, one thread, W&B offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet8_tiny trained for a few steps on the generated data set, through the real pretraining CLI."""
    out = tmp_path_factory.mktemp("pretrain")
    run_cli(
        "lwcompress-pretrain", "model=resnet8_tiny", "data=synthetic", "threads=1", "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={out}",
    )  # fmt: skip
    return out / "model.pt"
