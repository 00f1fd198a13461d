"""Real SLURM through Hydra's submitit launcher (hydra/launcher=slurm): a sweep of jobs, a job of two tasks, and
jobs requeued in the middle of their layer runs (by `scontrol requeue`, and by the timeout signal submitit turns
into a checkpoint and a requeue). Needs a cluster: CI starts a one-node one with .ci/slurm.sh."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_distributed import TINY, W4A4, _start, _wait_for_layers, assert_same_model


def _cluster_state() -> str | None:
    """Why SLURM tests cannot run here, or None when a node takes jobs."""
    if shutil.which("sbatch") is None:
        return "no SLURM here: sbatch not found (CI starts a one-node cluster with .ci/slurm.sh)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    states = proc.stdout.split()
    if proc.returncode != 0 or not {"idle", "mix", "alloc"} & set(states):
        return f"SLURM has no usable node (sinfo: {proc.stdout.strip() or proc.stderr.strip()}); run .ci/slurm.sh"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_cluster_state() is not None, reason=_cluster_state() or "")]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.timeout_min=5"]


def test_multirun_of_two_jobs_through_sbatch(tiny_checkpoint: Path, tmp_path: Path) -> None:
    run_cli("lwcompress", "-m", *SLURM, *TINY, f"model.weights={tiny_checkpoint}", "compressor=rtn",
            "compressor.wbits=8,4", f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    summaries = [json.loads((tmp_path / str(i) / "summary.json").read_text()) for i in range(2)]
    assert sorted(s["wbits"] for s in summaries) == [4, 8]
    assert len({s["slurm_job_id"] for s in summaries}) == 2  # each its own SLURM job
    assert all((tmp_path / ".submitit" / s["slurm_job_id"]).is_dir() for s in summaries)


def test_two_task_job_shards_its_layers(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """trainer.devices=2 under SLURM: two tasks (srun), ranks from SLURM; both run layers; same model as one
    local process."""
    common = [*TINY, f"model.weights={tiny_checkpoint}", *W4A4, "layerwise.steps=15", "layerwise.mode=independent"]
    run_cli("lwcompress", "-m", *SLURM, *common, "trainer.devices=2", f"hydra.sweep.dir={tmp_path / 'slurm'}")
    job = tmp_path / "slurm" / "0"
    summary = json.loads((job / "summary.json").read_text())
    assert summary["world_size"] == 2
    (submission,) = (tmp_path / "slurm" / ".submitit").glob("*/*_submission.sh")
    assert "#SBATCH --ntasks-per-node=2" in submission.read_text()
    ranks = {json.loads(p.read_text())["rank"] for p in (job / "layers").glob("*.json") if p.stem != "FINGERPRINT"}
    assert ranks == {0, 1}
    run_cli("lwcompress", *common, f"hydra.run.dir={tmp_path / 'local'}")
    assert_same_model(job, tmp_path / "local")


@pytest.mark.parametrize("interrupt", ["scontrol requeue", "timeout signal"])
def test_job_interrupted_in_its_layer_runs_is_requeued_and_finishes_the_same(
    tiny_checkpoint: Path, tmp_path: Path, interrupt: str
) -> None:
    """`scontrol requeue` (what preemption does): SLURM kills and restarts the job, which resumes from its run dir.
    The timeout signal (USR2, sent by SLURM signal_delay_s before the time limit): submitit checkpoints the Hydra
    job and requeues it (hydra.launcher.max_num_timeout > 0). Either way: the finished layers are reused and the
    model is the one an uninterrupted run makes."""
    common = [*TINY, f"model.weights={tiny_checkpoint}", *W4A4, "layerwise.steps=150", "layerwise.mode=independent",
              "layerwise.bucket_params=1"]  # fmt: skip
    sweep = tmp_path / "slurm"
    proc = _start(["lwcompress", "-m", *SLURM, *common, f"hydra.sweep.dir={sweep}"], tmp_path / "sweep.log")
    job = sweep / "0"
    _wait_for_layers(job, 3, proc)
    (job_id,) = [p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)]
    finished = {p.name: p.read_text() for p in (job / "layers").glob("*.json")}
    if interrupt == "scontrol requeue":
        subprocess.run(["scontrol", "requeue", job_id], check=True)
    else:
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    assert proc.wait(timeout=400) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    summary = json.loads((job / "summary.json").read_text())
    assert summary["slurm_job_id"] == job_id and summary["slurm_restarts"] >= 1
    after = {p.name: p.read_text() for p in (job / "layers").glob("*.json")}
    assert len(after) == 11 and all(after[name] == text for name, text in finished.items())
    run_cli("lwcompress", *common, f"hydra.run.dir={tmp_path / 'local'}")
    assert_same_model(job, tmp_path / "local")
