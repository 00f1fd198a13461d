"""How unequally ZeroQ's absolute BN distance weighs a network's BatchNorms: its term for a BN scales with the norm of
the BN's running std, so the spread of those norms (max / min over the BNs) says how far the loss leans on the large
ones, where per-BN weighting (`generator.bn_distance=per_bn`) weighs every BN alike (round12_tuning.md §2). Reads
the committed checkpoints; no data, no images.

    python experiments/probes/bn_scale_spread.py
"""

from __future__ import annotations

from pathlib import Path

import torch

from lwcompress.models.checkpoint import load_checkpoint

CHECKPOINTS = Path(__file__).resolve().parents[2] / "lwcompress" / "checkpoints" / "fashion_mnist"


def main() -> None:
    for path in sorted(CHECKPOINTS.glob("*.pt")):
        state, _ = load_checkpoint(path)
        norms = torch.tensor([float((v + 1e-5).sqrt().norm()) for k, v in state.items() if k.endswith("running_var")])
        print(f"{path.stem}: {len(norms)} BNs, running-std norms {norms.min():.2f} .. {norms.max():.2f}, "
              f"spread {norms.max() / norms.min():.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
