"""A generated, learnable image classification set for fast tests: no files, deterministic from `data.seed`.

Each class has a smooth random pattern per channel (a coarse Gaussian grid upsampled). An image is its class
pattern, shifted by up to `MAX_SHIFT` pixels, at a random contrast, plus pixel noise, in [0, 1]. Like the real
data sets, pixels are normalized with the training set's per-channel mean/std, which `normalization` records.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from lwcompress.data.base import DataConfig, ImageClassificationData

GRID = 4  # coarse pattern resolution: larger means finer, harder-to-tell patterns
MAX_SHIFT = 2
NOISE = 0.2  # pixel noise std (pixels in [0, 1])


def _generator(seed: int, stream: int) -> torch.Generator:
    """Independent random streams per seed: prototypes, train and test do not depend on each other's sizes."""
    return torch.Generator().manual_seed(3 * seed + stream)


def class_patterns(num_classes: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """(classes, channels, size + 2 * MAX_SHIFT, same) smooth patterns scaled to [-1, 1]."""
    coarse = torch.randn(num_classes, channels, GRID, GRID, generator=_generator(seed, 0))
    fine = F.interpolate(coarse, size=size + 2 * MAX_SHIFT, mode="bilinear", align_corners=False)
    return fine / fine.abs().amax(dim=(-2, -1), keepdim=True)


def sample_images(patterns: torch.Tensor, n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images in [0, 1] with balanced labels in random order: shifted, contrast-scaled patterns + noise."""
    num_classes, channels = patterns.shape[:2]
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
    dy, dx = torch.randint(0, 2 * MAX_SHIFT + 1, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(size))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(size))[:, None, None, :]
    crops = patterns[labels[:, None, None, None], torch.arange(channels)[None, :, None, None], rows, cols]
    contrast = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    noise = NOISE * torch.randn(n, channels, size, size, generator=gen)
    return (0.5 + 0.3 * contrast * crops + noise).clamp_(0, 1), labels


class SyntheticData(ImageClassificationData):
    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        self.num_classes = cfg.num_classes
        self.in_channels = cfg.channels
        self.image_size = cfg.image_size or 28

    def prepare_data(self) -> None:
        """Nothing to fetch: images are generated in `setup`."""

    def setup(self, stage: str | None = None) -> None:
        if self.train_full is not None:
            return
        cfg, size = self.cfg, self.image_size
        patterns = class_patterns(cfg.num_classes, cfg.channels, size, cfg.seed)
        x_train, y_train = sample_images(patterns, cfg.num_train, size, _generator(cfg.seed, 1))
        x_test, y_test = sample_images(patterns, cfg.num_test, size, _generator(cfg.seed, 2))
        # Rounded like the constants of the real data sets, so checkpoints record readable values.
        self.mean = tuple(round(v, 4) for v in x_train.mean(dim=(0, 2, 3)).tolist())
        self.std = tuple(round(v, 4) for v in x_train.std(dim=(0, 2, 3)).tolist())
        mean, std = torch.tensor(self.mean)[:, None, None], torch.tensor(self.std)[:, None, None]
        self.train_full = TensorDataset((x_train - mean) / std, y_train)
        self.test = TensorDataset((x_test - mean) / std, y_test)
        self._split()
