"""lwcompress.data: IDX reading, Fashion-MNIST, ImageNet image folders, the generated set, splits, augmentation."""

from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lwcompress import cli
from lwcompress.data import DATA, DataConfig, build_data, fashion_mnist
from lwcompress.data.fashion_mnist import FashionMNISTData, locate, read_idx
from lwcompress.errors import UserError

CONF_DIR = Path(cli.CONF_DIR) / "data"
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0x0000, dtype 0x08, ndim, big-endian dims, payload."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic(**overrides) -> DataConfig:
    return DataConfig(**{"name": "synthetic", "num_train": 200, "num_test": 100, "image_size": 12, **overrides})


# --- Fashion-MNIST -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    array = np.arange(3 * 2 * 5, dtype=np.uint8).reshape(3, 2, 5)
    path = tmp_path / ("images.gz" if gz else "images")
    path.write_bytes(gzip.compress(idx_bytes(array)) if gz else idx_bytes(array))
    out = read_idx(path)
    assert out.shape == (3, 2, 5) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize(
    "content, message",
    [
        (idx_bytes(np.zeros((4, 3, 3)))[:-5], "truncated"),
        (b"\x00\x00\x0d\x01" + (2).to_bytes(4, "big") + b"\x00" * 8, "not an unsigned-byte IDX"),  # float32 code
        (b"PK\x03\x04junk", "not an unsigned-byte IDX"),
        (b"\x00\x00", "not an unsigned-byte IDX"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_idx(path)


def test_locate_without_files_tells_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        locate(None, download=False, default_root=tmp_path / "default")


def fake_idx_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stems in fashion_mnist.FILES.values():
        for stem in stems:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(2))))
    return folder


def test_locate_finds_gz_files_in_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    assert locate(fake_idx_files(tmp_path / "mine"), download=False) == tmp_path / "mine"
    assert locate(None, download=False, default_root=fake_idx_files(tmp_path / "default")) == tmp_path / "default"


