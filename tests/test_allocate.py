"""Per-layer bit widths: rules by layer name (matching, precedence, errors) and allocation under a size budget."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from lwcompress.allocate.solve import choose
from lwcompress.api import compress, load_compressed
from lwcompress.cli import load_config, preflight
from lwcompress.compress import CompressorConfig
from lwcompress.errors import UserError
from lwcompress.generate import generator_config
from lwcompress.models import ModelConfig, build_model

from .conftest import run_cli

NORM = {"mean": [0.5], "std": [0.25]}
TINY = ["model=resnet8_tiny", "data=synthetic"]


def bits(cfg: CompressorConfig, name: str, first: bool = False, last: bool = False) -> tuple:
    s = cfg.setting_for(name, first, last)
    return s.wbits, s.abits, s.sparsity


def test_rules_apply_in_order_after_the_first_and_last_layer_keys() -> None:
    cfg = CompressorConfig(wbits=4, abits=4, layers={"layers.*": {"wbits": 6}, "layers.1.*": {"wbits": 3},
                                                     "re:.*shortcut\\.\\d": {"abits": None, "sparsity": 0.5},
                                                     "fc": {"wbits": 2}})  # fmt: skip
    assert bits(cfg, "conv1", first=True) == (8, 8, 0.0)  # first-layer keys; no rule names it
    assert bits(cfg, "layers.0.conv1") == (6, 4, 0.0)
    assert bits(cfg, "layers.1.conv2") == (3, 4, 0.0)  # the later, more specific rule wins
    assert bits(cfg, "layers.1.shortcut.0") == (3, None, 0.5)  # regex: float input, pruned; the glob's bits stay
    assert bits(cfg, "fc", last=True) == (2, 8, 0.0)  # a rule overrides the last-layer key, key by key
    assert cfg.pinned("fc", False, True) == (True, True) and cfg.pinned("layers.2.conv1", False, False) == (True, False)
    listed = CompressorConfig(wbits=4, abits=4, layers=[{"match": "layers.*", "wbits": 6}, {"match": "fc", "wbits": 2}])
    assert [bits(listed, n, last=n == "fc") for n in ("layers.0.conv1", "fc")] == [(6, 4, 0.0), (2, 8, 0.0)]
    assert cfg.label() == "W4A4 0% uniform mixed" and cfg.prunes  # only the rule prunes
    only_fc = CompressorConfig(wbits=None, abits=None, layers={"fc": {"wbits": 4}})  # a rule alone compresses
    assert bits(only_fc, "fc", last=True) == (4, None, 0.0) and bits(only_fc, "conv1", first=True)[0] is None
    with pytest.raises(UserError, match="nothing to compress"):
        CompressorConfig(wbits=None, abits=None, layers={"fc": {"wbits": None}})


def test_rules_from_the_command_line_reach_the_layers(tmp_path: Path) -> None:
    """A closed-form run with rules: layers.csv and summary.json show every layer's final bits."""
    rules = "compressor.layers={layers.1.*: {wbits: 3}, fc: {wbits: 6, abits: 5}}"
    run_cli(
        "lwcompress",
        *TINY,
        "model.weights=null",
        "threads=1",
        "compressor=rtn",
        "save_model=false",
        rules,
        f"hydra.run.dir={tmp_path}",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    layer_bits = summary["layer_bits"]
    assert layer_bits["layers.1.conv1"]["wbits"] == layer_bits["layers.1.shortcut.0"]["wbits"] == 3
    assert layer_bits["fc"] == {"wbits": 6, "abits": 5, "sparsity": 0.0} and layer_bits["layers.0.conv1"]["wbits"] == 8
    rows = (tmp_path / "layers.csv").read_text().splitlines()
    assert any(r.startswith("layers.1.conv2,") and ",3,8," in r for r in rows)
    assert summary["setting"] == "W8A8 mixed" and 3 < summary["avg_wbits"] < 8


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["compressor.layers={layers.1.*: {wbits: 9}}"], "compressor.layers['layers.1.*'].wbits=9: must be an integer"),
        (["compressor.layers={layers.1.*: {wbit: 4}}"], "compressor.layers['layers.1.*'].wbit: unknown"),
        (['compressor.layers=[{match: "re:(", wbits: 4}]'], "compressor.layers['re:(']: not a regular expression"),
        (["compressor.layers={layers.1.*: 4}"], "must set some of wbits, abits, sparsity"),
        (["compressor.layers=[{wbits: 4}]"], "must be {pattern: {wbits: 4}} or [{match: pattern, wbits: 4}]"),
        (["compressor.layers={layers.1.*: {sparsity: 1.5}}"], "sparsity=1.5: must be a number in 0.0..0.99"),
        (["compressor.budget.wbits=3", "compressor.budget.bytes=1000"], "set wbits (average bits) or bytes"),
        (["compressor.budget.candidate_wbits=[1,4]"], "budget.candidate_wbits=[1, 4]: must be a non-empty list"),
        (["compressor.budget.allocation=greedy"], "must be one of uniform, sensitivity"),
        (["compressor.wbits=null", "compressor.budget.wbits=3"], "budget.wbits/bytes allocate weight bits"),
    ],
)
def test_bad_rules_and_budgets_fail_at_compose_with_one_line(overrides: list[str], expected: str) -> None:
    with pytest.raises(UserError) as e:
        load_config([*TINY, *overrides])
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_a_pattern_that_matches_no_layer_fails_before_the_job() -> None:
    with pytest.raises(UserError, match=r"compressor.layers\['layer9.\*'\] matches no layer of resnet8_tiny"):
        preflight("config", [*TINY, "compressor.layers={layers.0.*: {wbits: 4}, layer9.*: {wbits: 4}}"])
    preflight("config", [*TINY, "compressor.layers={layers.0.*: {wbits: 4}}"])


