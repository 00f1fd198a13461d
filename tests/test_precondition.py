"""DFQ preconditioners: cross-layer equalization with high-bias absorption, and analytic bias correction."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lwcompress.compress import CompressedLayer
from lwcompress.generate import GenerationContext, build_inputs, generator_config
from lwcompress.graph import analyze, fold_bn
from lwcompress.models import MODELS
from lwcompress.precondition.bias_correction import closed_form_mean, correct_biases, expected_inputs
from lwcompress.precondition.cle import HIGH_BIAS_SIGMAS, Pair, equalize, find_pairs

from .test_graph import relative_diff

torch.set_num_threads(1)

# Pairs by construction: resnet20's conv1 -> bn1 -> relu -> conv2 in each of its 9 blocks (every other BN output
# also feeds a residual add). mobilenetv2_small: with ReLU6 kept, only the project -> expand hand-over between
# blocks without a residual (features.3 -> features.4); with relu6_to_relu also stem -> first depthwise, and
# expand -> depthwise -> project in each of the 11 blocks (22 pairs). The head conv's ReLU6 feeds pooling.
PAIR_COUNTS = {
    ("resnet20", False): 9,
    ("resnet20", True): 9,
    ("mobilenetv2_small", False): 1,
    ("mobilenetv2_small", True): 23,
}


def random_bn(model: nn.Module, seed: int = 0, gamma: tuple[float, float] = (0.1, 2.1), beta: float = 0.5) -> None:
    """BN statistics and affine parameters far from identity, a fifth of the gammas negative."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            sign = torch.where(torch.rand(n, generator=gen) < 0.2, -1.0, 1.0)
            m.weight.data.copy_(sign * (torch.rand(n, generator=gen) * (gamma[1] - gamma[0]) + gamma[0]))
            m.bias.data.copy_(torch.randn(n, generator=gen) * beta)


