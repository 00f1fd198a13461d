"""The processes of one compression job, and the one place that decides which process does what.

A job runs as `devices x num_nodes` processes (ranks). Who they are comes from the launcher through Lightning
Fabric's cluster environments: SLURM tasks (srun, submitit) and torchrun create the processes themselves; otherwise
(`trainer.devices=N` in a job of one task) Fabric spawns them. So the same code runs on a laptop and on a multi-node
allocation. Ranks meet only through files in the run directory (each unit of work writes its own, atomically) and
a barrier: a rank runs its share of the units (`Ranks.run_shared`), waits for the others, then reads what it needs.
That is also how a restarted job resumes: a unit whose file exists is not run again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from lightning_fabric import Fabric
from lightning_fabric.plugins.environments import LightningEnvironment, SLURMEnvironment, TorchElasticEnvironment
from lightning_fabric.strategies import DDPStrategy
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lwcompress.errors import UserError

# A rank that finished its share waits at the barrier for the slowest one: with a sequential run cut into fewer
# segments than ranks, for a whole run. (A rank that dies is noticed by the launcher, not by this timeout.)
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass
class Ranks:
    """This process's place in the job. The default is a job of one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    fabric: Fabric | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 assembles the model, evaluates it and writes the outputs; the others only write their units."""
        return self.rank == 0

    def share(self, costs: Sequence[float]) -> list[int]:
        """Indices of the units this rank runs: cost-balanced, the same answer on every rank (no communication)."""
        return assign(costs, self.world_size, self.rank)

    def barrier(self, name: str) -> None:
        if self.fabric is not None and self.world_size > 1:
            self.fabric.barrier(name)

    def run_shared(self, costs: Sequence[float], run: Callable[[int], None], name: str) -> None:
        """`run(i)` for this rank's share of the units (each persists its own result), then wait for every rank."""
        for i in self.share(costs):
            run(i)
        self.barrier(name)


def assign(costs: Sequence[float], world_size: int, rank: int) -> list[int]:
    """Indices of the units rank `rank` of `world_size` runs: greedy longest-first balancing of total cost.

    Every rank computes the same assignment from the same costs, so no communication is needed.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    loads = [0.0] * world_size
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        owner[i] = r
        loads[r] += costs[i]
    return [i for i in range(len(costs)) if owner[i] == rank]


def external_launcher() -> tuple[str, int] | None:
    """(name, number of processes) of the launcher that started this job's processes: SLURM tasks (srun, submitit)
    or torchrun; None for a job of one task, which spawns its ranks itself."""
    if SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return "SLURM", int(os.environ["SLURM_NTASKS"])
    if TorchElasticEnvironment.detect() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "torchrun", int(os.environ["WORLD_SIZE"])
    return None


def launch(fn: Callable[..., Any], *args: Any, accelerator: str = "cpu", devices: int = 1, num_nodes: int = 1) -> Any:
    """Run `fn(ranks, *args)` on every process of the job and return rank 0's value.

    One process: `fn` runs here. Processes created by a cluster launcher: each joins the process group (gloo on
    CPU, nccl on CUDA) and runs `fn`. Otherwise `devices` processes are spawned here (never a re-run of the command
    line, which under a Hydra multirun would re-run the sweep).
    """
    quiet_srun_hint()
    check_devices(accelerator, devices if external_launcher() is None else 1)
    external = external_launcher()
    if external is not None and external[1] != devices * num_nodes:
        raise UserError(f"{external[0]} started {external[1]} processes for trainer.devices={devices} x "
                        f"trainer.num_nodes={num_nodes}: one process per device (e.g. SLURM --ntasks-per-node = "
                        "trainer.devices, --nodes = trainer.num_nodes; hydra/launcher=slurm sets both)")  # fmt: skip
    if external is None and devices * num_nodes == 1:
        return _terminable(fn, Ranks(), *args)
    if external is None and num_nodes > 1:
        raise UserError(f"trainer.num_nodes={num_nodes}: a job over several nodes needs a launcher that starts its "
                        "processes there (SLURM: hydra/launcher=slurm, or torchrun)")  # fmt: skip
    # Spawned ranks take their identity from the spawn, not from a SLURM job they may run inside.
    plugins = [] if external is not None else [LightningEnvironment()]
    strategy = DDPStrategy(start_method="popen" if external is not None else "spawn", timeout=BARRIER_TIMEOUT)
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, plugins=plugins)
    return fabric.launch(_as_rank, external is None, fn, *args)


def _as_rank(fabric: Fabric, spawned: bool, fn: Callable[..., Any], *args: Any) -> Any:
    if spawned:
        _die_with_parent()
    quiet_srun_hint()
    return _terminable(fn, Ranks(fabric.global_rank, fabric.world_size, fabric.local_rank, fabric), *args)


def check_devices(accelerator: str, devices: int) -> None:
    """One line, before any work, when this machine lacks the asked-for accelerator or its count of devices
    (`devices`: those this process must see; 1 when a launcher started one process per device)."""
    if accelerator in ("gpu", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "built without CUDA" if torch.version.cuda is None else "no CUDA device found"
            raise UserError(f"trainer.accelerator={accelerator}: no CUDA device on this machine (torch "
                            f"{torch.__version__}, {build}); use trainer=cpu, or run where there is a GPU "
                            "(e.g. hydra/launcher=slurm with a GPU partition)")  # fmt: skip
        if devices > count:
            raise UserError(f"trainer.devices={devices}: this machine has {count} CUDA device(s)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("trainer.accelerator=mps: MPS is not available on this machine; use trainer=cpu")


def quiet_srun_hint() -> None:
    """Lightning suggests `srun` whenever it exists, even to a job that spawns its own processes on purpose and to
    the single-device Trainers of its layer runs."""
    warnings.filterwarnings("ignore", message=r".*`srun` command is available on your system.*")


def _terminable(fn: Callable[..., Any], *args: Any) -> Any:
    """A SIGTERM inside a Lightning Trainer ends it with SystemExit(None), i.e. exit status 0: a killed job would
    look like a success to its scheduler. Exit 143 (128 + SIGTERM) as an unhandled SIGTERM does."""
    try:
        return fn(*args)
    except SIGTERMException:
        raise SystemExit(128 + signal.SIGTERM) from None


def _die_with_parent() -> None:
    """A spawned rank must not outlive its job: if the parent is killed (even by SIGKILL), the kernel kills it too.
    (Linux only; elsewhere an orphaned rank finishes its units, which a resumed job then reuses.)"""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
