"""lwcompress.graph: layer discovery, the elementwise paths that rebuild layer inputs, and BN folding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lwcompress.errors import UserError
from lwcompress.graph import LayerInfo, Source, analyze, fold_bn
from lwcompress.models import MODELS

torch.set_num_threads(1)

# name -> (input channels, spatial size) used to build and feed each registered model in these tests.
MODEL_INPUTS = {
    "resnet20": (1, 28),
    "resnet8_tiny": (1, 28),
    "mobilenetv2_small": (1, 28),
    "mobilenetv2_tiny": (1, 28),
    "resnet18": (3, 64),
    "resnet50": (3, 64),
    "mobilenet_v2": (3, 64),
}
# Counted by construction (see test_layer_counts_match_construction for resnet20 / mobilenetv2_small).
LAYER_COUNTS = {
    "resnet20": 22,  # stem + 9 blocks x 2 convs + 2 shortcut 1x1 convs + fc
    "resnet8_tiny": 10,  # stem + 3 blocks x 2 + 2 shortcuts + fc
    "mobilenetv2_small": 35,  # stem + 2 (t=1 block) + 10 blocks x 3 + head conv + classifier
    "mobilenetv2_tiny": 14,  # stem + 2 + 3 blocks x 3 + head conv + classifier
    "resnet18": 21,  # stem + 8 blocks x 2 + 3 downsample + fc
    "resnet50": 54,  # stem + 16 bottlenecks x 3 + 4 downsample + fc
    "mobilenet_v2": 53,  # stem + 2 + 16 blocks x 3 + head conv + classifier
}
SMALL = ["resnet20", "resnet8_tiny", "mobilenetv2_small", "mobilenetv2_tiny"]


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    channels, size = MODEL_INPUTS[name]
    return MODELS.get(name)(10, channels).eval(), torch.randn(2, channels, size, size)


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so that folding them is actually tested."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        n = m.num_features
        if m.track_running_stats:
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
        if m.affine:
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)


def relative_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def capture(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(input of every conv/linear, output of every BN/conv/linear) for one forward pass, by module name.

    Cloned at hook time: torchvision's inplace ReLUs overwrite BN outputs later in the pass.
    """
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_pre_hook(lambda _m, a, n=name: inputs.__setitem__(n, a[0].clone())))
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            handles.append(m.register_forward_hook(lambda _m, _a, o, n=name: outputs.__setitem__(n, o.clone())))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return inputs, outputs


@pytest.mark.parametrize("name", list(MODEL_INPUTS))
def test_layer_counts_and_flags(name: str) -> None:
    model, _ = build(name)
    layers = analyze(model)
    assert len(layers) == LAYER_COUNTS[name]
    assert [info.is_first for info in layers] == [True] + [False] * (len(layers) - 1)
    assert [info.is_last for info in layers] == [False] * (len(layers) - 1) + [True]
    assert layers[-1].kind == "linear" and layers[-1].bn is None
    # Every conv of these BN networks feeds a BN, which the generators sample; the BN exists under that name.
    for info in layers[:-1]:
        assert info.bn is not None, info.name
        assert isinstance(model.get_submodule(info.bn), nn.BatchNorm2d)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_small"])
def test_layer_counts_match_construction(name: str) -> None:
    # Our small models call their layers in registration order, so the module list is the expected order.
    model, _ = build(name)
    expected = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [info.name for info in analyze(model)] == expected
    assert len(expected) == LAYER_COUNTS[name]


def test_depthwise_detection() -> None:
    model, _ = build("mobilenetv2_small")
    layers = analyze(model)
    depthwise = [info for info in layers if info.kind == "depthwise"]
    assert len(depthwise) == 11  # one per inverted-residual block: 1 + 2 + 3 + 3 + 2
    for info in depthwise:
        conv = model.get_submodule(info.name)
        assert conv.groups == conv.in_channels == conv.out_channels > 1
    assert {info.kind for info in layers} == {"conv", "depthwise", "linear"}