def model_and_input(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = MODELS.get(name)(10, 1).eval()
    random_bn(model)
    return model, torch.randn(8, 1, 28, 28)


def pair_ranges(folded: nn.Module, pair: Pair) -> tuple[torch.Tensor, torch.Tensor]:
    """In a BN-folded model: max |w| per output channel of layer1, and over the weights of layer2 (dense or
    depthwise) that read each of its input channels."""
    w1, w2 = (folded.get_submodule(name).weight.detach() for name in (pair.layer1, pair.layer2))
    by_input = w2.flatten(1) if folded.get_submodule(pair.layer2).groups > 1 else w2.transpose(0, 1).flatten(1)
    return w1.flatten(1).abs().amax(1), by_input.abs().amax(1)


# --- cross-layer equalization ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,relu6_to_relu", sorted(PAIR_COUNTS))
def test_pairs_found(name: str, relu6_to_relu: bool) -> None:
    model, x = model_and_input(name)
    pairs = find_pairs(model, x, relu6_to_relu)
    assert len(pairs) == PAIR_COUNTS[(name, relu6_to_relu)]
    assert all(p.bn2 is not None for p in pairs)
    if name == "resnet20":
        assert {p.activation for p in pairs} == {"relu"}
        assert [p.layer2 for p in pairs] == [f"layers.{i}.conv2" for i in range(9)]
    elif relu6_to_relu:
        relu6 = [p for p in pairs if p.activation == "relu6"]
        assert len(relu6) == 22 and all(p.act_module is not None for p in relu6)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_small"])
def test_equalize_preserves_logits_and_balances_folded_ranges(name: str) -> None:
    model, x = model_and_input(name)
    eq = equalize(model, x, absorb_high_bias=False)
    with torch.no_grad():
        assert relative_diff(eq(x), model(x)) < 1e-4
    before, after = fold_bn(model), fold_bn(eq)
    for pair in find_pairs(model, x):
        assert torch.allclose(*pair_ranges(after, pair), rtol=1e-4)
        assert not torch.allclose(*pair_ranges(before, pair), rtol=0.1)  # the random model was far from balanced


def test_equalize_balances_mobilenet_chains() -> None:
    """expand -> depthwise -> project rescales the depthwise layer from both sides; iterating converges."""
    model, x = model_and_input("mobilenetv2_small")
    small = x * 0.01  # keeps every BN output below 6: replacing ReLU6 changes nothing there
    eq = equalize(model, small, relu6_to_relu=True, absorb_high_bias=False)
    with torch.no_grad():
        assert relative_diff(eq(small), model(small)) < 1e-4
    folded = fold_bn(eq)
    for pair in find_pairs(model, x, relu6_to_relu=True):
        assert torch.allclose(*pair_ranges(folded, pair), rtol=1e-4)


def test_equalize_leaves_the_model_alone() -> None:
    model, x = model_and_input("mobilenetv2_small")
    state = copy.deepcopy(model.state_dict())
    relu6 = sum(isinstance(m, nn.ReLU6) for m in model.modules())
    eq = equalize(model, x, relu6_to_relu=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert sum(isinstance(m, nn.ReLU6) for m in model.modules()) == relu6
    assert sum(isinstance(m, nn.ReLU6) for m in eq.modules()) == 1  # the head's, which feeds pooling
    assert type(eq) is type(model)


class ConvPair(nn.Module):
    """conv -> BN -> act -> conv (k x k, no padding unless asked) -> BN / bias / nothing."""

    def __init__(self, act: nn.Module, tail: str = "bn", kernel: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act = nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), act
        self.conv2 = nn.Conv2d(4, 3, kernel, padding=padding, bias=tail == "bias")
        self.tail = nn.BatchNorm2d(3) if tail == "bn" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.conv2(self.act(self.bn1(self.conv1(x)))))


def bn1_output(model: ConvPair, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.bn1(model.conv1(x))


def test_relu6_to_relu_changes_outputs_only_where_activations_exceed_6() -> None:
    torch.manual_seed(0)
    model = ConvPair(nn.ReLU6()).eval()
    random_bn(model)
    x = torch.randn(4, 2, 8, 8) * 6
    y = bn1_output(model, x)
    above = (y > 6).any(1, keepdim=True)  # with a 1x1 conv2, an output pixel sees its own position only
    assert 0 < above.float().mean() < 0.9
    eq = equalize(model, x, relu6_to_relu=True, absorb_high_bias=False)
    with torch.no_grad():
        out, ref = eq(x), model(x)
    diff = (out - ref).abs()
    assert float(diff.masked_select(~above).max()) < 1e-5 * float(ref.abs().max())
    assert bool((diff.amax(1, keepdim=True) > 1e-3)[above].all())


def high_bias_pair(tail: str, kernel: int = 1, padding: int = 0) -> tuple[ConvPair, torch.Tensor, torch.Tensor]:
    """A ConvPair whose BN1 has channels with beta > 3|gamma| (and others without), and an input for which every
    pre-activation stays >= the absorbed amount; returns (model, input, absorbed amount per channel)."""
    torch.manual_seed(0)
    model = ConvPair(nn.ReLU(), tail, kernel, padding).eval()
    random_bn(model)
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([0.2, -0.3, 0.5, 1.0]))
        model.bn1.bias.copy_(torch.tensor([2.0, 1.5, -0.5, 0.5]))
        model.bn1.running_var.fill_(100.0)  # normalized conv1 outputs stay far inside +-3
    c = (model.bn1.bias - HIGH_BIAS_SIGMAS * model.bn1.weight.abs()).clamp_min(0).detach()
    x = torch.randn(4, 2, 8, 8)
    assert bool((c[:2] > 0).all()) and bool((c[2:] == 0).all())
    assert bool((bn1_output(model, x)[:, :2] >= c[:2].view(1, -1, 1, 1)).all())  # (c == 0 is exact anyway)
    return model, x, c


@pytest.mark.parametrize("tail", ["bn", "bias", "none"])
def test_high_bias_absorption_is_exact_when_pre_activations_stay_above(tail: str) -> None:
    model, x, c = high_bias_pair(tail)
    kept = equalize(model, x, absorb_high_bias=False)
    eq = equalize(model, x)
    with torch.no_grad():
        assert relative_diff(eq(x), model(x)) < 1e-5
    # beta moved by exactly c / s, s the equalization scale (the same in both copies)
    s = model.bn1.weight / kept.bn1.weight
    assert torch.allclose(kept.bn1.bias - eq.bn1.bias, c / s, atol=1e-6)
    assert (eq.conv2.bias is None) == (tail == "bn")  # BN2's running mean takes the shift, else the (new) bias


def test_high_bias_absorption_is_approximate_at_zero_padded_borders() -> None:
    model, x, _ = high_bias_pair("bn", kernel=3, padding=1)
    eq = equalize(model, x)
    with torch.no_grad():
        out, ref = eq(x), model(x)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    assert relative_diff(out[inner], ref[inner]) < 1e-5
    assert relative_diff(out, ref) > 1e-2


def calibrated_relu_model(name: str) -> nn.Module:
    """A random ReLU network (ReLU6 swapped out) with large BN betas whose running statistics match N(0, 1)
    images: its BN outputs then follow N(beta, gamma^2) per channel, roughly, as the BN-Gaussian model says."""
    torch.manual_seed(0)
    model = MODELS.get(name)(10, 1)
    for parent in list(model.modules()):
        for key, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, key, nn.ReLU())
    random_bn(model, gamma=(0.1, 0.6), beta=1.0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None  # cumulative average over the calibration batches
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(4):
            model.train()(torch.randn(64, 1, 28, 28, generator=gen))
    return model.eval()


@pytest.mark.parametrize("name,tolerance", [("resnet20", 0.1), ("mobilenetv2_small", 0.3)])
def test_high_bias_absorption_keeps_logits_close(name: str, tolerance: float) -> None:
    """Measured, max |diff| / max |logit| on 256 N(0, 1) images: resnet20 0.047 (rms 0.053), mobilenetv2_small 0.16
    (rms 0.16); top-1 agrees on 100% / 98.4%. With circular padding resnet20 drops to 0.0015: its error is the
    zero-padded borders of 7x7..28x28 maps. MobileNet stays at 0.20: its calibrated BN outputs have heavier left
    tails than Gaussian (0.3-1.3% of an absorbed channel's values below c), which a random network amplifies."""
    model = calibrated_relu_model(name)
    x = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    kept = equalize(model, x[:2], absorb_high_bias=False)
    eq = equalize(model, x[:2])
    assert any(
        not torch.equal(kept.get_submodule(p.bn).bias, eq.get_submodule(p.bn).bias) for p in find_pairs(model, x)
    )
    with torch.no_grad():
        out, ref = eq(x), kept(x)
    assert relative_diff(out, ref) < tolerance
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) >= 0.95


