"""The zero-training solver (rounding=gptq): exact where the answer is known, better than RTN where inputs
correlate, per group for depthwise convs, masks kept, and through the whole pipeline."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from torch import nn

from lwcompress.api import compress
from lwcompress.compress import CompressedLayer, CompressorConfig
from lwcompress.generate import generator_config
from lwcompress.layerwise import LayerwiseConfig, Learned, layer_trainer, reconstruct
from lwcompress.layerwise.gptq import gptq_layer, search_input_step

from .test_compress import NORM, calibrated, images
from .test_layerwise import Correlated, conv_task


def test_uncorrelated_inputs_give_round_to_nearest() -> None:
    """With H = X^T X exactly diagonal no rounding error can be compensated: GPTQ is round-to-nearest."""
    torch.manual_seed(0)
    x = torch.linalg.qr(torch.randn(64, 12)).Q * 8.0  # orthogonal columns
    q = CompressedLayer(nn.Linear(12, 5), 3, False)
    rtn = q.codes()
    gptq_layer(q, x, x, damp=0.0, order="natural")
    assert torch.equal(q.codes(), rtn)


def test_correlated_inputs_beat_round_to_nearest_and_stay_on_the_grid() -> None:
    task = conv_task(bits=3)
    q, ref = task.quant, task.reference
    x = task.inputs.sample(256, torch.Generator().manual_seed(1))
    err = lambda: float((q(x) - ref(x)).pow(2).mean() / ref(x).var())  # noqa: E731
    with torch.no_grad():
        before = err()
        gptq_layer(q, x, x, damp=0.01, order="descending")
        after = err()
    assert after < 0.7 * before
    codes = q.codes()
    q.load_codes(codes)
    assert torch.equal(q.codes(), codes)


def test_searched_steps_never_lose_to_the_closed_form_ones() -> None:
    """The step searches try the closed-form step (factor 1) with the others, so the searched layer's output error
    on the pool is never above plain GPTQ's; with an input range about twice too wide (8-bit weights: the input's
    error dominates) it is well below, at a narrower input step, and the codes stay on the chosen grids."""
    task = conv_task(bits=3)
    x = task.inputs.sample(256, torch.Generator().manual_seed(1))
    ref = task.reference
    layer = lambda wbits: CompressedLayer(copy.deepcopy(ref), wbits, False, "minmax", 4, (0.0, 24.0))  # noqa: E731
    err = lambda q: float((q(x) - ref(x)).pow(2).mean())  # noqa: E731
    factors = torch.linspace(0.5, 1.5, 11).tolist()
    plain8, searched, plain3, weights = layer(8), layer(8), layer(3), layer(3)
    with torch.no_grad():
        gptq_layer(plain8, x, x, damp=0.01, order="descending")
        solver = lambda q: lambda xs, refs: gptq_layer(q, xs, refs, damp=0.01, order="descending")  # noqa: E731
        chosen = search_input_step(searched, x, x, factors, solver(searched))
        assert torch.equal(searched.layer.weight, ref.weight)  # it ends at the chosen step, still to be solved
        gptq_layer(searched, x, x, damp=0.01, order="descending")
        gptq_layer(plain3, x, x, damp=0.01, order="descending")
        gptq_layer(weights, x, x, damp=0.01, order="descending", weight_factors=factors)
        assert chosen < 1.0 and float(searched.a_scale) == pytest.approx(float(plain8.a_scale) * chosen)
        assert err(searched) < 0.5 * err(plain8)
        assert err(weights) <= err(plain3) * (1 + 1e-6) and not torch.equal(weights.w_scale, plain3.w_scale)
    for q in (searched, weights):
        codes = q.codes()
        q.load_codes(codes)
        assert torch.equal(q.codes(), codes)


def test_a_candidate_step_whose_solve_fails_or_diverges_is_skipped() -> None:
    """The input-step search never picks a step whose solve raised (a Hessian singular after all damping) or left a
    non-finite output, the closed form's included: here only the wider steps solve cleanly, and one of them wins."""
    task = conv_task(bits=3)
    x = task.inputs.sample(64, torch.Generator().manual_seed(1))
    q = CompressedLayer(copy.deepcopy(task.reference), 3, False, "minmax", 4, (0.0, 24.0))
    closed = float(q.a_scale)

    def solve(xs: torch.Tensor, refs: torch.Tensor) -> None:
        if float(q.a_scale) < closed:
            raise FloatingPointError("singular")
        gptq_layer(q, xs, refs, damp=0.01, order="descending")
        if float(q.a_scale) == closed:
            q.layer.weight.fill_(float("nan"))

    with torch.no_grad():
        assert search_input_step(q, x, x, [0.5, 0.8, 1.2, 1.5], solve) in (1.2, 1.5)
    assert torch.isfinite(q.layer.weight).all()