def brute_force(costs: list[list[float]], errors: list[list[float]], budget: float) -> float:
    feasible = [ks for ks in itertools.product(*(range(len(c)) for c in costs))
                if sum(c[k] for c, k in zip(costs, ks, strict=True)) <= budget]  # fmt: skip
    return min(sum(e[k] for e, k in zip(errors, ks, strict=True)) for ks in feasible)


def test_knapsack_fits_the_budget_and_finds_the_least_error() -> None:
    rng = random.Random(0)
    for _ in range(100):
        sizes = [rng.randint(1, 200) for _ in range(rng.randint(1, 5))]
        costs = [[p * b for b in (2, 3, 4, 8)] for p in sizes]
        errors = [[rng.random() * f for f in (8, 4, 2, 1)] for _ in sizes]
        budget = rng.uniform(sum(min(c) for c in costs), sum(max(c) for c in costs))
        picks = choose(costs, errors, budget)
        assert sum(c[k] for c, k in zip(costs, picks, strict=True)) <= budget
        found = sum(e[k] for e, k in zip(errors, picks, strict=True))
        assert found <= brute_force(costs, errors, budget) * 1.02 + 1e-12
    assert choose([[2, 4], [2, 4]], [[1, 0], [1, 0]], 8) == [1, 1]  # all at the top when it fits
    with pytest.raises(ValueError, match="over the budget"):
        choose([[2, 4], [2, 4]], [[1, 0], [1, 0]], 3.9)


# Sensitivities measured on a small distilled set where the test needs no more (the default's 256 images x 200
# steps cost ~20 s per model here).
SMALL = generator_config("distilled", num_images=64, steps=50)


def sensitive_model(target: str) -> torch.nn.Module:
    """resnet8_tiny (random weights) whose `target` conv has, in every output channel, a huge weight on an input
    channel that its ReLU always zeroes: the function is unchanged, but the per-channel grid is stretched 20x, so
    only wide grids keep the layer's real weights."""
    torch.manual_seed(0)
    model, _ = build_model(ModelConfig("resnet8_tiny"), 10, 1)
    block = model.get_submodule(target.rsplit(".", 1)[0])
    with torch.no_grad():
        block.bn1.bias[0] = -50.0
        block.conv2.weight[:, 0] = 20 * block.conv2.weight.abs().max()
    return model


def test_allocation_gives_a_sensitive_layer_more_bits_and_meets_the_budget() -> None:
    target = "layers.2.conv2"
    cfg = CompressorConfig("rtn", wbits=8, abits=None, first_layer_wbits=None, last_layer_wbits=None,
                           budget={"wbits": 3.5, "candidate_wbits": [2, 3, 4, 8]})  # fmt: skip
    torch.manual_seed(0)
    plain, _ = build_model(ModelConfig("resnet8_tiny"), 10, 1)
    control = compress(plain, cfg, NORM, (1, 28, 28))
    result = compress(sensitive_model(target), cfg, NORM, (1, 28, 28))
    chosen = {r.name: r.wbits for r in result.layers}
    assert chosen[target] > {r.name: r.wbits for r in control.layers}[target]  # 4 vs 2 bits here
    params = {n: q.layer.weight.numel() for n, q in result.compressed_layers().items()}
    average = sum(params[n] * chosen[n] for n in params) / sum(params.values())
    assert average == pytest.approx(result.average_wbits()) and average <= 3.5
    assert average > 3.5 - 8 * max(params.values()) / sum(params.values())  # no upgrade left that would fit
    sensitivity = result.meta["allocation"]["sensitivity"]["wbits"]
    assert sensitivity[target][4] > 10 * max(v[4] for n, v in sensitivity.items() if n != target)
    assert result.meta["allocation"]["wall_s"] > 0


