"""Structured-config schemas for every config group, registered in Hydra's ConfigStore.

The core dataclasses (ModelConfig, DataConfig, CompressorConfig, ...) live next to the code that uses them and know
nothing of Hydra; this module only assembles them into the job configs and turns a composed DictConfig back
into checked dataclass objects (`to_objects`), so a bad value fails before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from lwcompress.compress.config import CompressorConfig
from lwcompress.data import DataConfig
from lwcompress.errors import UserError
from lwcompress.fields import bounded, check, choice
from lwcompress.generate import GENERATORS, GeneratorConfig, able, check_sequential
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.rounding import ROUNDINGS
from lwcompress.models import ModelConfig
from lwcompress.precondition import PRECONDITIONERS, PreconditionerConfig
from lwcompress.pretrain import PretrainConfig
from lwcompress.registry import Registry


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    checkpoint_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class TrainerConfig:
    """Lightning settings shared by evaluation, the layer runs and pretraining.

    A compression job runs as `devices` x `num_nodes` processes, one per device (GPU, or a CPU process over gloo);
    `precision` applies to the layer runs and evaluation (e.g. bf16-mixed on GPUs). `enable_progress_bar`: the
    bars of the layer phase and the evaluations; null (auto) shows them on a terminal outside multirun.
    """

    accelerator: str = choice("cpu", "cpu", "gpu", "cuda", "mps", "auto")
    devices: int = bounded(1, 1)
    num_nodes: int = bounded(1, 1)
    precision: str = choice("32-true", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "64-true")
    max_epochs: int = bounded(6, 1)
    limit_train_batches: float = bounded(1.0, 0.0)
    limit_val_batches: float = bounded(1.0, 0.0)
    limit_test_batches: float = bounded(1.0, 0.0)
    enable_progress_bar: bool | None = None
    deterministic: bool = False

    def __post_init__(self) -> None:
        check(self)


@dataclass
class LoggerConfig:
    """csv: metrics.csv in the run dir. wandb: csv plus a W&B run (offline when no credentials are set), in
    `group`, tagged with `tags`, named `run_name`: null names it by what tells it apart, under a multirun the keys
    the sweep varies with this job's values (`rounding=offset_round seed=1`: a chart's legend names only what
    differs; group the runs by one of those config keys for one colour per method), else by the model, compressor,
    setting, generator, labels and seed."""

    name: str = choice("csv", "csv", "wandb", "none")
    run_name: str | None = None
    project: str = "lwcompress"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    offline: bool | None = None

    def __post_init__(self) -> None:
        check(self)


def _plugin_settings(group: str, registry: Registry, target: str, values: dict[str, Any]) -> Any:
    """`<group>=custom`: the config of the class at import path `target`, `values` over its defaults (a bad value is
    a UserError naming its key, `<group>.params.KEY=...`)."""
    try:
        return registry.settings(target, **values)
    except UserError as e:
        message = str(e)
        raise UserError(message if message.startswith(group) else f"{group}.params.{message}") from None


@dataclass
class CustomGenerator(GeneratorConfig):
    """generator=custom: a Generator class from outside the package by its import path (`target`), with its own
    settings in `params` (checked against its config class when the job is built)."""

    name: str = "custom"
    target: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> GeneratorConfig:
        """The target class's own config: these shared settings and `params` over its defaults."""
        shared = {"num_images": self.num_images, "chunk": self.chunk, "seed": self.seed}
        return _plugin_settings("generator", GENERATORS, self.target, {**shared, **self.params})


@dataclass
class CustomPreconditioner(PreconditionerConfig):
    """preconditioner=custom: a Preconditioner class from outside the package by its import path (`target`), with
    its own settings in `params` (checked against its config class when the job is built)."""

    name: str = "custom"
    target: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> PreconditionerConfig:
        """The target class's own config: `params` over its defaults."""
        return _plugin_settings("preconditioner", PRECONDITIONERS, self.target, dict(self.params))


