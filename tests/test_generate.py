"""Layer-input generators: the statistics the paper's input model promises, seeded streams, captured pools."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from lwcompress.errors import UserError
from lwcompress.generate import (
    GENERATORS,
    DistilledConfig,
    GenerationContext,
    Inversion,
    LayerData,
    PairedPool,
    Stepwise,
    able,
    bn_statistics_loss,
    build_inputs,
    calibrated_ranges,
    capture_inputs,
    check_sequential,
    distill_images,
    domain_gaps,
    generator_config,
    generator_domain,
    layer_stream,
    pixel_range,
    source_images,
)
from lwcompress.generate.distill import BNStatistics, _ShiftedMoments, backdrop_masks
from lwcompress.generate.generators import generator, smoothed
from lwcompress.graph import analyze
from lwcompress.models import MODELS

from .test_compress import HandSet, calibrated, images

PIXELS = pixel_range({"mean": [0.5], "std": [0.5]})  # [-1, 1]: distilled images are clipped into it by default


def relu_moments(mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of max(0, X) for X ~ N(mu, sigma^2)."""
    a = mu / sigma
    pdf = torch.exp(-0.5 * a**2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(a / math.sqrt(2)))
    mean = mu * cdf + sigma * pdf
    second = (mu**2 + sigma**2) * cdf + mu * sigma * pdf
    return mean, second - mean**2


def handset_inputs(name: str, spatial: int = 8):
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    ctx = GenerationContext((1, 8, 8), spatial)
    return model, layers, build_inputs(model, layers, generator_config(name), ctx)


def test_bn_gaussian_first_layer_is_standard_normal() -> None:
    _, _, inputs = handset_inputs("bn_gaussian")
    x = inputs["conv1"].sample(4000, layer_stream(0, 0))
    assert x.shape == (4000, 1, 8, 8)
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01


def test_bn_gaussian_statistics_after_relu() -> None:
    model, _, inputs = handset_inputs("bn_gaussian")
    x = inputs["conv2"].sample(4000, layer_stream(0, 1))
    mean, var = relu_moments(model.bn1.bias.detach(), model.bn1.weight.detach().abs())
    assert torch.allclose(x.mean((0, 2, 3)), mean, rtol=0.02)
    assert torch.allclose(x.var((0, 2, 3)), var, rtol=0.03)


def test_bn_gaussian_through_residual_relu6_and_global_pool() -> None:
    """fc's input is avgpool(relu6(bn2 + relu(bn1))): sampled at the true spatial size, with the statistics of
    that expression under independent N(beta, gamma^2) BN outputs."""
    model, layers, inputs = handset_inputs("bn_gaussian", spatial=2)
    fc = next(i for i in layers if i.name == "fc")
    assert fc.ops[:3] == ["relu", "add", "relu6"] and {s.name for s in fc.sources} == {"bn1", "bn2"}
    gen = layer_stream(0, 2)
    x = inputs["fc"].sample(20000, gen)
    assert x.shape == (20000, 2)
    # Reference: the same expression sampled directly, per element of an 8x8 map, then averaged.
    g = torch.Generator().manual_seed(1)
    b1, g1 = model.bn1.bias.detach(), model.bn1.weight.detach()
    b2, g2 = model.bn2.bias.detach(), model.bn2.weight.detach()
    shape = (20000, 2, 8, 8)
    v = lambda b, s: b.view(1, 2, 1, 1) + s.view(1, 2, 1, 1) * torch.randn(shape, generator=g)  # noqa: E731
    ref = torch.clamp(v(b2, g2) + torch.relu(v(b1, g1)), 0, 6).mean((2, 3))
    assert torch.allclose(x.mean(0), ref.mean(0), rtol=0.01)
    assert torch.allclose(x.std(0), ref.std(0), rtol=0.05)


def test_same_seed_same_samples_and_layers_get_different_streams() -> None:
    _, _, inputs = handset_inputs("bn_gaussian")
    a = inputs["conv2"].sample(8, layer_stream(3, 1))
    b = inputs["conv2"].sample(8, layer_stream(3, 1))
    assert torch.equal(a, b)
    c = inputs["conv2"].sample(8, layer_stream(3, 2))
    d = inputs["conv2"].sample(8, layer_stream(4, 1))
    assert not torch.equal(a, c) and not torch.equal(a, d)


def test_crops_for_convs() -> None:
    model = calibrated("resnet8_tiny")
    layers = analyze(model, torch.zeros(1, 1, 28, 28))
    inputs = build_inputs(model, layers, generator_config("bn_gaussian"), GenerationContext((1, 28, 28), 6))
    for info in layers[:-1]:
        x = inputs[info.name].sample(2, layer_stream(0, 0))
        assert x.shape[-1] == min(6, info.input_shape[-1]), info.name
    assert inputs["fc"].sample(2, layer_stream(0, 0)).shape == (2, 16)