def layer2_response(model: nn.Module, pair: Pair, z: torch.Tensor) -> torch.Tensor:
    """layer2 -> BN of the pair fed BN1 output gamma z + beta, minus BN2's beta (the next pair may absorb from it)."""
    bn, bn2 = model.get_submodule(pair.bn), model.get_submodule(pair.bn2)
    y = bn.weight.detach().view(-1, 1, 1) * z + bn.bias.detach().view(-1, 1, 1)
    with torch.no_grad():
        return bn2(model.get_submodule(pair.layer2)(torch.relu(y))) - bn2.bias.view(-1, 1, 1)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_small"])
def test_high_bias_absorption_under_the_bn_gaussian_model(name: str) -> None:
    """Each absorbing pair fed BN outputs drawn from N(beta, gamma^2), as the generator would: layer2's normalized
    output (its BN minus beta, since the next pair may absorb from that beta) barely moves inside the map; measured
    interior rms <= 0.0026 and max <= 0.052 of max |output| (values below c, 3 sigma out); borders move up to 0.78."""
    model, x = model_and_input(name)
    random_bn(model, gamma=(0.1, 0.6), beta=1.0)
    kept = equalize(model, x, relu6_to_relu=True, absorb_high_bias=False)
    eq = equalize(model, x, relu6_to_relu=True)
    shapes = {info.name: info.input_shape for info in analyze(kept, x)}
    gen = torch.Generator().manual_seed(0)
    absorbed = 0
    for pair in find_pairs(model, x, relu6_to_relu=True):
        if pair.activation is None or torch.equal(kept.get_submodule(pair.bn).bias, eq.get_submodule(pair.bn).bias):
            continue
        absorbed += 1
        z = torch.randn(64, *shapes[pair.layer2], generator=gen)
        out, ref = (layer2_response(m, pair, z)[..., 1:-1, 1:-1] for m in (eq, kept))
        assert float((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()) < 5e-3
        assert relative_diff(out, ref) < 0.1
    assert absorbed >= (8 if name == "resnet20" else 20)


def test_pairs_see_through_identity_and_dropout_but_not_a_second_reader() -> None:
    model = ConvPair(nn.Sequential(nn.Dropout(), nn.ReLU6(), nn.Identity())).eval()
    x = torch.randn(2, 2, 8, 8)
    assert find_pairs(model, x) == []
    (pair,) = find_pairs(model, x, relu6_to_relu=True)
    assert (pair.layer1, pair.layer2, pair.activation, pair.act_module) == ("conv1", "conv2", "relu6", "act.1")
    assert isinstance(equalize(model, x, relu6_to_relu=True).act[1], nn.ReLU)

    class TwoReaders(ConvPair):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.act(self.bn1(self.conv1(x)))
            return self.tail(self.conv2(y)) + y.mean()

    assert find_pairs(TwoReaders(nn.ReLU()).eval(), x) == []


# --- bias correction -------------------------------------------------------------------------------------------


BN_GAMMA, BN_BETA = torch.tensor([0.5, -1.0, 2.0, 3.0]), torch.tensor([0.0, -0.5, 5.5, 1.0])  # around both kinks


def generator_means(model: nn.Module, example: torch.Tensor, layer: str, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(mean, standard error) per input channel of `layer` over n full-size samples of the bn_gaussian generator."""
    layers = analyze(model, example)
    ctx = GenerationContext(tuple(example.shape[1:]), example.shape[-1])
    sampler = build_inputs(model, layers, generator_config("bn_gaussian"), ctx)[layer]
    x = sampler.sample(n, torch.Generator().manual_seed(seed))
    per_sample = x.flatten(2).mean(2) if x.dim() > 2 else x  # positions of one sample are not independent after pooling
    return per_sample.mean(0), per_sample.std(0) / n**0.5


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
def test_closed_form_matches_generator_samples(act: type[nn.Module]) -> None:
    model = ConvPair(act()).eval()
    with torch.no_grad():
        model.bn1.weight.copy_(BN_GAMMA)
        model.bn1.bias.copy_(BN_BETA)
    layers = analyze(model, torch.zeros(1, 2, 8, 8))
    assert layers[1].ops == [act.__name__.lower()]
    expected = expected_inputs(model, layers)
    mean, se = generator_means(model, torch.zeros(1, 2, 8, 8), "conv2", 8000, seed=1)
    assert bool(((expected["conv2"] - mean).abs() < 5 * se).all())  # measured: within 1.8 standard errors
    assert torch.equal(expected["conv1"], torch.zeros(2))  # the model input is N(0, 1)


def test_closed_form_limits() -> None:
    mu, zero = torch.tensor([-1.0, 3.0, 10.0]), torch.zeros(3)
    assert torch.equal(closed_form_mean("relu", mu, zero), torch.tensor([0.0, 3.0, 10.0], dtype=torch.float64))
    assert torch.equal(closed_form_mean("relu6", mu, zero), torch.tensor([0.0, 3.0, 6.0], dtype=torch.float64))
    # far inside the linear part the mean is mu; symmetric around 3, ReLU6's mean is 3
    assert abs(float(closed_form_mean("relu6", torch.tensor([3.0]), torch.tensor([1.0]))) - 3) < 1e-12
    assert abs(float(closed_form_mean("relu", torch.tensor([50.0]), torch.tensor([1.0]))) - 50) < 1e-12


class Stack(nn.Module):
    """conv (no BN) -> ReLU -> conv -> BN -> ReLU6 -> Identity -> conv: sources of all three kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu = nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()
        self.conv2, self.bn2, self.relu6 = nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU6()
        self.identity, self.conv3 = nn.Identity(), nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            self.bn2.weight.copy_(BN_GAMMA)
            self.bn2.bias.copy_(BN_BETA)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.identity(self.relu6(self.bn2(self.conv2(self.relu(self.conv1(x)))))))


def test_expected_inputs_by_source_kind() -> None:
    model = Stack().eval()
    expected = expected_inputs(model, analyze(model, torch.zeros(1, 2, 8, 8)))
    assert torch.equal(expected["conv1"], torch.zeros(2))
    assert expected["conv2"] is None  # conv1 has no BN: nothing is known about its output
    assert torch.allclose(expected["conv3"], closed_form_mean("relu6", BN_BETA, BN_GAMMA.abs()).float())


@pytest.mark.parametrize("name", ["resnet8_tiny", "mobilenetv2_tiny"])
def test_monte_carlo_means_match_many_generator_samples(name: str) -> None:
    """Residual adds and pooling: the 256-sample estimate agrees with 2048 fresh samples within 5 standard errors
    of their difference (measured: within 1.9)."""
    torch.manual_seed(0)
    model = MODELS.get(name)(10, 1).eval()
    random_bn(model)
    layers = analyze(model, torch.zeros(1, 1, 28, 28))
    expected = expected_inputs(model, layers)
    sampled = [info for info in layers if len(info.sources) > 1 or "add" in info.ops or "flatten" in info.ops]
    assert len(sampled) >= 3
    for info in sampled:
        mean, se = generator_means(model, torch.zeros(1, 1, 28, 28), info.name, 2048, seed=7)
        estimate = expected[info.name]
        assert estimate.shape == mean.shape and bool(torch.isfinite(estimate).all())
        assert bool(((estimate - mean).abs() <= 5 * se * (1 + 2048 / 256) ** 0.5 + 1e-6).all()), info.name


LAYERS = {
    "conv": lambda: nn.Conv2d(6, 5, 3, bias=False),
    "depthwise": lambda: nn.Conv2d(6, 6, 3, groups=6),
    "grouped": lambda: nn.Conv2d(6, 4, 3, groups=2),
    "linear": lambda: nn.Linear(6, 5),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_corrected_layer_matches_float_on_its_expected_input(kind: str) -> None:
    """An input that is E[x] everywhere (no padding): the corrected 3-bit layer's output is the float layer's."""
    torch.manual_seed(0)
    layer, mean = LAYERS[kind](), torch.randn(6) + 1
    x = mean.view(1, 6) if kind == "linear" else mean.view(1, 6, 1, 1).expand(2, 6, 7, 7)
    ref = layer(x).detach()
    model = nn.ModuleDict({"q": CompressedLayer(layer, wbits=3, symmetric=True)})
    with torch.no_grad():
        assert relative_diff(model["q"](x), ref) > 1e-3  # 3-bit weights move the output
        correct_biases(model, {"q": mean})
        assert torch.allclose(model["q"](x), ref, atol=1e-5 * float(ref.abs().max()), rtol=0)
    assert model["q"].layer.bias is not None


def test_bias_correction_removes_the_mean_error_on_generator_samples() -> None:
    """The whole flow on an unfolded model: expected inputs, BN folding, quantization, correction."""
    torch.manual_seed(0)
    model = ConvPair(nn.ReLU()).eval()
    random_bn(model)
    layers = analyze(model, torch.zeros(1, 2, 8, 8))
    expected = expected_inputs(model, layers)
    folded = fold_bn(model)
    float_conv2 = copy.deepcopy(folded.conv2)
    folded.conv2 = CompressedLayer(folded.conv2, wbits=3, symmetric=True)
    ctx = GenerationContext((2, 8, 8), 8)
    x = build_inputs(model, layers, generator_config("bn_gaussian"), ctx)["conv2"].sample(4000, torch.Generator())
    with torch.no_grad():
        ref = float_conv2(x).mean((0, 2, 3))
        before = (folded.conv2(x).mean((0, 2, 3)) - ref).abs()
        correct_biases(folded, expected)
        after = (folded.conv2(x).mean((0, 2, 3)) - ref).abs()
    assert float(after.max()) < 0.05 * float(before.max())
