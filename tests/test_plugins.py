"""Plug-ins from outside the package (docs/extending.md): the example package experiments/plugin_example (installed
by `make setup`) as a config option beside the built-ins, generator=custom targets, user config dirs, and the
one-line errors of bad plug-ins."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from lwcompress.api import compress
from lwcompress.cli import load_config
from lwcompress.compress import CompressorConfig
from lwcompress.compress.grids import WEIGHT_GRIDS
from lwcompress.errors import UserError
from lwcompress.generate import (
    GENERATORS,
    GenerationContext,
    Generator,
    GeneratorConfig,
    ImageGenerator,
    generator_config,
)
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.rounding import ROUNDINGS, trained_rounding
from lwcompress.precondition import PRECONDITIONERS

from .conftest import TINY, W4A4, run_cli
from .test_compress import NORM, calibrated

PINK = "lwc_plugin_example.generators.PinkNoise"
CLIP = "lwc_plugin_example.preconditioner.WeightClip"


@pytest.fixture(autouse=True)
def example_plugin_installed() -> None:
    installed = ("pink_noise" in GENERATORS, "offset_round" in ROUNDINGS, "weight_clip" in PRECONDITIONERS,
                 "percentile" in WEIGHT_GRIDS)  # fmt: skip
    if not all(installed):
        pytest.fail("the example plug-in is not installed: `make setup` (pip install -e experiments/plugin_example)")


def test_an_installed_plugin_is_an_option_beside_the_builtins(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Announced through the `lwcompress.plugins` entry points: listed by --help (all four plug-in points),
    composed with its own typed fields, and compared with a built-in in one multirun that ends in one table."""
    shown = run_cli("lwcompress", "--help").stdout
    lines = {ln.split(":")[0]: ln for ln in shown.splitlines() if ln.startswith(("generator: ", "preconditioner: "))}
    assert "pink_noise" in lines["generator"] and "propagated" in lines["generator"]
    assert "weight_clip" in lines["preconditioner"] and "bn_fold" in lines["preconditioner"]
    assert "compressor.rounding: auto, adaround, gptq, offset_round, ste" in shown
    assert "compressor.scale (the weight grid): minmax, mse, percentile" in shown
    assert load_config(["generator=pink_noise", "generator.exponent=1.0"]).generator.exponent == 1.0
    sweep = run_cli("lwcompress", "-m", *TINY, f"model.weights={tiny_checkpoint}", *W4A4, "layerwise.steps=5",
                    "generator=pink_noise,propagated", "save_model=false", f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    table = sweep.stdout[sweep.stdout.index(f"sweep {tmp_path}") :]
    for name in ("pink_noise", "propagated"):
        assert f"| resnet8_tiny | compressor=quant generator={name} mode=sequential |" in table


def test_a_plugin_rounding_learns_and_is_compared_in_one_table(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """compressor.rounding=offset_round (the example's TrainedRounding): it learns (codes leave round-to-nearest,
    the held-out error falls, in block units too) and sits beside AdaRound in one sweep table."""
    model = calibrated("resnet8_tiny")
    common = dict(wbits=3, abits=8)
    rtn = compress(model, CompressorConfig("rtn", **common), NORM, (1, 28, 28))
    for unit in ("layer", "block"):
        out = compress(model, CompressorConfig("quant", rounding="offset_round", **common), NORM, (1, 28, 28),
                       generator=generator_config("propagated", num_images=32), layerwise=LayerwiseConfig(
                           steps=40, batch_size=8, unit=unit, min_headroom=None))  # fmt: skip
        assert sum(r.error for r in out.results) < sum(r.rtn_error for r in out.results)
        moved = [not torch.equal(q.codes(), rtn.model.get_submodule(n).codes()) for n, q in
                 out.compressed_layers().items()]  # fmt: skip
        assert sum(moved) >= 3, unit
    # Its own setting, from layerwise.roundings.offset_round, reaches the instance a layer run builds.
    cfg = load_config(["+layerwise.roundings.offset_round.lr_divisor=20"]).layerwise
    q = rtn.model.get_submodule("layers.0.conv1")
    opened = trained_rounding(ROUNDINGS.get("offset_round"), cfg.rounding_settings("offset_round"))(q, True)
    assert opened.settings.lr_divisor == 20 and opened.param_groups(q, cfg)[0]["lr"] == cfg.lr / 20
    sweep = run_cli("lwcompress", "-m", *TINY, f"model.weights={tiny_checkpoint}", *W4A4, "layerwise.steps=5",
                    "generator=propagated", "compressor.rounding=offset_round,adaround", "save_model=false",
                    f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    table = sweep.stdout[sweep.stdout.index(f"sweep {tmp_path}") :]
    assert "rounding=offset_round" in table and "rounding=adaround" in table, table


def test_a_plugin_preconditioner_runs_its_stages_and_is_restored_with_the_model(tmp_path: Path) -> None:
    """preconditioner=weight_clip (the example's): composed with its own typed field, its `fold`
    is what gets quantized (every layer's FP reference is clipped), and a saved model reloads with it."""
    assert load_config(["preconditioner=weight_clip", "preconditioner.sigmas=2"]).preconditioner.sigmas == 2.0
    model = calibrated("resnet8_tiny")
    clip = PRECONDITIONERS.settings("weight_clip", sigmas=1.5)
    out = compress(model, CompressorConfig("rtn", wbits=3, abits=8), NORM, (1, 28, 28), clip)
    plain = compress(model, CompressorConfig("rtn", wbits=3, abits=8), NORM, (1, 28, 28))
    layers = out.compressed_layers()
    for name, q in layers.items():  # the folded weights, each output channel clipped to mean +- 1.5 std
        w = plain.model.get_submodule(name).layer.weight.flatten(1)
        mean, reach = w.mean(1, keepdim=True), 1.5 * w.std(1, keepdim=True)
        assert torch.allclose(q.layer.weight.flatten(1), torch.clamp(w, mean - reach, mean + reach)), name
    moved = [not torch.equal(q.codes(), plain.model.get_submodule(n).codes()) for n, q in layers.items()]
    assert sum(moved) > len(moved) // 2, moved  # narrower grids: other codes in most layers
    from lwcompress.api import load_compressed

    back = load_compressed(out.save(tmp_path / "c.pt"), calibrated("resnet8_tiny"))
    assert back.preconditioner == clip
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(back.model(x), out.model(x))


def test_a_plugin_weight_grid_places_the_closed_form_grids() -> None:
    """compressor.scale=percentile (the example's WeightGrid): by entry-point name or import path,
    each channel's grid spans its weights' central quantiles, so codes differ from min-max's."""
    model = calibrated("resnet8_tiny")
    plain = compress(model, CompressorConfig("rtn", wbits=3, abits=8), NORM, (1, 28, 28))
    for scale in ("percentile", "lwc_plugin_example.grids.Percentile"):
        out = compress(model, CompressorConfig("rtn", wbits=3, abits=8, scale=scale), NORM, (1, 28, 28))
        layers = out.compressed_layers()
        for name, q in layers.items():
            w = q.layer.weight.detach().flatten(1)
            hi = torch.quantile(w, 1 - 0.0005, dim=1).clamp(min=0)
            lo = torch.quantile(w, 0.0005, dim=1).clamp(max=0)
            assert torch.allclose(q.w_scale.flatten(), (hi - lo) / (2**q.wbits - 1)), name
            assert (q.w_scale <= plain.model.get_submodule(name).w_scale * (1 + 1e-6)).all(), name  # never wider
        moved = [not torch.equal(q.codes(), plain.model.get_submodule(n).codes()) for n, q in layers.items()]
        assert any(moved), moved


def test_custom_targets_and_user_config_dirs(tmp_path: Path) -> None:
    """generator=custom names a class by import path, its own settings under `params`; a user's config dir adds
    options of their own (here one that extends `custom`), found by the preflight as by Hydra."""
    job = load_config(["generator=custom", f"generator.target={PINK}", "+generator.params.exponent=0.5"])
    assert type(job.generator).__name__ == "PinkNoiseConfig" and job.generator.exponent == 0.5
    assert job.generator.name == PINK and GENERATORS.get(PINK).__name__ == "PinkNoise"
    conf = tmp_path / "conf" / "generator"
    conf.mkdir(parents=True)
    (conf / "mygen.yaml").write_text(f"defaults:\n  - custom\n  - _self_\ntarget: {PINK}\nparams:\n  exponent: 3.0\n")
    assert load_config([f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "generator=mygen"]).generator.exponent == 3.0
    shown = run_cli("lwcompress", "--config-dir", str(tmp_path / "conf"), "generator=mygen", "+generator.params.x=1",
                    check=False)  # fmt: skip
    assert shown.returncode == 2 and f"generator={PINK}: unknown setting 'x'; PinkNoiseConfig has" in shown.stderr


@pytest.mark.parametrize(
    ("target", "params", "expected"),
    [
        ("no_such_pkg.Gen", [], "generator 'no_such_pkg.Gen' cannot be imported: ModuleNotFoundError"),
        ("torch.nn.Conv2d", [], "generator 'torch.nn.Conv2d' is not a subclass of lwcompress.generate"),
        ("lwcompress.generate.generators.ImageGenerator", [], "does not implement make"),
        (PINK, ["+generator.params.exponent=9"], "generator.params.exponent=9: must be a number in 0.0..4.0"),
        (PINK, ["+generator.params.steps=3"], f"generator={PINK}: unknown setting 'steps'; PinkNoiseConfig has chunk"),
        (PINK, ["compressor.rounding=no_such_pkg.R"], "compressor.rounding=no_such_pkg.R: rounding 'no_such_pkg.R' "
                                                      "cannot be imported: ModuleNotFoundError"),
        (PINK, ["compressor.rounding=lwcompress.layerwise.rounding.TrainedRounding"],
         "does not implement param_groups, weight"),
    ],
)  # fmt: skip
def test_bad_plugins_fail_before_anything_runs_in_one_line(target: str, params: list[str], expected: str) -> None:
    proc = run_cli("lwcompress", "generator=custom", f"generator.target={target}", *params, check=False)
    assert proc.returncode == 2 and expected in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["compressor.scale=torch.nn.Conv2d"],
         "compressor.scale=torch.nn.Conv2d: weight grid 'torch.nn.Conv2d' is not a subclass of lwcompress.compress"),
        (["+layerwise.roundings.offset_round.lr_divisor=0"],
         "layerwise.roundings.offset_round.lr_divisor=0: must be a number in 0.1..1000.0"),
        (["+layerwise.roundings.adaround.foo=1"],
         "layerwise.roundings.adaround: unknown setting 'foo'; AdaRoundConfig has beta_end"),
        (["preconditioner=custom", "preconditioner.target=torch.nn.Conv2d"],
         "preconditioner 'torch.nn.Conv2d' is not a subclass of lwcompress.precondition.Preconditioner"),
        (["preconditioner=custom", f"preconditioner.target={CLIP}", "+preconditioner.params.sigmas=50"],
         "preconditioner.params.sigmas=50: must be a number in 1.0..10.0"),
        (["preconditioner=custom", f"preconditioner.target={CLIP}", "+preconditioner.params.cle=true"],
         f"preconditioner={CLIP}: unknown setting 'cle'; WeightClipConfig has sigmas"),
    ],
)  # fmt: skip
def test_bad_plugin_settings_are_one_line_when_the_config_is_built(overrides: list[str], expected: str) -> None:
    """The other plug-in points' bad classes and settings, caught as the job's config is built (in process: the
    CLI turns the same UserError into one line and exit 2, as the cases above show)."""
    with pytest.raises(UserError) as e:
        load_config(overrides)
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)


