"""Console entry points. Thin: compose the config (Hydra), check it, hand the dataclasses to `jobs`.

Before Hydra runs, every value the command line sets (each value of a multirun sweep included) is composed
and checked once, so a typo fails in a second with one line instead of a traceback halfway into a sweep.
"""

from __future__ import annotations

import importlib.resources
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

# Lightning warns about a torch pytree deprecation on import; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

from lwcompress import schema  # noqa: E402
from lwcompress.compress.grids import WEIGHT_GRIDS  # noqa: E402
from lwcompress.errors import UserError  # noqa: E402
from lwcompress.fields import allowed_for  # noqa: E402
from lwcompress.layerwise.rounding import ROUNDINGS  # noqa: E402
from lwcompress.rundir import check_run_dir  # noqa: E402

CONF_DIR = str(importlib.resources.files("lwcompress.conf"))  # the top-level conf/, installed as lwcompress.conf
PACKAGE_DIR = str(Path(__file__).parent)

OmegaConf.register_new_resolver("lwc.package_dir", lambda: PACKAGE_DIR, replace=True)
# `lwcompress --help` lists the roundings and weight grids (built-in and installed plug-ins), fields, not groups.
OmegaConf.register_new_resolver("lwc.roundings", lambda: ", ".join(["auto", *ROUNDINGS.names()]), replace=True)
OmegaConf.register_new_resolver("lwc.weight_grids", lambda: ", ".join(WEIGHT_GRIDS.names()), replace=True)
# GPUs a SLURM/submitit job asks for per node: one per rank with trainer=gpu, none on CPU.
OmegaConf.register_new_resolver(
    "lwc.gpus", lambda accelerator, devices: devices if accelerator in ("gpu", "cuda") else None, replace=True
)
schema.register()

# Hydra flags that take a value: their value is not an override.
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--info",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def _overrides(argv: list[str]) -> list[str]:
    """The overrides of a command line; a user config dir (`--config-dir` / `-cd`) becomes the `hydra.searchpath`
    entry Hydra itself makes of it, so that the preflight composes the user's own options too."""
    out, dirs, flag = [], [], None
    for arg in argv:
        if flag is not None:
            if flag in ("--config-dir", "-cd"):
                dirs.append(arg)
            flag = None
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        elif arg.startswith("-"):
            flag = arg if arg in _FLAGS_WITH_VALUE else None
        else:
            out.append(arg)
    if dirs and not any(o.lstrip("+~").startswith("hydra.searchpath=") for o in out):
        out.append(f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in dirs)}]")
    return out


def _one_line(e: BaseException) -> str:
    """Hydra/OmegaConf errors span several lines; keep the ones that name the problem and the options."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if "Available options" in str(e) or "Could not find" in str(e):
        head = lines[0].replace("In 'config': ", "").replace("In 'pretrain': ", "")
        idx = next((i for i, ln in enumerate(lines) if ln.startswith("Available options")), None)
        options = [ln for ln in lines[idx + 1 :] if " " not in ln and not ln.endswith(":")] if idx is not None else []
        return f"{head}; available: {', '.join(options)}" if options else head
    keep = [ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type", "msg"))]
    return "; ".join(keep[:2])


def _compose_error(e: BaseException, job_schema: type) -> str:
    """One line for a failed compose: the override, why, and what is allowed."""
    message = _one_line(e)
    if message.startswith("Error merging override ") and e.__cause__ is not None:
        override = message.removeprefix("Error merging override ")
        allowed = allowed_for(job_schema, override.split("=", 1)[0])
        why = str(e.__cause__).strip().splitlines()[0]
        message = f"{override}: {why}" + (f"; must be {allowed}" if allowed else "")
    return message


def _variants(overrides: list[str]) -> list[list[str]]:
    """Override lists that together use every value of every sweep once (not the full product)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    base, sweeps = [], []
    for o in parsed:
        if o.is_sweep_override():
            values = list(o.sweep_string_iterator())
            key = o.get_key_element()
            base.append(f"{key}={values[0]}")
            sweeps.append([f"{key}={v}" for v in values[1:]])
        else:
            base.append(o.input_line)
    variants = [base]
    for extra in sweeps:
        for item in extra:
            key = item.split("=", 1)[0]
            variants.append([item if b.split("=", 1)[0] == key else b for b in base])
    return variants


JOB_SCHEMAS: dict[str, type] = {"config": schema.CompressJob, "pretrain": schema.PretrainJob}


def _composed(overrides: Sequence[str], config_name: str) -> DictConfig:
    """The config as Hydra would compose it for a job, hydra node included; call inside `_hydra_context`."""
    try:
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except Exception as e:
        raise UserError(_compose_error(e, JOB_SCHEMAS[config_name])) from None
    HydraConfig.instance().set_config(cfg)  # so that ${hydra:...} interpolations resolve
    return cfg


@contextmanager
def _hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().clear()


