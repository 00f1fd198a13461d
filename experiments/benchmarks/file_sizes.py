"""compressed.pt bytes vs size_bits on the resnet20 reference (the README's outputs table): closed-form W8A8, W4A4 and
70 %-pruned float, each saved, reloaded and checked to compute the same outputs.

    python experiments/benchmarks/file_sizes.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from lwcompress.api import compress, load_compressed
from lwcompress.compress import CompressorConfig
from lwcompress.models import ModelConfig, build_model

CHECKPOINT = Path(__file__).parents[2] / "lwcompress/checkpoints/fashion_mnist/resnet20.pt"
SETTINGS = {
    "W8A8": CompressorConfig(name="rtn", wbits=8, abits=8),
    "W4A4": CompressorConfig(name="rtn", wbits=4, abits=4),
    "70% pruned float": CompressorConfig(name="prune_magnitude", sparsity=0.7, wbits=None, abits=None),
}


def main() -> None:
    print(f"FP32 checkpoint: {os.path.getsize(CHECKPOINT)} B")
    x = torch.randn(8, 1, 28, 28)
    with tempfile.TemporaryDirectory() as tmp:
        for label, cfg in SETTINGS.items():
            model, meta = build_model(ModelConfig("resnet20", weights=str(CHECKPOINT)), 10, 1)
            result = compress(model, cfg, meta["normalization"], (1, 28, 28))
            path = result.save(Path(tmp) / "c.pt", {"model": "resnet20"})
            back = load_compressed(path, build_model(ModelConfig("resnet20"), 10, 1)[0])
            size, packed = path.stat().st_size, result.size_bits() // 8
            same = torch.equal(back.model(x), result.model(x))
            print(f"{label}: file {size} B, size_bits/8 {packed} B, header {size - packed} B, reload identical {same}")


if __name__ == "__main__":
    main()