def test_propagated_bn_outputs_have_the_paper_statistics() -> None:
    """With batch-statistics BN every BN output has mean beta and std |gamma| per channel exactly."""
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    inputs = build_inputs(model, layers, generator_config("propagated", num_images=512, chunk=512),
                          GenerationContext((1, 8, 8), 8))  # fmt: skip
    x = inputs["conv2"].data  # relu(bn1 output), bn1 normalized by the batch's own statistics
    mean, _ = relu_moments(model.bn1.bias.detach(), model.bn1.weight.detach().abs())
    assert x.shape == (512, 2, 8, 8)
    assert torch.allclose(x.mean((0, 2, 3)), mean, rtol=0.15)  # not Gaussian, but the same first moments


def test_real_pool_is_the_true_layer_input() -> None:
    model = calibrated("resnet8_tiny")
    layers = analyze(model, torch.zeros(1, 1, 28, 28))
    imgs = images(16)
    inputs = build_inputs(
        model, layers, generator_config("real", num_images=16), GenerationContext((1, 28, 28), 28, imgs)
    )
    seen = {}
    handle = model.layers[1].conv1.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    model(imgs)
    handle.remove()
    assert torch.equal(inputs["layers.1.conv1"].data, seen["x"])


def test_gaussian_is_standard_normal_everywhere() -> None:
    _, _, inputs = handset_inputs("gaussian")
    x = inputs["fc"].sample(1000, layer_stream(0, 0))
    assert x.shape == (1000, 2) and abs(float(x.std()) - 1) < 0.1


def test_bn_gaussian_refuses_sources_without_bn() -> None:
    from lwcompress.errors import UserError

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)).eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    with pytest.raises(UserError, match="no BatchNorm statistics; use generator=propagated"):
        build_inputs(model, layers, generator_config("bn_gaussian"), GenerationContext((1, 8, 8), 8))


def test_propagated_domain_reproduces_the_propagated_inputs() -> None:
    """The domain network in plain eval mode gives (up to chunk-vs-whole statistics) the propagated layer inputs,
    so sequential runs see the same data as independent ones; other generators have no such network."""
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    cfg, ctx = generator_config("propagated", num_images=256, chunk=256), GenerationContext((1, 8, 8), 8)
    domain, noise = generator_domain(model, cfg, ctx)
    assert domain is not model and model.bn1.running_var.tolist() != domain.bn1.running_var.tolist()
    via_domain = capture_inputs(domain, ["conv2"], noise, batch_stat_bn=False)["conv2"]
    assert torch.allclose(via_domain, build_inputs(model, layers, cfg, ctx)["conv2"].data, atol=1e-2)
    with pytest.raises(
        UserError, match="layerwise.mode=sequential needs generator=distilled, genie, pink_noise, propagated"
    ):
        generator_domain(model, generator_config("bn_gaussian"), ctx)


def test_distilled_images_match_the_bn_statistics_better_than_noise() -> None:
    model = calibrated("resnet8_tiny")
    noise = torch.randn(32, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    distilled = distill_images(model, noise, chunk=32, inversion=Inversion(steps=40, lr=0.25))
    before, after = float(bn_statistics_loss(model, noise)), float(bn_statistics_loss(model, distilled))
    assert after < 0.5 * before
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())  # the model is left alone