def load_config(overrides: Sequence[str] = (), config_name: str = "config", output_dir: str = ".") -> Any:
    """Compose a job config exactly as the CLI would and return its checked dataclasses.

    For notebooks and tests: `load_config(["compressor.wbits=4"])` -> CompressJob. Raises UserError (one line).
    """
    with _hydra_context():
        cfg = _composed(overrides, config_name)
        with open_dict(cfg):
            del cfg["hydra"]
            cfg.paths.output_dir = output_dir  # only known once Hydra starts a job
        return schema.to_objects(cfg, JOB_SCHEMAS[config_name])


def preflight(config_name: str, argv: list[str]) -> None:
    """Compose and check every config a command line asks for (each sweep value once), and refuse run dirs that
    hold a run of another configuration; UserError if bad. Nothing is written."""
    overrides = _overrides(argv)
    try:
        variants = _variants(overrides)
    except Exception as e:
        raise UserError(_one_line(e)) from None
    for variant in variants:
        job = load_config(variant, config_name)
        if config_name == "config" and job.compressor.rules:
            from lwcompress.layer_rules import check_layer_rules  # builds the model: only when there are rules

            check_layer_rules(job)
    with _hydra_context():
        if any(a in ("-m", "--multirun") for a in argv):
            _check_sweep_dirs(overrides, variants[0], config_name)
        else:
            cfg = _composed(overrides, config_name)
            check_run_dir(str(cfg.hydra.run.dir), cfg, config_name)


def _check_sweep_dirs(overrides: list[str], first: list[str], config_name: str) -> None:
    """Each job of a sweep into an existing sweep dir against the run its job dir holds, in the sweeper's order
    (hydra.sweeper.params first, then the command line; the product as Hydra's basic sweeper forms it). `first`:
    the sweep's first job's overrides, which name the sweep dir and the sweeper's params."""
    cfg = _composed(first, config_name)
    if not Path(str(cfg.hydra.sweep.dir)).is_dir():
        return
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides([*params, *overrides]), None)
    for num, job in enumerate(jobs):
        cfg = _composed([*job, f"hydra.job.num={num}"], config_name)
        check_run_dir(Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir), cfg, config_name)


def swept_keys(sweeper: DictConfig, overrides: list[str]) -> list[str]:
    """The config keys a multirun varies: its sweeper's `params` and the sweep overrides (`a=1,2`) among
    `overrides`."""
    params = list((sweeper.get("params") or {}).keys())
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        parsed = []
    return [*params, *(o.get_key_element() for o in parsed if o.is_sweep_override())]


def sweep_run_name(hc: Any) -> str | None:
    """A multirun job's name on dashboards: each key the sweep varies with this job's value (None if none)."""
    from lwcompress.sweep_report import key_label

    command_line = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]  # the overrides, with commas
    swept = {k.lstrip("+~") for k in swept_keys(hc.sweeper, command_line)}
    values = {}
    for item in hc.overrides.task:
        key, _, value = item.partition("=")
        if key.lstrip("+~") in swept:
            values[key.lstrip("+~")] = value
    return " ".join(f"{key_label(k)}={v}" for k, v in values.items()) or None


class SweepTable(Callback):
    """Hydra callback (conf/config.yaml): a finished multirun prints its runs side by side, the table
    `lwcompress-report SWEEP_DIR` writes, its methods told apart by the keys the sweep varied."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lwcompress.sweep_report import sweep_table

        swept = swept_keys(config.hydra.sweeper, list(config.hydra.overrides.task))
        sweep_dir = str(config.hydra.sweep.dir)
        text = sweep_table(sweep_dir, swept)
        if text is not None:
            print(f"\nsweep {sweep_dir} (plots: lwcompress-report {sweep_dir})\n{text}", end="")


def _entry(config_name: str, job_schema: type, task: Callable[[object, Path, str], object]) -> Callable[[], None]:
    @hydra.main(version_base="1.3", config_path="pkg://lwcompress.conf", config_name=config_name)
    def run(cfg: DictConfig) -> None:
        try:
            job = schema.to_objects(cfg, job_schema)
            hc = HydraConfig.get()
            if hc.mode == RunMode.MULTIRUN and job.trainer.enable_progress_bar is None:
                job.trainer.enable_progress_bar = False  # auto: a sweep's jobs share one console; quiet
            if hc.mode == RunMode.MULTIRUN and job.logger.run_name is None:
                job.logger.run_name = sweep_run_name(hc)
            command = " ".join([Path(sys.argv[0]).name, *hc.overrides.task])
            task(job, Path(hc.runtime.output_dir), command)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    def main() -> None:
        argv = sys.argv[1:]
        if not any(a in ("--help", "-h", "--hydra-help", "--version", "--info", "-i") for a in argv):
            try:
                preflight(config_name, argv)
            except UserError as e:
                print(f"error: {e}", file=sys.stderr)
                raise SystemExit(2) from None
        run()

    return main


def main() -> None:
    """`lwcompress`: the main job."""
    from lwcompress.jobs import run_compress

    _entry("config", schema.CompressJob, run_compress)()


def pretrain_main() -> None:
    """`lwcompress-pretrain`: train a full-precision reference model."""
    from lwcompress.jobs import run_pretrain

    _entry("pretrain", schema.PretrainJob, run_pretrain)()