@dataclass
class CompressJob:
    """The main job (`lwcompress`)."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preconditioner: PreconditionerConfig = field(default_factory=PreconditionerConfig)  # options: subclasses
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)  # conf/generator options: subclasses
    compressor: CompressorConfig = field(default_factory=CompressorConfig)
    layerwise: LayerwiseConfig = field(default_factory=LayerwiseConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    task_name: str = "compress"
    seed: int = 0
    threads: int = bounded(0, 0)  # torch intra-op threads; 0 = one per available core
    eval_split: str = choice("test", "test", "val")
    eval_fp: bool = True
    # Reuse across runs, under paths.data_dir/cache: the FP top-1 per (weights, data, split), distilled images per
    # (weights, generator settings).
    cache: bool = True
    eval_rtn: bool = True  # with a learned compressor, also evaluate its round-to-nearest start
    real_diagnostics: bool = True  # per-layer errors on real activations (diagnostic; never trained on)
    save_model: bool = True
    # Free-form names of the run for reports and dashboards (benchmark cell, method, ...): `lwcompress-report
    # --by labels.method` groups by them, and W&B tags the run with each value.
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self)
        if isinstance(self.generator, CustomGenerator):
            self.generator = self.generator.resolved()
        if isinstance(self.preconditioner, CustomPreconditioner):
            self.preconditioner = self.preconditioner.resolved()
        if self.compressor.rounding != "auto":
            try:
                ROUNDINGS.get(self.compressor.rounding)
            except UserError as e:
                raise UserError(f"compressor.rounding={self.compressor.rounding}: {e}") from None
        if self.model.name == "custom" and not self.model.weights:
            raise UserError("model=custom needs model.weights: the checkpoint to compress (without it the model would "
                            "be compressed with random weights)")  # fmt: skip
        learned = isinstance(self.compressor, CompressorConfig) and self.compressor.learned
        if learned and self.generator.name == "none":
            raise UserError(f"compressor={self.compressor.name} trains on layer-wise data: choose a generator "
                            f"({', '.join(GENERATORS.names())})")  # fmt: skip
        if learned and self.layerwise.mode == "sequential":
            check_sequential(self.generator.name)
        if self.compressor.act_range == "calibrated" and not (
            self.generator.name in GENERATORS and GENERATORS.get(self.generator.name).makes_images
        ):
            raise UserError(
                f"compressor.act_range=calibrated measures activation ranges on a generator's images: choose "
                f"generator={', '.join(able('makes_images'))}, not {self.generator.name}"
            )


@dataclass
class PretrainJob:
    """The reference-model training job (`lwcompress-pretrain`)."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    task_name: str = "pretrain"
    seed: int = 0
    threads: int = bounded(0, 0)
    publish: bool = False  # also install the checkpoint under paths.checkpoint_dir and update the manifest
    # float16 halves the file (torchvision resnet18: 45 -> 22 MB); the weights are rounded before the evaluation,
    # so the recorded top-1 is that of the weights shipped
    weights_dtype: str = choice("float32", "float32", "float16")

    def __post_init__(self) -> None:
        check(self)


def register() -> None:
    """Put the job schemas in the ConfigStore; config.yaml / pretrain.yaml extend them."""
    cs = ConfigStore.instance()
    cs.store(name="compress_schema", node=CompressJob)
    for group, registry, custom in (("generator", GENERATORS, CustomGenerator),
                                    ("preconditioner", PRECONDITIONERS, CustomPreconditioner)):  # fmt: skip
        for name in registry.names():  # each option's own fields: conf/<group>/<name>.yaml extends its schema
            cs.store(group=f"schema/{group}", name=name, node=registry.get(name).config(name=name))
        cs.store(group=f"schema/{group}", name="custom", node=custom)
        for name in registry.plugins():  # installed plug-ins (entry points): `<group>=<name>` with no YAML
            node = OmegaConf.structured(registry.get(name).config(name=name))
            if "seed" in node:
                node.seed = "${seed}"
            cs.store(group=group, name=name, node=node)
    cs.store(name="pretrain_schema", node=PretrainJob)


def to_objects(cfg: DictConfig, schema: type) -> Any:
    """Resolve a composed config into checked dataclasses; a bad value becomes a one-line UserError
    that names the full key (`compressor.wbits=0: must be in 2..8`)."""
    for f in fields(schema):
        node = cfg.get(f.name)
        if isinstance(node, DictConfig):
            try:
                OmegaConf.to_object(node)
            except UserError as e:
                raise UserError(f"{f.name}.{e}") from None
            except Exception as e:
                raise UserError(f"{f.name}: {str(e).strip().splitlines()[0]}") from None
    try:
        return OmegaConf.to_object(cfg)
    except UserError:
        raise
    except Exception as e:
        raise UserError(str(e).strip().splitlines()[0]) from None
