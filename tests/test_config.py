"""The config tree: every option of every group composes, type-checks and instantiates; bad values fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lwcompress.cli import CONF_DIR, load_config
from lwcompress.compress import COMPRESSORS
from lwcompress.data import DATA
from lwcompress.errors import UserError
from lwcompress.jobs import make_trainer
from lwcompress.loggers import build_loggers
from lwcompress.models import MODELS, ModelConfig, build_model
from lwcompress.precondition import preconditioner

from .conftest import run_cli

GROUPS = ["paths", "model", "data", "preconditioner", "generator", "compressor", "layerwise", "trainer", "logger",
          "debug", "experiment"]  # fmt: skip


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


# Options that need values only a user can give (a model path, a data folder) get them here.
EXTRA = {
    ("model", "custom"): ["model.target=torch.nn.Identity", "model.weights=/x.pt"],
    ("generator", "custom"): [
        "generator.target=lwcompress.generate.generators.Propagated",
        "+generator.params.smoothing=0.5",
    ],  # fmt: skip
    ("preconditioner", "custom"): [
        "preconditioner.target=lwcompress.precondition.DFQ",
        "+preconditioner.params.cle=true",
    ],  # fmt: skip
    ("generator", "none"): ["compressor=rtn"],  # no layer-wise data is only valid for a closed-form compressor
    # Samples drawn without a forward pass cannot feed the default sequential runs.
    ("generator", "bn_gaussian"): ["layerwise.mode=independent"],
    ("generator", "gaussian"): ["layerwise.mode=independent"],
    ("generator", "hybrid"): ["layerwise.mode=independent"],  # two domains mixed: no single network to run in
}


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(group: str, option: str, tmp_path: Path) -> None:
    job = load_config([f"{group}={option}", *EXTRA.get((group, option), [])])
    assert getattr(job, group, None) is not None or group in ("debug", "experiment")
    if group == "model" and option != "custom":
        rgb = job.model.name in ("resnet18", "resnet50", "mobilenet_v2")
        if option.endswith("_fmnist"):  # torchvision classes trained here: they set the data's shape to theirs
            assert (job.data.image_size, job.data.channels) == (64, 3)
        model, _ = build_model(ModelConfig(name=job.model.name), 10, 3 if rgb else 1)
        assert model(torch.zeros(2, 3 if rgb else 1, 64 if rgb else 28, 64 if rgb else 28)).shape == (2, 10)
    elif group == "data":
        assert DATA.get(job.data.name)(job.data).cfg is job.data
    elif group == "preconditioner":
        # Every preset's before-quantization part is function-preserving on a ReLU network.
        tiny = MODELS.get("resnet8_tiny")(10, 1).eval()
        x = torch.randn(2, 1, 28, 28)
        pre = preconditioner(job.preconditioner)
        out = pre.fold(pre.equalize(tiny, x[:1]))
        assert torch.allclose(out(x), tiny(x), atol=1e-4)
    elif group == "compressor":
        assert callable(COMPRESSORS.get(job.compressor.name))
    elif group == "trainer" and option == "cpu":
        assert make_trainer(job.trainer, []).accelerator is not None
    elif group == "logger" and option != "wandb":  # the W&B run is tested end to end in test_cli
        loggers = build_loggers(job.logger, tmp_path, "t", {"a": 1})
        assert len(loggers) == (0 if option == "none" else 1)


def test_defaults_are_the_embedded_default() -> None:
    job = load_config()
    assert (job.model.name, job.data.name, job.compressor.name, job.generator.name, job.preconditioner.name) == (
        "resnet20", "fashion_mnist", "quant", "distilled", "bn_fold")  # fmt: skip
    assert (job.layerwise.mode, job.layerwise.unit, job.compressor.learn_input_scale) == ("sequential", "block", True)
    assert job.model.weights.endswith("checkpoints/fashion_mnist/resnet20.pt")


def test_python_defaults_are_the_cli_defaults() -> None:
    """One default: the config dataclasses a notebook builds equal what `lwcompress` composes with no arguments."""
    from dataclasses import asdict

    from lwcompress.compress import CompressorConfig
    from lwcompress.generate import DistilledConfig
    from lwcompress.layerwise import LayerwiseConfig
    from lwcompress.precondition import DFQConfig

    job = load_config()
    for key, cls in [("compressor", CompressorConfig), ("generator", DistilledConfig), ("layerwise", LayerwiseConfig),
                     ("preconditioner", DFQConfig)]:  # fmt: skip
        assert asdict(cls()) == asdict(getattr(job, key)), key


def test_pretrain_config_starts_from_random_weights() -> None:
    job = load_config(["model=mobilenetv2_small"], "pretrain")
    assert job.model.weights is None and job.model.name == "mobilenetv2_small"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("compressor.wbits=0", "compressor.wbits=0: must be a number in 2..8"),
        ("compressor.wbits=abc", "compressor.wbits=abc: Value 'abc'"),
        ("compressor.scale=median", "compressor.scale=median: unknown weight grid 'median'; choose one of: minmax"),
        ("model=nope", "Could not find 'model/nope'; available: custom, mobilenet_v2"),
        ("trainer.accelerator=tpu9", "trainer.accelerator='tpu9': must be one of"),
        ("compressor.wbit=4", "compressor.wbit"),
        ("generator=none", "compressor=quant trains on layer-wise data: choose a generator"),
        ("generator=bn_gaussian", "needs generator=distilled, genie, pink_noise, propagated, real, not bn_gaussian"),
        ("generator=hybrid", "needs generator=distilled, genie, pink_noise, propagated, real, not hybrid"),
        ("compressor=prune generator=none", "compressor=prune trains on layer-wise data"),
        ("compressor.pattern=2:4", "compressor.pattern=2:4 fixes the sparsity at 0.5"),
        (
            "compressor.act_range=calibrated generator=bn_gaussian layerwise.mode=independent",
            "compressor.act_range=calibrated measures activation ranges on a generator's images",
        ),
        (
            "generator=hybrid layerwise.mode=independent generator.partner=gaussian",
            "generator.partner='gaussian': must be one of bn_gaussian, propagated",
        ),
        ("generator=propagated generator.steps=3", "Could not override 'generator.steps'"),  # distilled's, not its
        ("model=custom", "model.target is required with model=custom"),
        ("model=custom model.target=torch.nn.Identity", "model=custom needs model.weights"),
    ],
)
def test_bad_values_fail_at_compose_with_one_line(override: str, expected: str) -> None:
    with pytest.raises(UserError) as e:
        load_config(override.split())
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "argv",
    [["compressor.wbits=0"], ["compressor.wbits=abc"], ["model=nope"], ["-m", "compressor.wbits=8,1"]],
)
def test_cli_rejects_bad_values_with_one_line_and_nonzero_exit(argv: list[str], tmp_path: Path) -> None:
    proc = run_cli("lwcompress", *argv, f"hydra.run.dir={tmp_path}", f"hydra.sweep.dir={tmp_path}", check=False)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    key = argv[-1].split("=")[0]
    assert key in lines[0] and ("2..8" in lines[0] or "available: " in lines[0])


def test_help_lists_groups_and_cfg_prints_config() -> None:
    help_text = run_cli("lwcompress", "--help").stdout
    for group in GROUPS:
        assert f"{group}:" in help_text
    job_cfg = run_cli("lwcompress", "--cfg", "job", "compressor.wbits=4").stdout
    assert "wbits: 4" in job_cfg and "name: resnet20" in job_cfg


def test_experiment_overrides_top_level_values() -> None:
    job = load_config(["experiment=rtn_act_range"])
    assert job.task_name == "rtn_act_range" and job.eval_split == "val" and not job.save_model


@pytest.mark.parametrize("option", [f"cell={c}" for c in options("benchmark/cell")]
                         + [f"method={m}" for m in options("benchmark/method")])  # fmt: skip
def test_round2_benchmark_pieces_compose_and_label_the_run(option: str) -> None:
    """Each benchmark cell and method composes on top of experiment=round2 (checked configs) and names itself."""
    kind, name = option.split("=")
    job = load_config(["experiment=round2", f"+benchmark/{option}"])
    assert job.task_name == "round2" and job.labels[kind]
    if name == "w4a4_all":
        first, last = job.compressor.setting_for("conv1", True, False), job.compressor.setting_for("fc", False, True)
        assert (first.wbits, first.abits, last.wbits, last.abits) == (4, 8, 4, 4)
    if name == "zeroq":
        assert job.compressor.act_range == "calibrated" and job.generator.name == "distilled"
    if name == "gptq":
        assert job.compressor.rounding == "gptq" and job.compressor.learned