def test_depthwise_groups_are_solved_alone() -> None:
    """A depthwise conv solved in one batched call equals each channel solved as its own 1-channel conv."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    x = Correlated((4, 6, 6)).sample(32, torch.Generator().manual_seed(2))
    whole = CompressedLayer(copy.deepcopy(conv), 3, False)
    gptq_layer(whole, x, x, damp=0.01, order="descending")
    for c in range(4):
        single = nn.Conv2d(1, 1, 3, padding=1)
        with torch.no_grad():
            single.weight.copy_(conv.weight[c : c + 1])
            single.bias.copy_(conv.bias[c : c + 1])
        alone = CompressedLayer(single, 3, False)
        gptq_layer(alone, x[:, c : c + 1], x[:, c : c + 1], damp=0.01, order="descending")
        assert torch.allclose(alone.layer.weight, whole.layer.weight[c : c + 1], atol=1e-6)


def test_pruned_weights_stay_zero() -> None:
    task = conv_task(bits=4)
    mask = torch.rand(task.quant.layer.weight.shape, generator=torch.Generator().manual_seed(4)) > 0.5
    q = CompressedLayer(copy.deepcopy(task.reference), 4, False, "minmax", None, None, mask)
    x = task.inputs.sample(128, torch.Generator().manual_seed(3))
    gptq_layer(q, x, x, damp=0.01, order="natural")
    assert (q.layer.weight[~mask] == 0).all() and (q.quantized_weight()[~mask] == 0).all()


def test_solver_in_a_layer_run_takes_no_steps() -> None:
    task = conv_task(bits=3)
    (result,) = reconstruct([task], LayerwiseConfig(steps=300), layer_trainer, Learned("gptq"))
    assert not result.reverted and result.error < 0.7 * result.rtn_error and result.losses == []


def test_auto_solves_two_bit_layers_and_trains_the_rest() -> None:
    """rounding=auto in one bucket: the 2-bit layer gets GPTQ (no steps), the 4-bit one AdaRound (a loss curve);
    with `gptq_wbits=4` (compressor.auto_gptq_wbits; default 3) both are GPTQ's."""
    two, four = conv_task(0, bits=2), conv_task(1, bits=4)
    results = reconstruct([two, four], LayerwiseConfig(steps=60), layer_trainer, Learned("auto"))
    assert [len(r.losses) for r in results] == [0, 60]
    assert all(r.error < r.rtn_error for r in results)
    two, four = conv_task(0, bits=2), conv_task(1, bits=4)
    results = reconstruct([two, four], LayerwiseConfig(steps=60), layer_trainer, Learned("auto", gptq_wbits=4))
    assert [len(r.losses) for r in results] == [0, 0] and all(r.error < r.rtn_error for r in results)
    assert Learned("auto").rounding_of(CompressedLayer(nn.Linear(3, 2), None, False)) == "adaround"  # float weights


def test_sequential_gptq_beats_round_to_nearest_in_a_fraction_of_the_training_time() -> None:
    """The plain solver in under half of a short AdaRound run's time; its step searches (the default: 11 more solves
    per layer with an input grid) in less than the whole of it."""
    model = calibrated("resnet8_tiny")
    x = images(64)
    ref = model(x)
    common = dict(wbits=3, abits=4, first_layer_wbits=None, last_layer_wbits=None)
    err = lambda m: float((m(x) - ref).pow(2).mean() / ref.var())  # noqa: E731
    gen = generator_config("real", num_images=64)
    rtn = compress(model, CompressorConfig("rtn", **common), NORM, (1, 28, 28))
    plain = {"gptq": {"input_search": False, "weight_search": False}}
    walls = {}
    for name, rounding, roundings in (("plain", "gptq", plain), ("searched", "gptq", {}), ("adaround", "adaround", {})):
        start = time.perf_counter()
        out = compress(model, CompressorConfig(name="quant", rounding=rounding, **common), NORM, (1, 28, 28),
                       generator=gen, layerwise=LayerwiseConfig(steps=100, min_headroom=None, roundings=roundings),
                       real_images=images(128))  # fmt: skip
        walls[name] = time.perf_counter() - start
        if rounding == "gptq":
            assert err(out.model) < 0.8 * err(rtn.model)
    assert walls["plain"] < walls["adaround"] / 2 and walls["searched"] < walls["adaround"]


def test_sub_lattice_columns_are_the_full_columns_at_those_positions() -> None:
    from lwcompress.layerwise.gptq import _columns

    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 13, 13)
    full = _columns(conv, x).view(2, 1, 27, 7, 7)
    for shift in range(4):
        part = _columns(conv, x, every=2, shift=shift)
        dy, dx = shift // 2 % 2, shift % 2
        assert torch.equal(part, full[..., dy::2, dx::2].flatten(-2))


def test_many_small_crops_take_a_sub_lattice_that_fits_them() -> None:
    """Thousands of 8x8 crops with few rows per feature ask for a sub-lattice step larger than the crop has output
    positions; it is capped (it crashed in unfold for generator=bn_gaussian with refit_samples=8192)."""
    task = conv_task(bits=4)
    x = task.inputs.sample(4096, torch.Generator().manual_seed(2))
    q, ref = task.quant, task.reference
    with torch.no_grad():
        before = float((q(x) - ref(x)).pow(2).mean())
        gptq_layer(q, x, x, damp=0.01, order="descending", rows_per_feature=8)
        after = float((q(x) - ref(x)).pow(2).mean())
    assert after < before