class ConfigNotAGeneratorConfig(Generator):
    config = dict

    def inputs(self, model: nn.Module, layers: list, ctx: GenerationContext) -> dict:
        return {}


def test_a_plugin_config_that_does_not_extend_the_registry_config_is_one_line() -> None:
    name = f"{__name__}.ConfigNotAGeneratorConfig"
    with pytest.raises(UserError, match=f"generator '{name}': its `config` must be a dataclass that extends "
                       r"lwcompress\.generate\.generators\.GeneratorConfig, not <class 'dict'>"):  # fmt: skip
        GENERATORS.get(name)


@dataclass
class _Shape(GeneratorConfig):
    name: str = "shape"
    wrong: str = "dtype"


class WrongImages(ImageGenerator):
    """Images of the wrong dtype, shape or values, as a buggy plug-in might make them."""

    config = _Shape
    kind = "wrong"

    def make(self, model: nn.Module, ctx: GenerationContext) -> torch.Tensor:
        x = torch.zeros((self.cfg.num_images, *ctx.input_shape))
        return {"dtype": x.long(), "shape": x[:, :, :7], "nan": x / 0, "many": torch.cat([x, x])}[self.cfg.wrong]


class WrongInputs(Generator):
    """Layer inputs with a missing layer or the wrong channel count."""

    config = _Shape

    def inputs(self, model: nn.Module, layers: list, ctx: GenerationContext) -> dict:
        class Fixed:
            def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
                return torch.zeros(n, 3, 4, 4)

        names = [i.name for i in layers]
        return {n: Fixed() for n in (names[:-1] if self.cfg.wrong == "missing" else names)}