def test_resnet20_walks_the_whole_residual_stream() -> None:
    model, _ = build("resnet20")
    layers = {info.name: info for info in analyze(model)}
    fc = layers["fc"]
    assert fc.ops == ["add", "relu"] * 3 + ["adaptive_avg_pool2d", "flatten"]
    # Stage 3 starts with a projection shortcut, so the stream feeding fc stops at its BN and the block BNs.
    assert [s.name for s in fc.sources] == [
        "layers.6.bn2",
        "layers.6.shortcut.1",
        "layers.7.bn2",
        "layers.8.bn2",
    ]
    assert all(s.kind == "bn" and s.channels == 64 for s in fc.sources)
    # Stage 1 has identity shortcuts only: the stem BN reaches the first conv of stage 2.
    deep = layers["layers.3.conv1"]
    assert [s.name for s in deep.sources] == ["bn1", "layers.0.bn2", "layers.1.bn2", "layers.2.bn2"]
    assert deep.ops == ["relu", "add", "relu", "add", "relu", "add", "relu"]
    assert [s.name for s in layers["layers.3.shortcut.0"].sources] == [s.name for s in deep.sources]
    # A block's second conv sees only its own first BN through a ReLU.
    assert layers["layers.4.conv2"].sources == [Source("bn", "layers.4.bn1", 32)]
    assert layers["layers.4.conv2"].ops == ["relu"]


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_small", "resnet18", "mobilenet_v2"])
def test_first_layer_reads_the_model_input(name: str) -> None:
    model, x = build(name)
    first = analyze(model)[0]
    assert first.is_first and first.ops == []
    assert first.sources == [Source("input", "x", x.shape[1])]
    assert torch.equal(first.path(x), x)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_small", "resnet18", "mobilenet_v2"])
def test_path_reproduces_layer_inputs(name: str) -> None:
    model, x = build(name)
    randomize_bn(model)
    inputs, outputs = capture(model, x)
    for info in analyze(model):
        tensors = [x if s.kind == "input" else outputs[s.name] for s in info.sources]
        for s, t in zip(info.sources, tensors, strict=True):
            assert s.channels == t.shape[1], (info.name, s)
        before = [t.clone() for t in tensors]
        with torch.no_grad():
            rebuilt = info.path(*tensors)
        torch.testing.assert_close(rebuilt, inputs[info.name], rtol=1e-5, atol=1e-5, msg=info.name)
        # The path copies inplace ReLUs as non-inplace: sampled tensors must survive it.
        assert all(torch.equal(a, b) for a, b in zip(tensors, before, strict=True)), info.name


def test_example_input_fills_shapes_and_keeps_model_state() -> None:
    model, x = build("resnet20")
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layers = {info.name: info for info in analyze(model, x)}
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # no BN stats update
    assert layers["conv1"].sources[0].shape == (1, 28, 28)
    assert layers["layers.3.conv2"].input_shape == (32, 14, 14)
    assert layers["fc"].input_shape == (64,)
    assert {s.shape for s in layers["fc"].sources} == {(64, 7, 7)}


