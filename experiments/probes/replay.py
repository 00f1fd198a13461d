"""The Hydra overrides that rerun a finished benchmark job as it ran: its sweep's task overrides, plus every setting
whose default changed since (a field's "before", `lwcompress.fields.changed_default`) that the job's saved config
lacks, at its earlier value. Without them a rerun of an older job composes today's defaults and its layer store
refuses it as another configuration (store_swap.py, save_run.sh).

    python experiments/probes/replay.py JOB_DIR      (one override per line)
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from omegaconf import OmegaConf

from lwcompress.fields import defaults
from lwcompress.generate import generator_config


def task_overrides(job: Path) -> list[str]:
    """`job`'s sweep overrides and the changed defaults it ran before (see the module docstring)."""
    task = list(OmegaConf.load(job.parent / "multirun.yaml").hydra.overrides.task)
    ran = OmegaConf.load(job / ".hydra" / "config.yaml").generator
    today = generator_config(ran.name)
    before = defaults(type(today))
    for f in dataclasses.fields(today):
        if f.name not in ran and before[f.name] != getattr(today, f.name):
            value = before[f.name]
            task.append(f"generator.{f.name}={str(value).lower() if isinstance(value, bool) else value}")
    return task


if __name__ == "__main__":
    print("\n".join(task_overrides(Path(sys.argv[1]))))
