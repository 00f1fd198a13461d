"""Data-free input ranges and the compress() API on small models."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from lwcompress.api import compress, load_compressed
from lwcompress.compress import CompressedLayer, CompressorConfig
from lwcompress.errors import UserError
from lwcompress.generate import input_ranges, mse_ranges
from lwcompress.generate.ranges import mse_clip
from lwcompress.graph import analyze
from lwcompress.models import MODELS
from lwcompress.precondition import DFQConfig

NORM = {"mean": [0.5], "std": [0.25]}  # pixels in [0, 1] -> normalized [-2, 2]


def images(n: int) -> torch.Tensor:
    """Random images in the model's input space (NORM-normalized [0, 1] pixels)."""
    return (torch.rand(n, 1, 28, 28) - 0.5) / 0.25


class HandSet(nn.Module):
    """conv-BN-ReLU -> conv-BN (+ residual) -> ReLU6 -> pool -> linear, with BN parameters set by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2)
        self.conv2, self.bn2 = nn.Conv2d(2, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2)
        self.relu, self.relu6 = nn.ReLU(), nn.ReLU6()
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.bn1.weight.copy_(torch.tensor([1.0, -2.0]))
            self.bn1.bias.copy_(torch.tensor([0.5, 1.0]))
            self.bn2.weight.copy_(torch.tensor([0.5, 0.1]))
            self.bn2.bias.copy_(torch.tensor([-1.0, 0.2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.bn1(self.conv1(x)))
        b = self.relu6(self.bn2(self.conv2(a)) + a)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(b, 1), 1))


def calibrated(name: str) -> nn.Module:
    """A random model whose BN running statistics match its inputs, as in a trained network."""
    model = MODELS.get(name)(10, 1)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        for _ in range(4):
            model.train()(images(64))
    return model.eval()


def test_input_ranges_from_bn_statistics() -> None:
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    ranges = input_ranges(model, layers, sigmas=3.0, normalization=NORM)
    assert ranges["conv1"] == pytest.approx((-2.0, 2.0))  # the image's normalized pixel range
    # relu(bn1): beta + 3|gamma| = 0.5 + 3 = 3.5 and 1 + 6 = 7 -> max 7, lower end clipped at 0
    assert ranges["conv2"] == pytest.approx((0.0, 7.0))
    # relu6(bn2 + relu(bn1)): upper bounds add (2.5 + 7 = 9.5) and ReLU6 caps them at 6
    assert ranges["fc"] == pytest.approx((0.0, 6.0))


def test_ranges_cover_the_gaussian_input_model() -> None:
    """Sampling each BN output from N(beta, gamma^2) and running the path stays inside the 6-sigma range."""
    model = MODELS.get("resnet8_tiny")(10, 1).eval()
    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data = torch.rand(bn.num_features, generator=gen) + 0.2
        bn.bias.data = torch.randn(bn.num_features, generator=gen)
    layers = analyze(model, torch.zeros(1, 1, 28, 28))
    ranges = input_ranges(model, layers, sigmas=6.0, normalization=NORM)
    for info in layers[1:]:
        sources = []
        for s in info.sources:
            bn = model.get_submodule(s.name)
            shape = (64, *s.shape)
            noise = torch.randn(shape, generator=gen)
            sources.append(
                bn.bias.view(1, -1, *[1] * (len(shape) - 2)) + noise * bn.weight.view(1, -1, *[1] * (len(shape) - 2))
            )
        x = info.path(*sources)
        lo, hi = ranges[info.name]
        assert lo <= float(x.min()) and float(x.max()) <= hi, info.name


class LinearSum(nn.Module):
    """bn1 + bn2 fed to conv3 with nothing in between: a linear bottleneck's residual stream."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)
        self.conv2, self.bn2 = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)
        self.conv3 = nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            self.bn1.weight.copy_(torch.tensor([3.0, -1.0]))
            self.bn1.bias.copy_(torch.tensor([0.5, 0.0]))
            self.bn2.weight.copy_(torch.tensor([4.0, 1.0]))
            self.bn2.bias.copy_(torch.tensor([-1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn1(self.conv1(x))
        return self.conv3(self.bn2(self.conv2(a)) + a)


def test_residual_sums_add_bounds_or_combine_in_quadrature() -> None:
    model = LinearSum().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    # channel 0: mean 0.5 - 1 = -0.5, sigmas 3 and 4: bounds -0.5 +- 2 * 7, quadrature -0.5 +- 2 * 5
    bounds = input_ranges(model, layers, sigmas=2.0, normalization=NORM)["conv3"]
    quadrature = input_ranges(model, layers, sigmas=2.0, normalization=NORM, sums="quadrature")["conv3"]
    assert bounds == pytest.approx((-14.5, 13.5)) and quadrature == pytest.approx((-10.5, 9.5))
    # a single term keeps its own bound under either rule
    assert input_ranges(model, layers, sigmas=2.0, normalization=NORM, sums="quadrature")["conv2"] == pytest.approx(
        (-5.5, 6.5)
    )


def test_mse_clip_follows_the_bit_width() -> None:
    """Few levels: clip the rare tail; many levels: keep (nearly) the whole range; never widen it."""
    x = torch.randn(20_000, generator=torch.Generator().manual_seed(0)).relu()
    lo2, hi2 = mse_clip(x, 0.0, 6.0, bits=2)
    lo8, hi8 = mse_clip(x, 0.0, 6.0, bits=8)
    assert lo2 == lo8 == 0.0
    assert 0.6 < hi2 < 2.5  # a 2-bit grid over a half-normal wants about 1.5 sigma
    assert hi2 < hi8 <= 6.0 and hi8 > 3.0


def test_mse_ranges_shrink_bn_fed_layers_and_keep_the_image_range() -> None:
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    wide = input_ranges(model, layers, sigmas=6.0, normalization=NORM)
    tight = mse_ranges(model, layers, wide, {i.name: 3 for i in layers})
    assert tight["conv1"] == wide["conv1"]  # the pixel range is exact: nothing to calibrate
    for name in ("conv2", "fc"):
        assert tight[name][0] == 0.0 and 0 < tight[name][1] < wide[name][1]
    assert mse_ranges(model, layers, wide, {i.name: None for i in layers}) == wide


def test_compress_keeps_input_model_and_is_close_at_8_bits(tmp_path: Path) -> None:
    model = calibrated("resnet8_tiny")
    before = copy.deepcopy(model.state_dict())
    x = images(16)
    result = compress(model, CompressorConfig("rtn", wbits=8, abits=8), NORM, (1, 28, 28))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    ref = model(x)
    err = (result.model(x) - ref).norm() / ref.norm()
    assert err < 0.05
    assert len(result.layers) == 10 and all(isinstance(q, CompressedLayer) for q in result.compressed_layers().values())
    # 8-bit weights; bias, per-channel scale and zero point, and the input grid's scale/zero point at 32 bits
    expected = sum(r.params * 8 + 32 * (3 * r.shape[0] + 2) for r in result.layers)
    assert result.size_bits() == expected


def test_lower_bits_mean_larger_error() -> None:
    model = calibrated("resnet8_tiny")
    x = images(16)
    ref = model(x)
    errs = [
        ((compress(model, CompressorConfig("rtn", wbits=b, abits=b, first_layer_wbits=None, last_layer_wbits=None,
                                      first_layer_abits=None, last_layer_abits=None), NORM, (1, 28, 28)).model(x)
          - ref).norm() / ref.norm()).item()
        for b in (8, 4, 2)
    ]  # fmt: skip
    assert errs[0] < errs[1] < errs[2]


PRESETS = {
    "bn_fold": DFQConfig(),
    "none": DFQConfig("none", fold_bn=False),
    "cle_bias_correction": DFQConfig("cle", cle=True, relu6_to_relu=True, bias_correction=True),
}


@pytest.mark.parametrize("preconditioner", list(PRESETS))
def test_save_and_load_compressed_round_trip(tmp_path: Path, preconditioner: str) -> None:
    model = calibrated("mobilenetv2_tiny")
    result = compress(model, CompressorConfig("rtn", wbits=4, abits=6), NORM, (1, 28, 28), PRESETS[preconditioner])
    path = result.save(tmp_path / "c.pt", {"model": "mobilenetv2_tiny"})
    saved = torch.load(path, weights_only=True)
    assert len(saved["meta"]["packing"]["codes"]) == 14 and saved["state_dict"]["packed.codes"].dtype == torch.uint8
    reloaded = load_compressed(path, MODELS.get("mobilenetv2_tiny")(10, 1))
    x = images(4)
    assert torch.allclose(reloaded.model(x), result.model(x), atol=1e-5)
    for name, q in reloaded.compressed_layers().items():
        assert torch.equal(q.codes(), result.compressed_layers()[name].codes())
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in result.model.modules())
    assert has_bn == (preconditioner == "none")


class NoBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_model_without_batchnorm_needs_weight_only_quantization() -> None:
    """Without BN statistics there are no data-free activation ranges: refuse rather than keep float inputs."""
    with pytest.raises(UserError, match=r"^model NoBatchNorm has no BatchNorm layer: .*compressor.abits=null"):
        compress(NoBatchNorm(), CompressorConfig(name="rtn", wbits=4, abits=4), NORM, (1, 28, 28))
    result = compress(NoBatchNorm(), CompressorConfig(name="rtn", wbits=4, abits=None), NORM, (1, 28, 28))
    assert all(q.wbits == 4 or q.wbits == 8 for q in result.compressed_layers().values())


HEADER = 8000  # bytes of a checkpoint that are not the model: the meta (configs, packing layout), zip entries


@pytest.mark.parametrize("pruned", [False, True])
def test_saved_file_is_as_large_as_size_bits(tmp_path: Path, pruned: bool) -> None:
    """compressed.pt holds codes at their width and masks at 1 bit: its size is size_bits / 8 plus a small header,
    a W4 file about half a W8 file; a pruned float model reloads with exact zeros."""
    model = calibrated("resnet8_tiny")
    files = {}
    for wbits in (8, 4):
        # closed forms: the file format is the same for learned layers (a learned run's file: test_cli), 20 s faster
        cfg = CompressorConfig(name="prune_magnitude", sparsity=0.7, wbits=wbits) if pruned else CompressorConfig(
            "rtn", wbits=wbits, abits=8)  # fmt: skip
        result = compress(model, cfg, NORM, (1, 28, 28))
        files[wbits] = path = result.save(tmp_path / f"w{wbits}.pt")
        assert path.stat().st_size - result.size_bits() / 8 < HEADER
        reloaded = load_compressed(path, MODELS.get("resnet8_tiny")(10, 1))
        x = images(4)
        assert torch.equal(reloaded.model(x), result.model(x))
        for name, q in reloaded.compressed_layers().items():
            original = result.compressed_layers()[name]
            assert torch.equal(q.quantized_weight(), original.quantized_weight())
            if q.mask is not None:
                assert torch.equal(q.mask, original.mask) and not q.quantized_weight()[~q.mask].any()
    weights = sum(q.layer.weight.numel() for q in result.compressed_layers().values())
    assert files[8].stat().st_size - files[4].stat().st_size >= 0.9 * 4 * weights * (0.3 if pruned else 1) / 8
    float_pruned = compress(
        model, CompressorConfig(name="prune_magnitude", sparsity=0.7, wbits=None), NORM, (1, 28, 28)
    )
    path = float_pruned.save(tmp_path / "float.pt")
    assert path.stat().st_size - float_pruned.size_bits() / 8 < HEADER
    back = load_compressed(path, MODELS.get("resnet8_tiny")(10, 1))
    for name, q in back.compressed_layers().items():
        assert torch.equal(q.quantized_weight(), float_pruned.compressed_layers()[name].quantized_weight())