class Branchy(nn.Module):
    """Exercises the whitelist: functional ops, cat, a view-flatten, a raw conv and a non-elementwise op."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(3, 8, 1)  # no BN after it: a raw "layer" source
        self.gconv, self.bn_g = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn_a(self.conv_a(x)), inplace=True)
        y = F.max_pool2d(torch.cat([a, self.conv_b(x)], dim=1), 2)
        gate = torch.sigmoid(self.bn_g(self.gconv(y)))  # not on the whitelist: the walk must stop here
        out = F.adaptive_avg_pool2d(gate + y, 2)
        out = out.view(out.size(0), -1)
        return self.fc(F.dropout(out, 0.5, self.training))


def test_whitelist_and_stops_on_custom_model() -> None:
    torch.manual_seed(0)
    model = Branchy().eval()
    randomize_bn(model)
    x = torch.randn(2, 3, 8, 8)
    layers = {info.name: info for info in analyze(model)}
    assert [layers[n].kind for n in ("conv_a", "conv_b", "gconv", "fc")] == [
        "conv",
        "conv",
        "grouped",
        "linear",
    ]
    assert layers["conv_b"].bn is None and layers["gconv"].bn == "bn_g"
    assert layers["gconv"].sources == [Source("bn", "bn_a", 8), Source("layer", "conv_b", 8)]
    assert layers["gconv"].ops == ["relu", "cat", "max_pool2d"]
    fc = layers["fc"]
    assert fc.sources == [
        Source("bn", "bn_a", 8),
        Source("layer", "conv_b", 8),
        Source("layer", "sigmoid", None),
    ]
    assert fc.ops == ["relu", "cat", "max_pool2d", "add", "adaptive_avg_pool2d", "flatten", "dropout"]
    assert "torch.sigmoid" not in fc.path.code and "dropout" not in fc.path.code

    inputs, outputs = capture(model, x)
    tensors = [outputs["bn_a"], outputs["conv_b"], torch.sigmoid(outputs["bn_g"])]
    before = [t.clone() for t in tensors]
    torch.testing.assert_close(fc.path(*tensors), inputs["fc"])
    assert all(torch.equal(a, b) for a, b in zip(tensors, before, strict=True))  # F.relu(inplace=True) copied safe

    folded = fold_bn(model)
    with torch.no_grad():
        assert relative_diff(folded(x), model(x)) < 1e-5
    assert folded.get_submodule("conv_a").bias is not None
    assert folded.get_submodule("gconv").bias is not None
    names = {n for n, _ in folded.named_modules()}
    assert "bn_a" not in names and "bn_g" not in names


def _randomized(name: str) -> tuple[nn.Module, torch.Tensor]:
    model, x = build(name)
    randomize_bn(model)
    return model, x


@pytest.mark.parametrize("name", list(MODEL_INPUTS))
def test_fold_bn_preserves_function(name: str) -> None:
    model, x = _randomized(name)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layers = analyze(model)
    folded = fold_bn(model)

    with torch.no_grad():
        assert relative_diff(folded(x), model(x)) < 1e-4
    # The original is untouched: same tensors, BNs still in place.
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # Layer names from the original find the folded layers; every BN is gone.
    for info in layers:
        layer = folded.get_submodule(info.name)
        assert type(layer) is type(model.get_submodule(info.name))
        if info.bn is not None:
            assert layer.bias is not None
            assert layer.weight is not model.get_submodule(info.name).weight
            with pytest.raises(AttributeError):
                folded.get_submodule(info.bn)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    # The folded model is itself analyzable, with the same layers and no BN left to pair with.
    refolded = analyze(folded)
    assert [i.name for i in refolded] == [i.name for i in layers]
    assert all(i.bn is None for i in refolded)


def test_fold_bn_variants() -> None:
    """BN without affine, Linear + BatchNorm1d, and a BN without running stats (must stay unfolded)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=True),
        nn.BatchNorm2d(4, affine=False),
        nn.ReLU(),
        nn.Conv2d(4, 4, 1),
        nn.BatchNorm2d(4, track_running_stats=False),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 6),
        nn.BatchNorm1d(6),
    ).eval()
    randomize_bn(model)
    x = torch.randn(3, 2, 6, 6)
    folded = fold_bn(model)
    with torch.no_grad():
        assert relative_diff(folded(x), model(x)) < 1e-5
    kept = [n for n, m in folded.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert kept == ["4"]
    assert [info.bn for info in analyze(model)] == ["1", "4", "7"]


def test_fold_bn_keeps_training_mode_of_original() -> None:
    model, _ = build("resnet8_tiny")
    model.train()
    folded = fold_bn(model)
    assert model.training and not folded.training


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.conv(x)
        return x


class SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.relu(self.conv(x)))


def test_untraceable_model_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"^model DataDependent is not FX-traceable: [^\n]+$"):
        analyze(DataDependent())
    with pytest.raises(UserError, match="not FX-traceable"):
        fold_bn(DataDependent())


def test_shared_layer_is_a_user_error() -> None:
    with pytest.raises(UserError, match="layer conv is called 2 times"):
        analyze(SharedConv())


class WithLayer(nn.Module):
    """conv-BN-ReLU, then `extra`, then a classifier."""

    def __init__(self, extra: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.extra, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), extra, nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.extra(torch.relu(self.bn(self.conv(x)))).mean((2, 3)))


def test_weight_matrix_outside_conv_and_linear_is_named() -> None:
    with pytest.raises(UserError, match=r"^layer extra: ConvTranspose2d has a weight matrix that lwcompress cannot"):
        analyze(WithLayer(nn.ConvTranspose2d(4, 4, 2, stride=2)))


def test_norms_and_activations_with_parameters_are_fine() -> None:
    assert [i.name for i in analyze(WithLayer(nn.Sequential(nn.GroupNorm(2, 4), nn.PReLU(4))))] == ["conv", "fc"]


def test_non_finite_weights_are_named() -> None:
    model = WithLayer(nn.Identity())
    model.bn.running_var[1] = float("inf")
    with pytest.raises(UserError, match=r"^bn.running_var holds 1 non-finite value\(s\) \(NaN/inf\) of 4"):
        analyze(model)


def test_layerinfo_repr_is_short() -> None:
    model, _ = build("resnet8_tiny")
    info: LayerInfo = analyze(model)[-1]
    assert "GraphModule" not in repr(info) and "fc" in repr(info)
