"""Shared fixtures: one thread per test process (CI has 2 cores), W&B offline, tiny trained checkpoints."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)

BIN = Path(sys.executable).parent
# The tiny model on synthetic data, one thread, no bars: the CLI tests' base command line.
TINY = ["model=resnet8_tiny", "data=synthetic", "threads=1", "trainer.enable_progress_bar=false"]
# W4A4 layer runs that must learn: the tiny checkpoint is within layerwise.min_headroom of FP on some generators.
W4A4 = ["compressor.wbits=4", "compressor.abits=4", "generator.num_images=32", "real_diagnostics=false",
        "layerwise.min_headroom=null"]  # fmt: skip


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global RNG state: under pytest-xdist the tests run in an order that changes
    from run to run, and a randomly initialised model must not depend on which tests ran before it."""
    torch.manual_seed(0)


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a console script of this venv (`lwcompress ...`) as a user would, one thread, W&B offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def run_cli_tty(*args: str, columns: int = 160) -> tuple[int, str]:
    """Run a console script with stdout and stderr on a pseudo-terminal (as in an interactive shell): its exit
    status and everything it printed, bars included."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env=env)  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the script closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet8_tiny trained for a few steps on the generated data set, through the real pretraining CLI."""
    out = tmp_path_factory.mktemp("pretrain")
    run_cli(
        "lwcompress-pretrain", "model=resnet8_tiny", "data=synthetic", "threads=1", "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={out}",
    )  # fmt: skip
    return out / "model.pt"