def test_budget_in_bytes_uniform_allocation_and_pinned_layers(tmp_path: Path) -> None:
    """bytes budgets count the pinned (first/last 8-bit) layers; uniform gives every free layer the widest width
    that fits, measuring nothing (no images are made); the chosen widths are saved as rules, so load_compressed
    rebuilds the model without allocating."""
    torch.manual_seed(0)
    model, _ = build_model(ModelConfig("resnet8_tiny"), 10, 1)
    params = {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)}
    ends = params["conv1"] + params["fc"]
    budget = (8 * ends + 4.5 * (sum(params.values()) - ends)) / 8  # bytes: ends at 8, the rest 4.5 on average
    cfg = CompressorConfig("rtn", wbits=8, abits=8, budget={"bytes": int(budget), "allocation": "uniform"})
    result = compress(model, cfg, NORM, (1, 28, 28))
    chosen = {r.name: r.wbits for r in result.layers}
    assert chosen["conv1"] == chosen["fc"] == 8 and {b for n, b in chosen.items() if n not in ("conv1", "fc")} == {4}
    assert sum(params[n] * chosen[n] for n in params) <= 8 * budget
    assert result.meta["allocation"]["sensitivity"] == {} and result.meta["generate_wall_s"] == 0  # no images made
    result.save(tmp_path / "c.pt")
    torch.manual_seed(1)
    again = load_compressed(tmp_path / "c.pt", build_model(ModelConfig("resnet8_tiny"), 10, 1)[0])
    assert {r.name: r.wbits for r in again.layers} == chosen
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(again.model(x), result.model(x))
    with pytest.raises(UserError, match="below the smallest candidate"):
        compress(model, CompressorConfig("rtn", budget={"wbits": 1.5}), NORM, (1, 28, 28))


def test_activation_budget_weights_inputs_by_their_elements() -> None:
    """budget.abits: average input bits weighted by elements per image, the image-fed layer (unmeasurable in a
    synthetic domain) and the pinned last layer kept at their bits; measured by output KL."""
    torch.manual_seed(0)
    model, _ = build_model(ModelConfig("resnet8_tiny"), 10, 1)
    cfg = CompressorConfig("rtn", wbits=None, abits=8, last_layer_abits=None,
                           budget={"abits": 6, "candidate_abits": [4, 8], "measure": "output_kl"})  # fmt: skip
    result = compress(model, cfg, NORM, (1, 28, 28), generator=SMALL)
    elems = {r.name: r for r in result.layers}
    from lwcompress.graph import analyze

    shapes = {i.name: i.input_shape for i in analyze(model.eval(), torch.zeros(1, 1, 28, 28))}
    size = {n: int(torch.tensor(shapes[n]).prod()) for n in elems}
    chosen = result.meta["allocation"]["abits"]
    assert "conv1" not in chosen and elems["conv1"].abits == 8  # image-fed: its input bits stay as configured
    assert set(chosen) == set(elems) - {"conv1"} and set(chosen.values()) == {4, 8}
    average = sum(size[n] * elems[n].abits for n in elems) / sum(size.values())
    assert average <= 6 and all(elems[n].abits == chosen[n] for n in chosen)
    kl = result.meta["allocation"]["sensitivity"]["abits"]
    # The untrained net's outputs are nearly uniform: its early layers' KLs (~5e-8) sit at float32's rounding of
    # them and may come out in either order; where the 4-bit inputs' loss is measurable it is the larger.
    assert all(v[8] >= 0 and v[4] >= v[8] - 1e-7 for v in kl.values())
    assert all(v[4] > v[8] for v in kl.values() if v[4] > 1e-6) and kl["fc"][4] > 10 * kl["fc"][8]


def test_trials_from_the_middle_of_a_pass_equal_full_passes() -> None:
    """Sensitivities run only the rest of the network from each layer (Stepwise.output_with): the same outputs as a
    full pass with the layer swapped, however many trials share the prefix (in-place ReLUs touch only copies)."""
    import copy

    from lwcompress.generate.capture import Stepwise

    torch.manual_seed(0)
    model, _ = build_model(ModelConfig("mobilenetv2_tiny"), 10, 1)
    model.eval()
    images = torch.randn(10, 1, 28, 28)
    steps = Stepwise(model, images, chunk=4)
    assert torch.allclose(steps.output_with({}), model(images), atol=1e-5)
    for name in ["features.3.block.0", "features.4.block.6"]:
        steps.input_of(name)
        for scale in (0.5, 2.0):
            swapped = copy.deepcopy(model.get_submodule(name))
            with torch.no_grad():
                swapped.weight.mul_(scale)
            full = copy.deepcopy(model)
            full.set_submodule(name, swapped)
            assert torch.allclose(steps.output_with({name: swapped}), full(images), atol=1e-5)