def test_explicit_root_is_honoured_over_the_system_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data.root=DIR means DIR: never silently the system copy, and a DIR without the files is one clear error."""
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", fake_idx_files(tmp_path / "system"))
    assert locate(None, download=False, default_root=tmp_path / "default") == tmp_path / "system"
    assert locate(fake_idx_files(tmp_path / "mine"), download=False) == tmp_path / "mine"
    with pytest.raises(UserError, match=r"not found in /nonexistent \(data.download=false\)"):
        locate("/nonexistent", download=False)


@pytest.mark.skipif(not fashion_mnist.SYSTEM_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_module() -> None:
    dm = build_data(DataConfig(val_size=5000, download=False))
    assert (len(dm.train), len(dm.val), len(dm.test)) == (55000, 5000, 10000)
    x, y = dm.train_full.tensors
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,)
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01
    assert sorted(y.unique().tolist()) == list(range(10))
    assert dm.describe() == {
        "data": "fashion_mnist",
        "num_classes": 10,
        "input_shape": [1, 28, 28],
        "normalization": {"mean": [0.2860], "std": [0.3530]},
    }


def test_fashion_mnist_at_imagenet_geometry(tmp_path: Path) -> None:
    """data.image_size upsamples, data.channels=3 repeats the gray channel: for training, real images and evaluation
    alike, and the recorded input shape and normalization say so."""
    rng = np.random.default_rng(0)
    for split, (images, labels) in fashion_mnist.FILES.items():
        n = 40 if split == "train" else 10
        (tmp_path / f"{images}.gz").write_bytes(gzip.compress(idx_bytes(rng.integers(0, 256, (n, 28, 28)))))
        (tmp_path / f"{labels}.gz").write_bytes(gzip.compress(idx_bytes(np.arange(n) % 10)))
    plain = build_data(DataConfig(root=str(tmp_path), val_size=8, download=False))
    dm = build_data(DataConfig(root=str(tmp_path), val_size=8, download=False, image_size=64, channels=3))
    for d in (plain, dm):
        d.setup("fit")
    x = dm.test.tensors[0]
    assert x.shape == (10, 3, 64, 64) and torch.equal(x[:, 0], x[:, 2])
    assert dm.train_images(4).shape == (4, 3, 64, 64) and next(iter(dm.val_dataloader()))[0].shape[1:] == (3, 64, 64)
    # the same pictures in the same normalized units: every image keeps its mean brightness
    assert torch.allclose(x.mean(dim=(1, 2, 3)), plain.test.tensors[0].mean(dim=(1, 2, 3)), atol=0.02)
    assert dm.describe()["input_shape"] == [3, 64, 64]
    assert dm.describe()["normalization"] == {"mean": [0.2860] * 3, "std": [0.3530] * 3}
    assert dm.augment(x).shape == x.shape
    with pytest.raises(UserError, match="data.channels=2: fashion_mnist is gray"):
        build_data(DataConfig(root=str(tmp_path), channels=2))


# --- the generated set ---------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_from_seed() -> None:
    a, b, c = build_data(synthetic()), build_data(synthetic()), build_data(synthetic(seed=1))
    for split in ("train_full", "test"):
        torch.testing.assert_close(getattr(a, split).tensors, getattr(b, split).tensors, rtol=0, atol=0)
        assert not torch.equal(getattr(a, split).tensors[0], getattr(c, split).tensors[0])
    assert a.normalization == b.normalization


def test_synthetic_shapes_and_normalization() -> None:
    dm = build_data(synthetic(channels=3, num_classes=4, image_size=10))
    x, y = dm.train_full.tensors
    assert x.shape == (200, 3, 10, 10) and dm.test.tensors[0].shape == (100, 3, 10, 10)
    assert torch.bincount(y).tolist() == [50] * 4  # balanced classes
    assert dm.describe()["input_shape"] == [3, 10, 10] and dm.num_classes == 4
    mean, std = torch.tensor(dm.normalization["mean"]), torch.tensor(dm.normalization["std"])
    assert len(mean) == 3 and torch.all((std > 0.05) & (std < 0.5))
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    # The recorded normalization maps the generated [0, 1] pixels exactly onto the stored tensors.
    lo, hi = ((0 - mean) / std)[:, None, None], ((1 - mean) / std)[:, None, None]
    assert torch.all(x >= lo - 1e-5) and torch.all(x <= hi + 1e-5)
    assert torch.isclose(x, lo.expand_as(x)).any() and torch.isclose(x, hi.expand_as(x)).any()


def test_synthetic_is_learnable() -> None:
    """A linear classifier fit on the training images beats chance (1/4) by far on the test images."""
    dm = build_data(synthetic(num_classes=4))
    (x, y), (x_test, y_test) = dm.train_full.tensors, dm.test.tensors
    torch.manual_seed(0)
    model = torch.nn.Linear(x[0].numel(), 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x.flatten(1)), y).backward()
        opt.step()
    accuracy = (model(x_test.flatten(1)).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.6


# --- split and augmentation ----------------------------------------------------------------------------------


def test_split_is_deterministic_and_disjoint() -> None:
    a, b = build_data(synthetic(val_size=30)), build_data(synthetic(val_size=30))
    other = build_data(synthetic(val_size=30, seed=1))
    assert a.val.indices == b.val.indices and a.train.indices == b.train.indices
    assert a.val.indices != other.val.indices
    assert len(a.val) == 30 and not set(a.val.indices) & set(a.train.indices)
    assert sorted(a.val.indices + a.train.indices) == list(range(200))


def test_val_size_is_capped_at_a_fifth_of_train() -> None:
    dm = build_data(synthetic(val_size=10_000))
    assert (len(dm.train), len(dm.val)) == (160, 40)


def test_augmentation_changes_training_batches_only() -> None:
    dm = FashionMNISTData(DataConfig())
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    assert dm.on_after_batch_transfer((x, y), 0) == (x, y)  # no trainer attached
    dm.trainer = SimpleNamespace(training=False)
    x_eval, y_eval = dm.on_after_batch_transfer((x, y), 0)
    assert x_eval is x and y_eval is y
    dm.trainer = SimpleNamespace(training=True)
    x_train, y_train = dm.on_after_batch_transfer((x, y), 0)
    assert x_train.shape == x.shape and y_train is y
    assert not torch.equal(x_train, x)


# --- ImageNet-style folders ----------------------------------------------------------------------------------


def write_images(folder: Path, classes: list[str], per_class: int, rng: np.random.Generator) -> None:
    """Random-size PNGs, each a solid random color so that the normalized value can be checked exactly."""
    for cls in classes:
        (folder / cls).mkdir(parents=True)
        for i in range(per_class):
            w, h = (int(v) for v in rng.integers(20, 60, size=2))
            color = tuple(int(v) for v in rng.integers(0, 256, size=3))
            Image.new("RGB", (w, h), color).save(folder / cls / f"{i}.png")


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    write_images(tmp_path / "train", ["cat", "dog", "eel"], 4, rng)
    write_images(tmp_path / "val", ["cat", "dog", "eel"], 2, rng)
    return tmp_path


def imagenet(root: Path, **overrides) -> DataConfig:
    return DataConfig(**{"name": "imagenet", "root": str(root), "image_size": 32, "resize_size": 36,
                         "val_size": 2, "batch_size": 4, "eval_batch_size": 3, **overrides})  # fmt: skip


def test_imagenet_module_shapes_and_normalization(image_root: Path) -> None:
    dm = build_data(imagenet(image_root))
    assert dm.num_classes == 3 and dm.in_channels == 3
    assert (len(dm.train), len(dm.val), len(dm.test)) == (10, 2, 6)
    assert dm.describe() == {
        "data": "imagenet",
        "num_classes": 3,
        "input_shape": [3, 32, 32],
        "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    }
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [0, 0, 1]
    # A solid-color test image becomes exactly (color / 255 - mean) / std per channel.
    path, _ = dm.test.samples[0]
    color = torch.tensor(Image.open(path).getpixel((0, 0)), dtype=torch.float32) / 255
    expected = (color - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0], expected[:, None, None].expand(3, 32, 32), atol=1e-5, rtol=0)


def test_imagenet_val_split_uses_eval_transforms(image_root: Path) -> None:
    dm = build_data(imagenet(image_root, val_size=2))
    torch.manual_seed(0)
    assert torch.equal(dm.val[0][0], dm.val[0][0])  # resize + center crop: deterministic
    assert dm.val.dataset.transform is dm.eval_transform and dm.train.dataset.transform is dm.train_transform
    assert dm.val.dataset.samples is dm.train_full.samples


def test_imagenet_default_sizes(image_root: Path) -> None:
    dm = DATA.get("imagenet")(DataConfig(name="imagenet", root=str(image_root)))
    assert (dm.image_size, dm.resize_size) == (224, 256)


def test_imagenet_class_mismatch(image_root: Path) -> None:
    write_images(image_root / "val", ["fox"], 1, np.random.default_rng(1))
    with pytest.raises(UserError, match=r"3 classes.*has 4.*only in val: \['fox'\]"):
        build_data(imagenet(image_root))


@pytest.mark.parametrize("missing", ["", "train", "val"])
def test_imagenet_missing_folder(tmp_path: Path, missing: str) -> None:
    for sub in ("train", "val"):
        if sub != missing:
            write_images(tmp_path / sub, ["cat"], 1, np.random.default_rng(0))
    root = tmp_path / "nowhere" if missing == "" else tmp_path
    with pytest.raises(UserError, match="one folder per class") as e:
        build_data(imagenet(root))
    assert str(root / missing).rstrip("/") in str(e.value) and "\n" not in str(e.value)


def test_imagenet_flat_val_folder(image_root: Path) -> None:
    """ImageNet's val archive unpacks flat (no class folders) and must be sorted into them first."""
    flat = image_root / "val"
    for cls in ("cat", "dog", "eel"):
        for png in (flat / cls).iterdir():
            png.rename(flat / f"{cls}-{png.name}")
        (flat / cls).rmdir()
    with pytest.raises(UserError, match="one folder per class") as e:
        build_data(imagenet(image_root))
    assert "\n" not in str(e.value)


# --- config --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"val_size": -1}, "val_size=-1"),
        ({"num_workers": -2}, "num_workers=-2"),
        ({"num_classes": 1}, "num_classes=1"),
        ({"image_size": 0}, "image_size=0"),
        ({"image_size": 32, "resize_size": 30}, r"resize_size=30: must be >= image_size \(32\)"),
    ],
)
def test_data_config_bounds(overrides: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        DataConfig(**overrides)


@pytest.mark.parametrize("path", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_data_yaml_matches_schema(path: Path) -> None:
    """Every data config sets only DataConfig fields, with valid values, and names a registered module."""
    values = OmegaConf.to_container(OmegaConf.load(path))
    assert values["name"] == path.stem and path.stem in DATA
    values.pop("root", None)  # an interpolation of paths.data_dir
    DataConfig(**values)
