"""Model registry and safe checkpoint loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from lwcompress.errors import UserError
from lwcompress.models import MODELS, ModelConfig, build_model, load_checkpoint, save_checkpoint
from lwcompress.models.checkpoint import round_weights


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_small", "resnet8_tiny", "mobilenetv2_tiny"])
def test_small_models_have_bn_after_every_conv(name: str) -> None:
    model = MODELS.get(name)(10, 1)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == len(bns) and all(c.bias is None for c in convs)
    assert model.eval()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_mobilenetv2_small_has_depthwise_relu6_and_linear_bottlenecks() -> None:
    model = MODELS.get("mobilenetv2_small")(10, 1)
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    assert len(depthwise) == 11
    assert any(isinstance(m, torch.nn.ReLU6) for m in model.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(UserError, match="unknown model 'nope'; choose one of: .*resnet20"):
        build_model(ModelConfig(name="nope"), 10, 1)


def test_torchvision_model_needs_rgb() -> None:
    with pytest.raises(UserError, match="3-channel"):
        build_model(ModelConfig(name="resnet18"), 10, 1)


def test_checkpoint_round_trip_with_meta(tmp_path: Path) -> None:
    model = MODELS.get("resnet8_tiny")(10, 1)
    save_checkpoint(tmp_path / "m.pt", model, {"normalization": {"mean": [0.5], "std": [0.2]}})
    loaded, meta = build_model(ModelConfig(name="resnet8_tiny", weights=str(tmp_path / "m.pt")), 10, 1)
    assert meta["normalization"]["std"] == [0.2]
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_half_precision_checkpoint_computes_what_the_rounded_model_did(tmp_path: Path) -> None:
    """weights_dtype=float16 (lwcompress-pretrain): the weights are rounded before the evaluation that the manifest
    records, so the file, loaded back to float32, gives exactly the outputs that were measured; half the bytes."""
    model = MODELS.get("resnet8_tiny")(10, 1).eval()
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    round_weights(model, torch.float16)
    rounded = model(x)
    assert not torch.equal(before, rounded) and torch.allclose(before, rounded, atol=1e-2)
    save_checkpoint(tmp_path / "half.pt", model, {}, torch.float16)
    save_checkpoint(tmp_path / "full.pt", model, {})
    state, _ = load_checkpoint(tmp_path / "half.pt")
    assert {v.dtype for v in state.values()} == {torch.float16, torch.int64}  # num_batches_tracked stays integer
    loaded, _ = build_model(ModelConfig(name="resnet8_tiny", weights=str(tmp_path / "half.pt")), 10, 1)
    assert next(loaded.parameters()).dtype == torch.float32 and torch.equal(loaded(x), rounded)
    assert (tmp_path / "half.pt").stat().st_size < 0.75 * (tmp_path / "full.pt").stat().st_size  # a tiny net: headers


def test_bare_state_dict_is_accepted(tmp_path: Path) -> None:
    model = MODELS.get("resnet8_tiny")(10, 1)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    build_model(ModelConfig(name="resnet8_tiny", weights=str(tmp_path / "sd.pt")), 10, 1)


def test_corrupt_checkpoint_is_one_line_error(tmp_path: Path) -> None:
    model = MODELS.get("resnet8_tiny")(10, 1)
    save_checkpoint(tmp_path / "m.pt", model, {})
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read checkpoint .*cut.pt") as e:
        load_checkpoint(tmp_path / "cut.pt")
    assert "\n" not in str(e.value)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_pickled_module_and_text_file_say_what_to_do(tmp_path: Path) -> None:
    """torch.save(model) is refused with the reason and the fix, and never with torch's advice to load unsafely."""
    torch.save(MODELS.get("resnet8_tiny")(10, 1), tmp_path / "full.pt")
    with pytest.raises(UserError) as e:
        load_checkpoint(tmp_path / "full.pt")
    message = str(e.value)
    assert "pickled object (lwcompress.models.small.CifarResNet)" in message and "model.state_dict()" in message
    assert "weights_only=False" not in message and "\n" not in message
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match=r"^cannot read checkpoint .*notes.pt: corrupt or not a torch file \(\w+\)$"):
        load_checkpoint(tmp_path / "notes.pt")


def test_state_dict_that_does_not_fit_is_one_line_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", MODELS.get("resnet8_tiny")(10, 1), {})
    with pytest.raises(UserError, match="does not fit CifarResNet: .*missing.*unexpected|wrong shape") as e:
        build_model(ModelConfig(name="resnet20", weights=str(tmp_path / "m.pt")), 10, 1)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="wrong shape"):
        build_model(ModelConfig(name="resnet8_tiny", weights=str(tmp_path / "m.pt")), 7, 1)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="checkpoint not found"):
        build_model(ModelConfig(name="resnet8_tiny", weights=str(tmp_path / "none.pt")), 10, 1)


def test_user_model_by_target(tmp_path: Path) -> None:
    cfg = ModelConfig(name="custom", target="lwcompress.models.small.CifarResNet", kwargs={"depth": 8, "width": 4})
    model, _ = build_model(cfg, 10, 1)
    save_checkpoint(tmp_path / "c.pt", model, {})
    reloaded, _ = build_model(ModelConfig(**{**cfg.__dict__, "weights": str(tmp_path / "c.pt")}), 10, 1)
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())
    with pytest.raises(UserError, match="cannot import"):
        build_model(ModelConfig(name="custom", target="no.such.Module"), 10, 1)


def test_pretrained_weights_only_for_torchvision() -> None:
    with pytest.raises(UserError, match="only for torchvision"):
        build_model(ModelConfig(name="resnet20", weights="DEFAULT"), 10, 1)


def test_packaged_checkpoints_match_manifest() -> None:
    """The committed reference checkpoints load safely, fit their model and are the files the manifest names."""
    import hashlib
    import json

    from lwcompress.cli import PACKAGE_DIR
    from lwcompress.data.fashion_mnist import FashionMNISTData

    root = Path(PACKAGE_DIR) / "checkpoints"
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert {"fashion_mnist/resnet20.pt", "fashion_mnist/mobilenetv2_small.pt"} <= set(manifest)
    for rel, entry in manifest.items():
        path = root / rel
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["command"].startswith("lwcompress-pretrain ") and entry["test_top1"] >= 90
        channels = load_checkpoint(path)[1]["input_shape"][0]  # 3 for the torchvision nets (the gray repeated)
        _, meta = build_model(ModelConfig(name=path.stem, weights=str(path)), 10, channels)
        assert meta["normalization"] == {"mean": list(FashionMNISTData.mean) * channels,
                                         "std": list(FashionMNISTData.std) * channels}  # fmt: skip
