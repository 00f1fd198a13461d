"""What every data module shares: a validation split carved from the training set, batch-level
augmentation, and the input normalization that the data-free generators need later."""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lwcompress.errors import UserError
from lwcompress.fields import bounded, check


@dataclass
class DataConfig:
    """Fields common to all data sets. `val_size` images are held out of the training set for
    choosing defaults; the test set is only for reporting.

    `image_size` is the side of the square model input, None for the data set's own (imagenet 224, synthetic and
    fashion_mnist 28; fashion_mnist upsamples to it); `resize_size` (imagenet) is the shorter side that evaluation
    images are resized to before the center crop, None for image_size / 0.875 (256 for 224). `num_train`,
    `num_test` and `num_classes` size the generated `synthetic` set; other data sets take them from their files.
    `channels`: the synthetic set's channels, or 3 for fashion_mnist to repeat its gray channel (for 3-channel
    networks such as torchvision's). `root`: the folder
    holding the data set, used exactly as given; null lets the data set look in its usual places (fashion_mnist:
    Debian's copy, then `default_root`, where it is also downloaded).
    """

    name: str = "fashion_mnist"
    root: str | None = None
    default_root: str = "data"
    batch_size: int = bounded(128, 1)
    eval_batch_size: int = bounded(100, 1)
    num_workers: int = bounded(0, 0)
    val_size: int = bounded(5000, 0)
    seed: int = 0
    download: bool = True
    image_size: int | None = bounded(None, 1, optional=True)
    resize_size: int | None = bounded(None, 1, optional=True)
    num_train: int = bounded(2000, 1)
    num_test: int = bounded(500, 1)
    num_classes: int = bounded(10, 2)
    channels: int = bounded(1, 1)

    def __post_init__(self) -> None:
        check(self)
        if self.image_size is not None and self.resize_size is not None and self.resize_size < self.image_size:
            raise UserError(f"resize_size={self.resize_size}: must be >= image_size ({self.image_size})")


class ImageClassificationData(pl.LightningDataModule):
    """Base class: subclasses fill `train_full` and `test` in `setup` and set the class attributes below."""

    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_full: Dataset | None = None
        self.test: Dataset | None = None
        self.train: Dataset | None = None
        self.val: Dataset | None = None

    @property
    def normalization(self) -> dict[str, list[float]]:
        """Per-channel mean/std that turn [0, 1] pixels into the model's input space."""
        return {"mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> dict:
        """Everything a checkpoint must remember about its inputs."""
        return {
            "data": self.cfg.name,
            "num_classes": self.num_classes,
            "input_shape": [self.in_channels, self.image_size, self.image_size],
            "normalization": self.normalization,
        }

    def renormalize(self, normalization: dict[str, list[float]]) -> None:
        """After `setup`: normalize the images with `normalization` (what the model was trained with) in place of the
        data set's own values."""
        if self.train_full is None:
            raise RuntimeError("renormalize() needs setup() first")
        self._renormalize(torch.tensor(normalization["mean"]), torch.tensor(normalization["std"]))
        self.mean, self.std = tuple(normalization["mean"]), tuple(normalization["std"])

    def _renormalize(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Images kept as normalized tensors: x' = (x * std_old + mean_old - mean) / std per channel, in place."""
        scale = (torch.tensor(self.std) / std).view(-1, 1, 1)
        shift = ((torch.tensor(self.mean) - mean) / std).view(-1, 1, 1)
        for ds in {id(d): d for d in (self.train_full, self.test)}.values():
            ds.tensors[0].mul_(scale).add_(shift)

    def _split(self, eval_view: Dataset | None = None) -> None:
        """Hold out `val_size` (at most a fifth) of `train_full`, the same images for the same seed.
        `eval_view`: the same samples under evaluation transforms (no random crops), used for val if given."""
        n = len(self.train_full)
        val_size = min(self.cfg.val_size, n // 5)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed)).tolist()
        self.eval_view = self.train_full if eval_view is None else eval_view
        self.val = Subset(self.eval_view, perm[:val_size])
        self.train = Subset(self.train_full, perm[val_size:])

    def train_images(self, n: int) -> torch.Tensor:
        """`n` training images (a seeded random subset, disjoint from val) under evaluation transforms: real
        data for generator=real and for per-layer diagnostics."""
        return torch.stack([self.eval_view[i][0] for i in self.train.indices[:n]])

    def _loader(self, ds: Dataset, train: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size if train else self.cfg.eval_batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, False)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Training augmentation on a whole batch (cheap on CPU and GPU alike); identity by default."""
        return x

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training:
            x, y = batch
            return self.augment(x), y
        return batch


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool) -> torch.Tensor:
    """Random translation by up to `pad` pixels (zero-padded, as in pad-and-crop) and horizontal flips."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=float(x.min()))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device) < 0.5
        out[mask] = out[mask].flip(-1)
    return out
