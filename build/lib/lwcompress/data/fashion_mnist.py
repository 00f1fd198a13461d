"""Fashion-MNIST (60k/10k 28x28 grayscale) read straight from its IDX files.

Where the files are looked for: in `data.root` only when it is set; otherwise in the Debian package
`dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist), then in `data.default_root`. A folder may be flat or in
torchvision's FashionMNIST/raw layout; when the files are missing, torchvision downloads them into that folder
(`data.root`, else `data.default_root`) if `data.download` is set and the network allows.

ImageNet geometry: `data.image_size` (e.g. 64) upsamples every image bilinearly from 28x28 and `data.channels=3`
repeats the gray channel, so an unmodified torchvision network (7x7 stride-2 stem, max-pool, 3-channel input) sees
feature maps of a meaningful size. Both apply alike to training, compression (real images) and evaluation, and the
checkpoint records the input shape, so a model trained this way is only ever fed images of that shape.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from lwcompress.data.base import DataConfig, ImageClassificationData, random_crop_flip
from lwcompress.errors import UserError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOWTO = ("install it with `apt-get install dataset-fashion-mnist` (found when data.root is unset) or set data.root to "
         "a folder holding its IDX files")  # fmt: skip


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic (2 zero bytes, dtype code 0x08, ndim), dims, payload."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: {data.size} bytes for shape {dims}")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "FashionMNIST" / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def locate(root: str | Path | None, download: bool, default_root: str | Path = "data") -> Path:
    """Return a folder holding all four IDX files: `root` if given (an explicit folder is never swapped for another
    copy), else the system copy or `default_root`; downloading into that folder as a last resort."""
    stems = [s for pair in FILES.values() for s in pair]
    candidates = [Path(root)] if root is not None else [SYSTEM_DIR, Path(default_root)]
    for folder in candidates:
        if all(_find(folder, s) for s in stems):
            return folder
    root = candidates[-1]
    if download:
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
        except Exception as e:
            where = " or ".join(str(c) for c in candidates)
            raise UserError(f"Fashion-MNIST not found in {where} and the download into {root} failed "
                            f"({type(e).__name__}); {HOWTO}") from None  # fmt: skip
        return Path(root)
    where = " or ".join(str(c) for c in candidates)
    raise UserError(f"Fashion-MNIST not found in {where} (data.download=false); {HOWTO}")


class FashionMNISTData(ImageClassificationData):
    num_classes = 10
    in_channels = 1
    image_size = 28
    # Pixel statistics of the training set; images are normalized once at load time.
    mean = (0.2860,)
    std = (0.3530,)

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        if cfg.channels not in (1, 3):
            raise UserError(f"data.channels={cfg.channels}: fashion_mnist is gray; 1, or 3 (the channel repeated)")
        self.folder: Path | None = None
        self.image_size = cfg.image_size or FashionMNISTData.image_size
        self.in_channels = cfg.channels
        self.mean, self.std = self.mean * cfg.channels, self.std * cfg.channels

    def prepare_data(self) -> None:
        self.folder = locate(self.cfg.root, self.cfg.download, self.cfg.default_root)

    def _load(self, split: str) -> TensorDataset:
        images, labels = (read_idx(_find(self.folder, s)) for s in FILES[split])
        x = torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1)
        if self.image_size != x.shape[-1]:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False).clamp_(0, 1)
        x = x.sub_(self.mean[0]).div_(self.std[0]).expand(-1, self.in_channels, -1, -1).contiguous()
        return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))

    def setup(self, stage: str | None = None) -> None:
        if self.train_full is not None:
            return
        if self.folder is None:
            self.prepare_data()
        self.train_full, self.test = self._load("train"), self._load("test")
        self._split()

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        # 2 pixels at 28x28: the same fraction of the image at any size
        return random_crop_flip(x, pad=max(1, round(2 * self.image_size / FashionMNISTData.image_size)), flip=True)