def test_coarse_steps_run_at_half_resolution_then_refine_at_full_size() -> None:
    """generator.coarse: that share of the steps sees the images at half their height and width (the network's
    first convolution sees 14x14), the rest at full size; the result has the input's shape, matches the statistics
    better than noise, is seeded, and the setting is part of the cache key; genie refuses it."""
    model = calibrated("resnet8_tiny")  # seeded by conftest's _seeded
    noise = torch.randn(16, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    sizes: list[tuple[int, ...]] = []
    hook = first.register_forward_pre_hook(lambda _m, args: sizes.append(tuple(args[0].shape[-2:])))
    made = distill_images(model, noise, chunk=16, inversion=Inversion(steps=40, coarse=0.75))
    hook.remove()
    assert sizes[:30] == [(14, 14)] * 30 and sizes[30:] == [(28, 28)] * 10
    assert made.shape == noise.shape and torch.isfinite(made).all()
    # after 10 full-size steps the loss is 0.36-0.67 of noise's across random models (0.45 for this one)
    assert float(bn_statistics_loss(model, made)) < 0.8 * float(bn_statistics_loss(model, noise))
    assert torch.equal(made, distill_images(model, noise, chunk=16, inversion=Inversion(steps=40, coarse=0.75)))
    cfg = generator_config("distilled", num_images=16, chunk=16, steps=4, backdrop=0.0)
    assert generator(cfg).key(model) != generator(dataclasses.replace(cfg, coarse=0.5)).key(model)
    with pytest.raises(UserError, match="generator.coarse"):
        generator_config("genie", coarse=0.5)


def test_distillation_moments_match_the_variance_and_its_gradient() -> None:
    """The BN-statistics loss takes its per-image moments in one shifted sum pass with a hand-written backward:
    gradcheck on conv- and linear-shaped inputs, and the loss equals ZeroQ's form with Tensor.var on a trained
    model."""
    shift = torch.randn(3, dtype=torch.double)
    for shape in [(4, 3, 5, 5), (6, 3)]:
        x = torch.randn(shape, dtype=torch.double, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: _ShiftedMoments.apply(t, shift), (x,))
    model = calibrated("resnet8_tiny").eval()
    x = images(32)
    terms = []

    def zeroq(bn: nn.Module, args: tuple) -> None:
        dims = [0, 2, 3]
        mean, var = args[0].mean(dims), args[0].var(dims, unbiased=False)
        std, running_std = (var + bn.eps).sqrt(), (bn.running_var + bn.eps).sqrt()
        terms.append((mean - bn.running_mean).norm() + (std - running_std).norm())

    hooks = [m.register_forward_pre_hook(zeroq) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model(x)
    for h in hooks:
        h.remove()
    assert float(bn_statistics_loss(model, x)) == pytest.approx(float(sum(terms)), rel=1e-5)


def test_relative_bn_distances_are_scale_free_and_equal_when_channels_share_a_scale() -> None:
    """bn_distance per_bn / per_channel: a BN's mean and std mismatch in units of its running std: unchanged when
    the BN's input and running statistics are scaled together (ZeroQ's absolute distance scales with them), equal
    to each other when every channel has the same running std, and a distillation option in the images' key."""
    bn = nn.BatchNorm2d(4).eval()
    bn.running_mean, bn.running_var = torch.tensor([0.0, 1.0, -2.0, 0.5]), torch.tensor([1.0, 4.0, 0.25, 9.0])
    x = torch.randn(8, 4, 5, 5, generator=layer_stream(0, 1))

    def distance(net: nn.Module, inputs: torch.Tensor, kind: str) -> float:
        with BNStatistics(net, distance=kind) as stats:
            net(inputs)
        return float(stats.loss)

    mean, std = x.mean((0, 2, 3)), (x.var((0, 2, 3), unbiased=False) + bn.eps).sqrt()
    running_std = (bn.running_var + bn.eps).sqrt()
    by_hand = ((mean - bn.running_mean) / running_std).norm() + (std / running_std - 1).norm()
    assert distance(bn, x, "per_channel") == pytest.approx(float(by_hand) / 2, rel=1e-5)
    scaled = nn.BatchNorm2d(4, eps=bn.eps * 100).eval()  # everything x10, eps included
    scaled.running_mean, scaled.running_var = bn.running_mean * 10, bn.running_var * 100
    for kind in ["per_bn", "per_channel"]:
        assert distance(scaled, x * 10, kind) == pytest.approx(distance(bn, x, kind), rel=1e-5)
    assert distance(scaled, x * 10, "absolute") == pytest.approx(10 * distance(bn, x, "absolute"), rel=1e-5)
    bn.running_var = torch.full((4,), 4.0)
    assert distance(bn, x, "per_bn") == pytest.approx(distance(bn, x, "per_channel"), rel=1e-5)
    with pytest.raises(ValueError, match="unknown BN distance"):
        BNStatistics(bn, distance="relative")
    model = calibrated("resnet8_tiny")
    cfg = generator_config("distilled", num_images=16, chunk=16, steps=4)
    assert generator(cfg).key(model) != generator(dataclasses.replace(cfg, bn_distance="per_bn")).key(model)
    noise = torch.randn(16, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    for kind in ["per_bn", "per_channel"]:
        made = distill_images(model, noise, chunk=16, inversion=Inversion(steps=30, bn_distance=kind))
        assert torch.isfinite(made).all()
        assert float(bn_statistics_loss(model, made)) < 0.8 * float(bn_statistics_loss(model, noise))


def test_bn_slack_frees_mismatches_within_the_margin_and_keeps_the_cached_images_names() -> None:
    """bn_slack: per channel, a mean or std mismatch within `slack` running stds costs nothing and a larger one
    only its excess; the default (0) leaves the loss and the images' name (the key of every cached set) as they
    were before the option existed."""
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean, bn.running_var = torch.zeros(3), torch.tensor([1.0, 4.0, 9.0])
    x = torch.randn(64, 3, 6, 6, generator=layer_stream(0, 2)) * (bn.running_var + bn.eps).sqrt().view(1, 3, 1, 1)
    x[:, 0] += 0.5  # channel 0's mean half a running std off; the others near their statistics
    running_std = (bn.running_var + bn.eps).sqrt()

    def loss(inputs: torch.Tensor, slack: float) -> float:
        with BNStatistics(bn, distance="per_channel", slack=slack) as stats:
            bn(inputs)
        return float(stats.loss)

    mean, std = x.mean((0, 2, 3)), (x.var((0, 2, 3), unbiased=False) + bn.eps).sqrt()
    offset, std_diff = mean / running_std, std / running_std - 1
    assert offset.abs().max() < 0.6 and offset.abs()[1:].max() < 0.1 and std_diff.abs().max() < 0.1
    by_hand = ((offset.abs() - 0.1).clamp_min(0).norm() + (std_diff.abs() - 0.1).clamp_min(0).norm()) / math.sqrt(3)
    assert loss(x, 0.1) == pytest.approx(float(by_hand), rel=1e-5) == pytest.approx(0.4 / math.sqrt(3), abs=0.05)
    assert loss(x, 0.0) > loss(x, 0.1) > loss(x, 0.6) == 0.0
    with BNStatistics(bn, distance="per_channel") as stats:
        bn(x)
    assert loss(x, 0.0) == float(stats.loss)
    assert repr(Inversion()) == (
        "Inversion(steps=200, lr=0.25, tv_weight=0.0, l2_weight=0.0, class_weight=0.0, first_bn_weight=1.0, "
        "jitter=0, flip=False, swing=0, coarse=0.0, bn_distance='absolute', precision='32')"
    )
    with pytest.raises(ValueError, match="bn_slack"):
        Inversion(bn_slack=-0.1)
    model = calibrated("resnet8_tiny")
    noise = torch.randn(16, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    made = distill_images(model, noise, chunk=16, inversion=Inversion(steps=30, bn_slack=0.05))
    assert torch.isfinite(made).all()
    assert float(bn_statistics_loss(model, made)) < 0.8 * float(bn_statistics_loss(model, noise))


def between_image_spread(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Per BatchNorm with spatial inputs: the RMS over channels of the std over the images of each image's own
    channel mean, in running stds."""
    spreads = []

    def hook(bn: nn.Module, args: tuple) -> None:
        means = args[0].mean((2, 3)) / (bn.running_var + bn.eps).sqrt()
        spreads.append(float(means.std(0).pow(2).mean().sqrt()))

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return spreads


def test_image_spread_makes_the_images_differ_from_one_another_and_costs_nothing_once_they_do() -> None:
    """image_spread: per BatchNorm and channel, a std over the images of their own means below `spread` running
    stds costs its shortfall (in the BN's distance), so distillation makes images that differ from one another
    where ZeroQ's batch loss leaves them alike; images already that diverse cost nothing extra; a negative spread is
    refused."""
    bn = nn.BatchNorm2d(2).eval()
    bn.running_mean, bn.running_var = torch.zeros(2), torch.tensor([1.0, 4.0])
    running_std = (bn.running_var + bn.eps).sqrt()
    x = torch.randn(32, 2, 5, 5, generator=layer_stream(0, 3)) * running_std.view(1, 2, 1, 1)

    def loss(inputs: torch.Tensor, spread: float) -> float:
        with BNStatistics(bn, distance="per_channel", spread=spread) as stats:
            bn(inputs)
        return float(stats.loss)

    between = (x.mean((2, 3)).var(0) + bn.eps).sqrt()  # noise: about 1/5 running std (25 pixels per image)
    short = (0.5 * running_std - between).clamp_min(0) / running_std
    assert loss(x, 0.5) - loss(x, 0.0) == pytest.approx(float(short.norm()) / math.sqrt(2), rel=1e-5)
    spread_out = x + torch.randn(32, 2, 1, 1, generator=layer_stream(1, 3)) * running_std.view(1, 2, 1, 1)
    assert loss(spread_out, 0.5) == loss(spread_out, 0.0)  # images a running std apart: no shortfall
    with pytest.raises(ValueError, match="image_spread"):
        Inversion(image_spread=-0.1)
    model = calibrated("resnet8_tiny")
    noise = torch.randn(32, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    plain = distill_images(model, noise, chunk=32, inversion=Inversion(steps=40))
    spread = distill_images(model, noise, chunk=32, inversion=Inversion(steps=40, image_spread=0.3))
    assert torch.isfinite(spread).all()
    assert float(bn_statistics_loss(model, spread)) < 0.8 * float(bn_statistics_loss(model, noise))
    plain_spread, more = between_image_spread(model, plain), between_image_spread(model, spread)
    assert min(b - a for a, b in zip(plain_spread, more, strict=True)) > 0.15, (plain_spread, more)


def test_clip_keeps_distilled_images_inside_the_pixel_range_the_normalization_gives() -> None:
    """clip: the images start and stay inside the range [0, 1] pixels take under the model's normalization (the
    compression's GenerationContext carries it), where unclipped ones leave it; it needs that range, and genie
    (images set by its network's last BatchNorm) refuses it."""
    lo, hi = pixel_range({"mean": [0.25], "std": [0.5]})
    assert (float(lo), float(hi)) == (-0.5, 1.5)
    model = calibrated("resnet8_tiny")
    noise = torch.randn(16, 1, 28, 28, generator=layer_stream(0, 1 << 20)) * 2
    with pytest.raises(ValueError, match="pixel_range"):
        distill_images(model, noise, chunk=16, inversion=Inversion(steps=2, clip=True))
    free = distill_images(model, noise, chunk=16, inversion=Inversion(steps=30))
    kept = distill_images(model, noise, chunk=16, inversion=Inversion(steps=30, clip=True), pixel_range=(lo, hi))
    assert free.min() < lo and free.max() > hi
    assert float(kept.min()) == float(lo) and float(kept.max()) == float(hi)  # the bounds are reached, not passed
    assert float(bn_statistics_loss(model, kept)) < 0.8 * float(bn_statistics_loss(model, noise.clamp(lo, hi)))
    cfg = generator_config("distilled", num_images=16, chunk=16, steps=4, clip=True)
    made, _ = source_images(model, cfg, GenerationContext((1, 28, 28), 8, pixel_range=(lo, hi)))
    assert lo <= made.min() and made.max() <= hi
    with pytest.raises(UserError, match="generator.clip"):
        generator_config("genie", clip=True)


def test_backdrop_gives_every_image_a_flat_learned_background_of_the_share_asked() -> None:
    """backdrop: outside one ellipse per image (about `share` of its pixels) every pixel takes one level per image
    and channel, learned with the rest (and clipped with it), and the images still match the BN statistics; the
    masks cover the share asked and differ by image; genie and coarse steps refuse it."""
    masks = backdrop_masks(256, (28, 28), 0.5, torch.Generator().manual_seed(0))
    assert masks.shape == (256, 1, 28, 28) and masks.dtype == torch.bool
    assert 0.5 <= float(masks.float().mean()) < 0.56  # ellipses that cross the border leave a little more
    assert len({m.numpy().tobytes() for m in masks}) == 256
    lo, hi = pixel_range({"mean": [0.25], "std": [0.5]})
    model = calibrated("resnet8_tiny")
    noise = torch.randn(16, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    inv = Inversion(steps=30, clip=True, backdrop=0.4)
    made = distill_images(model, noise, chunk=16, inversion=inv, pixel_range=(lo, hi), seed=3)
    flat = backdrop_masks(16, (28, 28), 0.4, torch.Generator().manual_seed(3 * 1_000_003 + 1))
    assert all(image[mask].unique().numel() == 1 for image, mask in zip(made, flat, strict=True))  # one level each
    levels = torch.stack([image[mask][0] for image, mask in zip(made, flat, strict=True)])
    assert lo <= made.min() and made.max() <= hi and levels.std() > 0
    assert float(bn_statistics_loss(model, made)) < 0.8 * float(bn_statistics_loss(model, noise.clamp(lo, hi)))
    with pytest.raises(ValueError, match="backdrop"):
        Inversion(backdrop=1.0)
    with pytest.raises(ValueError, match="coarse"):
        distill_images(model, noise, chunk=16, inversion=Inversion(steps=2, backdrop=0.4, coarse=0.5))
    with pytest.raises(UserError, match="generator.backdrop"):
        generator_config("genie", backdrop=0.4)
    with pytest.raises(UserError, match="generator.coarse"):
        generator_config("distilled", backdrop=0.4, coarse=0.5)


def test_a_run_from_before_round_14_is_not_taken_for_todays_default_images(tmp_path) -> None:
    """clip and backdrop became generator=distilled's default after runs were made without them: a layer store
    stamped without them is a run with both off, so it resumes with both off and never lends its layers to a run at
    today's default (whose images differ)."""
    from lwcompress.errors import UserError
    from lwcompress.fields import defaults
    from lwcompress.layerwise.store import LayerStore

    before = defaults(DistilledConfig)
    assert before["clip"] is False and before["backdrop"] == 0.0 and DistilledConfig().backdrop == 0.3
    old = {k: v for k, v in dataclasses.asdict(DistilledConfig(clip=False, backdrop=0.0)).items()
           if k not in ("clip", "backdrop")}  # fmt: skip
    LayerStore(tmp_path, {"generator": old})
    resumed = dataclasses.asdict(DistilledConfig(clip=False, backdrop=0.0))
    LayerStore(tmp_path, {"generator": resumed}, defaults={"generator": before})
    with pytest.raises(UserError, match="another configuration"):
        LayerStore(tmp_path, {"generator": dataclasses.asdict(DistilledConfig())}, defaults={"generator": before})


@pytest.mark.parametrize(
    ("name", "value"), [("bn_slack", 0.1), ("image_spread", 0.2), ("clip", True), ("backdrop", 0.5)]
)
def test_an_option_added_after_the_cache_names_joins_them_only_when_set(name: str, value: object) -> None:
    """A distillation option added after image sets were cached: absent from the images' name (Inversion's repr) at
    its default, so every cached set keeps its name; a set value is part of the name and of the generator's key."""
    assert name not in repr(Inversion()) and f"{name}={value!r}" in repr(Inversion(**{name: value}))
    model = calibrated("resnet8_tiny")
    unset = {name: getattr(Inversion(), name)}  # generator=distilled's own default may be set (clip, backdrop)
    cfg = generator_config("distilled", num_images=16, chunk=16, steps=4, **unset)
    assert generator(cfg).key(model) != generator(dataclasses.replace(cfg, **{name: value})).key(model)


def test_bf16_distillation_runs_the_network_in_bfloat16_and_keeps_float32_images() -> None:
    """precision=bf16: the network's passes under bfloat16 autocast, the images and loss float32; the images still
    match the statistics far better than their noise (in float32) and are a distinct set in the images' key."""
    model = calibrated("resnet8_tiny")
    noise = torch.randn(16, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    seen = []
    hook = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).register_forward_hook(
        lambda module, args, out: seen.append(out.dtype)
    )
    made = distill_images(model, noise, chunk=16, inversion=Inversion(steps=30, precision="bf16"))
    hook.remove()  # the copy that is distilled carries the model's hooks
    assert set(seen) == {torch.bfloat16}
    assert made.dtype == torch.float32 and torch.isfinite(made).all()
    assert float(bn_statistics_loss(model, made)) < 0.8 * float(bn_statistics_loss(model, noise))
    assert not torch.equal(made, distill_images(model, noise, chunk=16, inversion=Inversion(steps=30)))
    cfg = generator_config("distilled", num_images=16, chunk=16, steps=4)
    assert generator(cfg).key(model) != generator(dataclasses.replace(cfg, precision="bf16")).key(model)
    with pytest.raises(ValueError, match="Inversion.precision='fp16'"):
        Inversion(precision="fp16")


def test_inversion_priors_class_term_and_seeded_augmentation() -> None:
    """DeepInversion's options: the class term makes the network see image i as class i mod 10; shifts and flips are
    drawn from the seed (same seed, same images); without them the seed changes nothing (ZeroQ's images)."""
    torch.manual_seed(0)  # one random model: at 30 steps the class term's hit rate is 0.6-1.0 across them
    model = calibrated("resnet8_tiny")
    noise = torch.randn(20, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    targets = torch.arange(20) % 10

    def hits(images: torch.Tensor) -> float:
        return float((model(images).argmax(1) == targets).float().mean())

    zeroq = distill_images(model, noise, chunk=20, inversion=Inversion(steps=30))
    assert torch.equal(zeroq, distill_images(model, noise, chunk=20, inversion=Inversion(steps=30), seed=5))
    classed = distill_images(model, noise, chunk=20, inversion=Inversion(steps=30, class_weight=10.0))
    assert hits(classed) >= 0.8 > hits(zeroq) + 0.5
    inv = Inversion(steps=10, class_weight=1.0, first_bn_weight=10.0, jitter=2, flip=True)
    shifted = distill_images(model, noise, chunk=20, inversion=inv, seed=1)
    assert torch.equal(shifted, distill_images(model, noise, chunk=20, inversion=inv, seed=1))
    assert not torch.equal(shifted, distill_images(model, noise, chunk=20, inversion=inv, seed=2))


def test_genie_images_come_from_a_seeded_generator_network_and_match_the_statistics() -> None:
    """generator=genie: a generator network with learned latents per chunk, trained to the BN statistics (below
    noise's loss), of the model's input shape even where it is not a multiple of 4, the same images for the same
    seed and others for another; swing shifts strided convolutions' inputs only while distilling; smoothing refused."""
    model = calibrated("resnet8_tiny")
    cfg = generator_config("genie", num_images=24, chunk=16, steps=40, latent_dim=16, width=16)
    made = source_images(model, cfg, GenerationContext((1, 28, 28), 8))[0]
    assert made.shape == (24, 1, 28, 28) and torch.isfinite(made).all()
    noise = torch.randn(24, 1, 28, 28, generator=layer_stream(0, 1 << 20))
    assert float(bn_statistics_loss(model, made[:16])) < 0.8 * float(bn_statistics_loss(model, noise[:16]))
    assert torch.equal(made, source_images(model, cfg, GenerationContext((1, 28, 28), 8))[0])
    other = dataclasses.replace(cfg, seed=1)
    assert not torch.equal(made, source_images(model, other, GenerationContext((1, 28, 28), 8))[0])
    odd = source_images(model, dataclasses.replace(cfg, steps=2), GenerationContext((1, 30, 30), 8))[0]
    assert odd.shape == (24, 1, 30, 30)
    assert not any(m._forward_pre_hooks for m in model.modules())  # swing and statistics hooks are gone
    with pytest.raises(UserError, match="generator=genie draws no noise images"):
        generator_config("genie", smoothing=1.0)


def test_genie_refine_steps_optimize_the_network_images_as_pixels() -> None:
    """generator.refine_steps: the network's images are the start of a per-pixel distillation (the same images as
    distilling them directly), which lowers their BN-statistics loss; refine settings are part of the cache key."""
    model = calibrated("resnet8_tiny")
    cfg = generator_config("genie", num_images=16, chunk=16, steps=10, latent_dim=16, width=16)
    refined_cfg = dataclasses.replace(cfg, refine_steps=20, refine_lr=0.05)
    plain = source_images(model, cfg, GenerationContext((1, 28, 28), 8))[0]
    refined = source_images(model, refined_cfg, GenerationContext((1, 28, 28), 8))[0]
    direct = distill_images(model, plain, chunk=16, inversion=Inversion(steps=20, lr=0.05), seed=cfg.seed)
    assert torch.equal(refined, direct)
    assert float(bn_statistics_loss(model, refined)) < float(bn_statistics_loss(model, plain))
    assert generator(cfg).key(model) != generator(refined_cfg).key(model)


def test_genie_pixel_fraction_makes_its_last_chunks_as_generator_distilled_does() -> None:
    """generator.pixel_fraction: the last chunks are generator=distilled's images for the same seed (pixel_steps
    at pixel_lr, no swing, genie's own priors: unclipped, no backdrop), the first ones the network's; part of the
    cache key."""
    model = calibrated("resnet8_tiny")
    cfg = generator_config("genie", num_images=32, chunk=8, steps=5, latent_dim=16, width=16)
    mixed_cfg = dataclasses.replace(cfg, pixel_fraction=0.5, pixel_steps=6, pixel_lr=0.1)
    mixed = source_images(model, mixed_cfg, GenerationContext((1, 28, 28), 8))[0]
    network_only = source_images(model, cfg, GenerationContext((1, 28, 28), 8))[0]
    distilled_cfg = generator_config("distilled", num_images=32, chunk=8, steps=6, lr=0.1, clip=False, backdrop=0.0)
    distilled = source_images(model, distilled_cfg, GenerationContext((1, 28, 28), 8))[0]
    assert torch.equal(mixed[:16], network_only[:16]) and torch.equal(mixed[16:], distilled[16:])
    assert generator(cfg).key(model) != generator(mixed_cfg).key(model)


def test_distilled_domain_is_the_model_on_cached_distilled_images() -> None:
    model = calibrated("resnet8_tiny")
    cfg = generator_config("distilled", num_images=8, chunk=8, steps=3)
    ctx = GenerationContext((1, 28, 28), 8, pixel_range=PIXELS)
    domain, imgs = generator_domain(model, cfg, ctx)
    assert domain is model and imgs.shape == (8, 1, 28, 28)
    again, batch_stat_bn = source_images(model, cfg, ctx)
    assert again is imgs and not batch_stat_bn  # cached: distillation runs once per context


def test_distilled_images_are_kept_across_runs(tmp_path, monkeypatch) -> None:
    """With a cache_dir a later context (another run) reuses the images and reports what they cost once; another
    setting or an unreadable file makes them again."""
    from lwcompress.generate import generators

    model = calibrated("resnet8_tiny")
    cfg = generator_config("distilled", num_images=8, chunk=8, steps=3)
    first = GenerationContext((1, 28, 28), 8, cache_dir=tmp_path, pixel_range=PIXELS)
    made = source_images(model, cfg, first)[0]
    assert first.wall_s > 0 and first.reused_wall_s == 0 and len(list(tmp_path.glob("*.pt"))) == 1

    def no_distilling(*args, **kwargs):
        raise AssertionError("distilled again")

    with monkeypatch.context() as m:
        m.setattr(generators, "distill_images", no_distilling)
        later = GenerationContext((1, 28, 28), 8, cache_dir=tmp_path, pixel_range=PIXELS)
        assert torch.equal(source_images(model, cfg, later)[0], made)
        assert later.wall_s == 0 and later.reused_wall_s == pytest.approx(first.wall_s)
        with pytest.raises(AssertionError, match="distilled again"):
            source_images(model, dataclasses.replace(cfg, steps=4), later)
    next(tmp_path.glob("*.pt")).write_bytes(b"truncated")
    again = GenerationContext((1, 28, 28), 8, cache_dir=tmp_path, pixel_range=PIXELS)
    assert torch.equal(source_images(model, cfg, again)[0], made) and again.wall_s > 0


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_hybrid_batches_mix_distilled_and_partner_inputs_at_the_ratio(fraction: float) -> None:
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    cfg = generator_config("hybrid", num_images=16, chunk=16, steps=2, distilled_fraction=fraction)
    ctx = GenerationContext((1, 8, 8), 8, pixel_range=PIXELS)
    inputs = build_inputs(model, layers, cfg, ctx)
    pool = build_inputs(model, layers, dataclasses.replace(cfg, name="distilled"), ctx)["conv2"].data
    x = inputs["conv2"].sample(32, layer_stream(0, 0))
    from_pool = [bool((pool == row).flatten(1).all(1).any()) for row in x]
    k = round(32 * fraction)
    assert x.shape == (32, 2, 8, 8) and from_pool == [True] * k + [False] * (32 - k)


def test_calibrated_ranges_are_the_observed_extremes_except_for_the_image_layer() -> None:
    model = calibrated("resnet8_tiny")
    layers = analyze(model, torch.zeros(1, 1, 28, 28))
    imgs = images(32)
    ranges = {i.name: (-2.0, 2.0) for i in layers}
    out = calibrated_ranges(model, layers, ranges, imgs, batch_stat_bn=False, chunk=8)
    captured = capture_inputs(model, [i.name for i in layers], imgs, batch_stat_bn=False)
    assert out[layers[0].name] == (-2.0, 2.0)  # fed by the image: the exact pixel range stays
    for info in layers[1:]:
        x = captured[info.name]
        assert out[info.name] == pytest.approx((float(x.min()), float(x.max())))


def test_stepwise_passes_give_each_layer_its_input_with_the_replacements_before_it() -> None:
    """One forward pass that stops at each layer equals a full capture through the network with the replaced
    modules in place; a layer already passed is an error."""
    model = calibrated("resnet8_tiny")
    x = images(40)
    names = [i.name for i in analyze(model, x[:1])]
    doubled = copy.deepcopy(model.get_submodule(names[1]))
    with torch.no_grad():
        doubled.weight.mul_(2)
    replaced_model = copy.deepcopy(model)
    replaced_model.set_submodule(names[1], doubled)
    step = Stepwise(model, x, chunk=16, replaced={names[1]: doubled})
    for name in names:
        assert torch.allclose(step.input_of(name), capture_inputs(replaced_model, [name], x, False)[name], atol=1e-6)
    with pytest.raises(ValueError, match="not called after"):
        step.input_of(names[0])


def test_smoothed_noise_is_correlated_and_keeps_unit_variance() -> None:
    from lwcompress.generate.generators import smoothed

    white = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    blurred = smoothed(white, 1.5)
    neighbours = lambda x: float((x[..., 1:] * x[..., :-1]).mean())  # noqa: E731
    assert abs(neighbours(white)) < 0.05 and neighbours(blurred) > 0.7
    assert torch.allclose(blurred.std(dim=(1, 2, 3)), torch.ones(8), atol=1e-4)
    ctx = GenerationContext((1, 28, 28), 8, pixel_range=PIXELS)
    model = calibrated("resnet8_tiny")
    plain, _ = source_images(model, DistilledConfig(num_images=8), ctx)
    smooth, _ = source_images(model, DistilledConfig(num_images=8, smoothing=1.5), ctx)
    assert not torch.equal(plain, smooth)  # its own cache entry


def test_domain_gaps_vanish_on_the_training_images_and_measure_a_wrong_input_model() -> None:
    """A layer's gap compares the statistics of its output on the generator's images with the training statistics
    its BatchNorm holds: ~0 on the very images the statistics came from, large for white noise where the model
    saw smooth images, and the closed-form Gaussian KL where a training variance is 4x what the images give."""
    model = MODELS.get("resnet8_tiny")(10, 1)
    seen = smoothed(torch.randn(256, 1, 28, 28, generator=layer_stream(0, 7)), 2.0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None
    with torch.no_grad():
        model.train()(seen)
    model.eval()
    layers = analyze(model, torch.zeros(1, 1, 28, 28))
    ctx = GenerationContext((1, 28, 28), 8, real_images=seen)
    real = domain_gaps(model, layers, generator_config("real", num_images=256, chunk=256), ctx)
    assert set(real) == {i.name for i in layers if i.bn is not None} and len(real) == len(layers) - 1
    assert max(real.values()) < 1e-6
    noise = domain_gaps(model, layers, generator_config("propagated", num_images=256, chunk=256), ctx)
    assert max(noise.values()) > 100 * max(max(real.values()), 1e-4)
    info = layers[2]
    model.get_submodule(info.bn).running_var.mul_(4.0)
    again = domain_gaps(model, layers, generator_config("real", num_images=256, chunk=256), ctx)
    assert again[info.name] == pytest.approx(0.5 * (math.log(4.0) + 0.25 - 1), rel=1e-4)
    with pytest.raises(UserError, match="makes no images"):
        domain_gaps(model, layers, generator_config("bn_gaussian"), ctx)


def test_paired_pool_draws_crops_without_gathering_whole_maps() -> None:
    """A batch of crops holds the same items and window in both tensors as gathering the items and cropping them
    would (the same random draws), while only the crops' bytes are ever copied."""
    data, ref = torch.randn(16, 3, 56, 56), torch.randn(16, 3, 56, 56)
    pool = PairedPool(data, 8, reference=ref)
    x, x_ref = pool.sample(5, layer_stream(0, 3))
    gen = layer_stream(0, 3)
    idx = torch.randint(0, 16, (5,), generator=gen)
    top, left = (int(torch.randint(0, 49, (1,), generator=gen)) for _ in range(2))
    assert torch.equal(x, data[idx][..., top : top + 8, left : left + 8])
    assert torch.equal(x_ref, ref[idx][..., top : top + 8, left : left + 8])
    assert x.untyped_storage().nbytes() == x.numel() * x.element_size()  # a crop-sized copy, not a view of maps
    flat = PairedPool(torch.randn(16, 10), 8, reference=torch.randn(16, 10))
    assert flat.sample(4, layer_stream(0, 3))[0].shape == (4, 10)  # non-spatial inputs: whole items


def test_capabilities_come_from_the_generator_class_not_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a generator can feed is declared by its class: the built-ins' table (with the example plug-in's, which
    `make setup` installs: experiments/plugin_example), and a class registered under a built-in's name with other
    declarations changes what the pipeline does with it."""
    table = {name: (cls.makes_images, cls.has_domain, cls.pixels, cls.needs_real) for name in GENERATORS.names()
             for cls in [GENERATORS.get(name)]}  # fmt: skip
    assert table == {"bn_gaussian": (False, False, False, False), "gaussian": (False, False, False, False),
                     "propagated": (True, True, False, False), "distilled": (True, True, False, False),
                     "hybrid": (True, False, False, False), "real": (True, True, True, True),
                     "genie": (True, True, False, False), "pink_noise": (True, True, False, False)}  # fmt: skip
    assert able("has_domain") == ["distilled", "genie", "pink_noise", "propagated", "real"]
    model = HandSet().eval()
    layers = analyze(model, torch.zeros(1, 1, 8, 8))
    data = LayerData(model, layers, generator_config("propagated"), GenerationContext((1, 8, 8), 8))
    assert data.has_domain and not data.pixels

    class Flat(GENERATORS.get("propagated")):
        has_domain = False
        pixels = True

    monkeypatch.setitem(GENERATORS._items, "propagated", Flat)
    assert not data.has_domain and data.pixels and data.float_inputs == set()  # real pixels: the first conv trains
    with pytest.raises(UserError, match="needs generator=distilled, genie, pink_noise, real, not propagated"):
        check_sequential("propagated")