@pytest.mark.parametrize(
    ("cls", "wrong", "expected"),
    [
        (WrongImages, "dtype", "make() returned dtype torch.int64, not a float type"),
        (WrongImages, "shape", "make() returned shape (16, 1, 7, 28), not (N <= 16, 1, 28, 28)"),
        (WrongImages, "nan", "make() returned non-finite values"),
        (WrongImages, "many", "make() returned shape (32, 1, 28, 28)"),
        (WrongInputs, "missing", "inputs() has no entry for layer fc"),
        (WrongInputs, "channels", "layer conv1: sample(2) gave torch.float32 (2, 3, 4, 4), not a float tensor of "
                                  "shape (2, 1, ...)"),
    ],
)  # fmt: skip
def test_a_plugin_returning_the_wrong_thing_is_named_before_any_layer_runs(
    cls: type, wrong: str, expected: str
) -> None:
    name = f"{__name__}.{cls.__name__}"
    lw = LayerwiseConfig(steps=1, mode="independent" if cls is WrongInputs else "sequential")
    with pytest.raises(UserError, match=f"generator={name}: ") as e:
        compress(calibrated("resnet8_tiny"), CompressorConfig("quant", wbits=3, abits=8), NORM, (1, 28, 28),
                 generator=generator_config(name, num_images=16, wrong=wrong), layerwise=lw)  # fmt: skip
    assert expected in str(e.value) and "\n" not in str(e.value)
