"""Lightning loggers from the `logger` config: CSV always, W&B on request (offline without credentials)."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger

from lwcompress import io
from lwcompress.schema import LoggerConfig


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class ContinuedCSVLogger(CSVLogger):
    """A CSVLogger that keeps the rows of the metrics.csv already in its dir and appends to them: a resumed training
    logs only the epochs after its checkpoint, and Lightning's writer deletes the file when it starts."""

    @property
    def experiment(self) -> Any:
        path = Path(self.log_dir) / "metrics.csv"
        kept = path.read_text() if self._experiment is None and path.is_file() else ""
        writer = super().experiment
        if kept and hasattr(writer, "metrics_keys"):  # rank 0's writer (other ranks get a dummy)
            io.write_text(path, kept)
            writer.metrics_keys = next(csv.reader([kept.splitlines()[0]]))
        return writer


def build_loggers(
    cfg: LoggerConfig, out_dir: Path, name: str, config: dict[str, Any], tags: Sequence[str] = (),
    continued: bool = False,
) -> list[Logger]:  # fmt: skip
    """Loggers writing under `out_dir`; `config` (the resolved job config) is recorded as hyperparameters. A W&B
    run is named `name`, grouped by `logger.group` (the sweep: the experiment's task name) and tagged with `tags`
    besides `logger.tags`, so that a dashboard can filter and group the runs of a sweep. `continued`: the job
    resumes a training whose earlier epochs are logged already, so metrics.csv keeps them."""
    if cfg.name == "none":
        return []
    # A rerun into a run dir (only with the same configuration: lwcompress.rundir) logs every metric again, so the
    # old metrics.csv is meant to go; Lightning's warning about it would only alarm.
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
    loggers: list[Logger] = [(ContinuedCSVLogger if continued else CSVLogger)(str(out_dir), name="csv", version="")]
    if cfg.name == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        offline = cfg.offline if cfg.offline is not None else not wandb_has_credentials()
        loggers.append(
            WandbLogger(
                name=name,
                project=cfg.project,
                entity=cfg.entity,
                group=cfg.group,
                tags=[*cfg.tags, *tags],
                save_dir=str(out_dir),
                offline=offline,
                config=config,
                # Every multirun job gets its own run; never append to the previous job's.
                reinit="finish_previous",
            )
        )
    for lg in loggers[:1]:
        lg.log_hyperparams(config)
    return loggers


LAYER_COLUMNS = ("name", "kind", "shape", "wbits", "abits", "sparsity", "rtn_error", "error", "real_rtn_error",
                 "real_error", "reverted", "wall_s", "rank")  # fmt: skip


def log_results(loggers: list[Logger], summary: dict[str, Any], rows: list[dict[str, Any]], results: list) -> None:
    """The run's numbers (top-1 of FP / closed form / compressed, wall times, sizes) to every logger; on W&B also
    the run summary, a per-layer table with its error chart, and every layer run's loss curve (a table and a line
    chart with one line per layer: each layer has its own steps)."""
    scalars = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for lg in loggers:
        lg.log_metrics(scalars)
    run = next((lg.experiment for lg in loggers if type(lg).__name__ == "WandbLogger"), None)
    if run is None:
        return
    import wandb

    run.summary.update(scalars)
    layers = wandb.Table(columns=list(LAYER_COLUMNS), data=[[row.get(c) for c in LAYER_COLUMNS] for row in rows])
    logged: dict[str, Any] = {"layers/table": layers}
    if results:
        errors = {"closed form (synthetic)": [r.rtn_error for r in results], "layer-wise (synthetic)":
                  [r.error for r in results]}  # fmt: skip
        if all(r.real_error is not None for r in results):
            errors.update({"closed form (real)": [r.real_rtn_error for r in results],
                           "layer-wise (real)": [r.real_error for r in results]})  # fmt: skip
        logged["layers/error"] = wandb.plot.line_series(
            xs=list(range(len(results))), ys=list(errors.values()), keys=list(errors), xname="layer (model order)",
            title="relative output error per layer",
        )  # fmt: skip
        points = [[r.name, step, loss] for r in results for step, loss in enumerate(r.losses)]
        curves = wandb.Table(columns=["layer", "step", "loss"], data=points)
        logged["layers/loss_curves"] = curves
        logged["layers/loss"] = wandb.plot.line(curves, "step", "loss", stroke="layer", title="layer run losses")
    run.log(logged)


def finish(loggers: list[Logger]) -> None:
    """Flush and close; under multirun all jobs share one process, so W&B must be finished per job."""
    for lg in loggers:
        lg.finalize("success")
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()
