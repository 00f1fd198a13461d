"""Lightning loggers from the `logger` config: CSV always, W&B on request (offline without credentials)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger

from lwcompress.schema import LoggerConfig


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def build_loggers(cfg: LoggerConfig, out_dir: Path, name: str, config: dict[str, Any]) -> list[Logger]:
    """Loggers writing under `out_dir`; `config` (the resolved job config) is recorded as hyperparameters."""
    if cfg.name == "none":
        return []
    loggers: list[Logger] = [CSVLogger(str(out_dir), name="csv", version="")]
    if cfg.name == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        offline = cfg.offline if cfg.offline is not None else not wandb_has_credentials()
        loggers.append(
            WandbLogger(
                name=name,
                project=cfg.project,
                entity=cfg.entity,
                group=cfg.group,
                tags=list(cfg.tags),
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


def finish(loggers: list[Logger]) -> None:
    """Flush and close; under multirun all jobs share one process, so W&B must be finished per job."""
    for lg in loggers:
        lg.finalize("success")
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()
