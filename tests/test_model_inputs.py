"""What a model expects of its input: declared, recorded in the checkpoint, or the data set's normalization; the
data re-normalized to it; conflicts and gaps as one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lwcompress.data import DataConfig, build_data
from lwcompress.errors import UserError
from lwcompress.models.inputs import check_input_size, declared_normalization, resolve_normalization

from .conftest import run_cli

DATA = {"mean": [0.286], "std": [0.353]}
MODEL = {"mean": [0.5], "std": [0.25]}


def resolve(declared, meta: dict, weights: str | None = "m.pt", channels: int = 1) -> dict:
    return resolve_normalization(declared_normalization(declared), meta, DATA, "fashion_mnist", channels, weights)


def test_precedence_declared_then_recorded_then_data(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve(MODEL, {}) == MODEL
    assert resolve(MODEL, {"normalization": MODEL}) == MODEL
    assert resolve("from_checkpoint", {"normalization": MODEL}) == MODEL
    assert resolve(None, {"normalization": MODEL}) == MODEL and not caplog.records
    with caplog.at_level(logging.WARNING, logger="lwcompress"):
        assert resolve(None, {}) == DATA
    (record,) = caplog.records
    assert "model.normalization not declared" in record.message and "mean=[0.286] std=[0.353]" in record.message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lwcompress"):
        assert resolve(None, {}, weights=None) == DATA  # random weights: nothing was trained, nothing to warn about
    assert not caplog.records
    assert resolve(None, {"normalization": MODEL}, channels=3) == {"mean": [0.5] * 3, "std": [0.25] * 3}


@pytest.mark.parametrize(
    ("declared", "meta", "channels", "message"),
    [
        (MODEL, {"normalization": DATA}, 1, "model.normalization={'mean': [0.5], 'std': [0.25]} contradicts"),
        ("from_checkpoint", {}, 1, "model.normalization=from_checkpoint, but checkpoint m.pt records none"),
        ({"mean": [0.5, 0.5], "std": [1, 1]}, {}, 3, "has 2 values per key; the data has 3 channel(s)"),
    ],
)
def test_conflicts_and_gaps_are_one_line_errors(declared, meta: dict, channels: int, message: str) -> None:
    with pytest.raises(UserError, match=r"^[^\n]+$") as e:
        resolve(declared, meta, channels=channels)
    assert message in str(e.value)


@pytest.mark.parametrize("bad", [{"mean": [0.5]}, {"mean": [0.5], "std": [0.0]}, {"mean": ["a"], "std": [1]}, "auto"])
def test_malformed_declarations(bad) -> None:
    with pytest.raises(UserError, match="normalization="):
        declared_normalization(bad)


def test_input_size_declared_recorded_and_delivered() -> None:
    check_input_size(None, {}, 28, "fashion_mnist")
    check_input_size(28, {"input_shape": [1, 28, 28]}, 28, "fashion_mnist")
    with pytest.raises(UserError, match="model.input_size is 32 but fashion_mnist gives 28x28 images"):
        check_input_size(32, {}, 28, "fashion_mnist")
    with pytest.raises(UserError, match="the checkpoint's input shape is 32 but"):
        check_input_size(None, {"input_shape": [1, 32, 32]}, 28, "fashion_mnist")
    with pytest.raises(UserError, match="model.input_size=28 contradicts the checkpoint"):
        check_input_size(28, {"input_shape": [1, 32, 32]}, 28, "fashion_mnist")


def test_renormalize_keeps_the_pixels() -> None:
    dm = build_data(DataConfig(name="synthetic", num_train=40, num_test=20, val_size=8))
    mean, std = (torch.tensor(v).view(-1, 1, 1) for v in dm.normalization.values())
    before = dm.test.tensors[0].clone() * std + mean
    dm.renormalize(MODEL)
    after = dm.test.tensors[0] * 0.25 + 0.5
    assert dm.normalization == MODEL and torch.allclose(before, after, atol=1e-6)
    assert torch.equal(dm.val[0][0], dm.train_full.tensors[0][dm.val.indices[0]])  # val is a view of the same images


def test_plain_state_dict_through_model_custom(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A user's class and a plain state_dict: a one-line warning names the normalization used; declared, none."""
    plain = tmp_path / "plain.pt"
    torch.save(torch.load(tiny_checkpoint, weights_only=True)["state_dict"], plain)
    common = ["lwcompress", "model=custom", "model.target=lwcompress.models.small.CifarResNet", "+model.kwargs.depth=8",
              "+model.kwargs.width=4", f"model.weights={plain}", "data=synthetic", "threads=1", "compressor=rtn",
              "trainer.enable_progress_bar=false", "save_model=false", "eval_fp=false"]  # fmt: skip
    warned = run_cli(*common, f"hydra.run.dir={tmp_path / 'a'}")
    lines = [ln for ln in (warned.stdout + warned.stderr).splitlines() if "model.normalization not declared" in ln]
    assert len(lines) == 1 and "synthetic's mean=" in lines[0]
    norm = torch.load(tiny_checkpoint, weights_only=True)["meta"]["normalization"]
    declared = f"model.normalization={{mean: {norm['mean']}, std: {norm['std']}}}"
    quiet = run_cli(*common, declared, f"hydra.run.dir={tmp_path / 'b'}")
    assert "model.normalization not declared" not in quiet.stdout + quiet.stderr
