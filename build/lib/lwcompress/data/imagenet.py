"""ImageNet (or any image-folder data set) in the standard layout: `<root>/train/<class>/*` and `<root>/val/<class>/*`.

ImageNet's own val set is the reporting (`test`) set; the validation split for tuning is carved from train
and seen through the evaluation transforms. Inputs use torchvision's ImageNet normalization, so the
pretrained torchvision models apply unchanged.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torchvision import transforms
from torchvision.datasets import ImageFolder

from lwcompress.data.base import DataConfig, ImageClassificationData
from lwcompress.errors import UserError

LAYOUT = "expected <root>/train/<class>/<images> and <root>/val/<class>/<images>, one folder per class; set data.root"


def _image_folder(path: Path, transform: transforms.Compose) -> ImageFolder:
    """ImageFolder whose layout problems (no class folders, an empty class) are one-line UserErrors."""
    try:
        return ImageFolder(str(path), transform=transform)
    except FileNotFoundError as e:
        raise UserError(f"{path}: {str(e).splitlines()[0]}; {LAYOUT}") from None


class ImageNetData(ImageClassificationData):
    in_channels = 3
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        self.image_size = cfg.image_size or 224
        self.resize_size = cfg.resize_size or round(self.image_size / 0.875)
        normalize = [transforms.ToTensor(), transforms.Normalize(self.mean, self.std)]
        self.train_transform = transforms.Compose(
            [transforms.RandomResizedCrop(self.image_size), transforms.RandomHorizontalFlip(), *normalize]
        )
        self.eval_transform = transforms.Compose(
            [transforms.Resize(self.resize_size), transforms.CenterCrop(self.image_size), *normalize]
        )

    def _renormalize(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Images are normalized by the transforms as they load: their Normalize takes the new values."""
        for pipeline in (self.train_transform, self.eval_transform):
            for t in pipeline.transforms:
                if isinstance(t, transforms.Normalize):
                    t.mean, t.std = mean.tolist(), std.tolist()

    def folders(self) -> tuple[Path, Path]:
        """The train and val folders, or a UserError naming the first one missing."""
        root = Path(self.cfg.root if self.cfg.root is not None else self.cfg.default_root)
        for path in (root, root / "train", root / "val"):
            if not path.is_dir():
                raise UserError(f"ImageNet folder {path} not found; {LAYOUT}")
        return root / "train", root / "val"

    def prepare_data(self) -> None:
        self.folders()

    def setup(self, stage: str | None = None) -> None:
        if self.train_full is not None:
            return
        train_dir, val_dir = self.folders()
        self.train_full = _image_folder(train_dir, self.train_transform)
        self.test = _image_folder(val_dir, self.eval_transform)
        train_classes, val_classes = self.train_full.classes, self.test.classes
        if train_classes != val_classes:
            only_train = sorted(set(train_classes) - set(val_classes))[:3]
            only_val = sorted(set(val_classes) - set(train_classes))[:3]
            raise UserError(
                f"{train_dir} has {len(train_classes)} classes, {val_dir} has {len(val_classes)}; "
                f"only in train: {only_train}, only in val: {only_val}"
            )
        self.num_classes = len(train_classes)
        # Same sample list, evaluation transforms: the tuning split must not see random crops.
        eval_view = copy.copy(self.train_full)
        eval_view.transform = self.eval_transform
        self._split(eval_view)
