"""A job over several processes gives the model one process gives; a killed job resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from lwcompress.cli import load_config
from lwcompress.distributed import Ranks, assign, external_launcher, launch
from lwcompress.errors import UserError
from lwcompress.generate import GenerationContext, generator_config, source_images

from .conftest import BIN, TINY, W4A4, run_cli
from .test_compress import calibrated


def codes(run_dir: Path) -> dict[str, torch.Tensor]:
    """The saved model: packed weight codes, and every float tensor (grids, biases) in one vector."""
    return torch.load(run_dir / "compressed.pt", weights_only=True)["state_dict"]


def assert_same_model(a: Path, b: Path) -> None:
    ca, cb = codes(a), codes(b)
    assert ca.keys() == cb.keys() and len(ca["packed.codes"]) > 100
    for k in ca:
        assert torch.equal(ca[k], cb[k]), k
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["top1"] == sb["top1"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        ["layerwise.mode=independent"],
        ["layerwise.segments=3"],
        # cache=false: the second run must distill again (split over its ranks), not reuse the first run's images
        ["generator=distilled", "generator.steps=3", "generator.chunk=8", "layerwise.segments=2", "cache=false"],
        # the example plug-ins (experiments/plugin_example): a generator and a learned rounding
        ["generator=pink_noise", "compressor.rounding=offset_round", "layerwise.segments=2"],
    ],
    ids=["independent", "segments", "distilled", "plugin"],
)
def test_two_processes_give_the_one_process_model(tiny_checkpoint: Path, tmp_path: Path, mode: list[str]) -> None:
    """trainer.devices=2 on CPU (two spawned ranks over gloo, one thread each) vs one process, same seed and the
    same units: bit-identical codes, grids and biases; both ranks ran layers; rank 0 alone wrote the outputs.
    Distilled images: each chunk made once, by one of the ranks, and read by both."""
    common = ["lwcompress", *TINY, f"model.weights={tiny_checkpoint}", *W4A4, "layerwise.steps=15", *mode]
    run_cli(*common, f"hydra.run.dir={tmp_path / 'one'}")
    proc = run_cli(*common, "trainer.devices=2", f"hydra.run.dir={tmp_path / 'two'}")
    assert_same_model(tmp_path / "one", tmp_path / "two")
    ranks = {json.loads(p.read_text())["rank"] for p in (tmp_path / "two" / "layers").glob("*.json") if
             p.name != "FINGERPRINT.json"}  # fmt: skip
    assert ranks == {0, 1}
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2
    assert proc.stdout.count("top1 %") == 1  # one closing table: rank 0's
    if "generator=distilled" in mode:
        (chunks,) = [sorted(p.name for p in d.iterdir()) for d in (tmp_path / "two" / "images").iterdir()]
        assert chunks == ["0.pt", "1.pt", "2.pt", "3.pt"]  # 32 images in chunks of 8, split over the ranks


def test_distilled_chunks_are_made_once_and_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rank distills only its share of the image chunks into the shared dir and reads the others' files."""
    import lwcompress.generate.generators as generators

    made = []
    real_distill = generators.distill_images
    monkeypatch.setattr(generators, "distill_images", lambda m, x, **k: made.append(len(x)) or real_distill(m, x, **k))
    model = calibrated("resnet8_tiny")
    cfg = generator_config("distilled", num_images=24, chunk=8, steps=2, clip=False)  # no pixel range here
    one = source_images(model, cfg, GenerationContext((1, 28, 28), 8))[0]
    assert made == [8, 8, 8]
    made.clear()
    second = GenerationContext((1, 28, 28), 8, shared_dir=tmp_path, ranks=Ranks(rank=1, world_size=2))
    with pytest.raises(Exception, match="cannot read"):  # rank 0's chunks are not there yet (no barrier here)
        source_images(model, cfg, second)
    assert made == [8] * len(assign([1.0] * 3, 2, 1))
    made.clear()
    first = GenerationContext((1, 28, 28), 8, shared_dir=tmp_path, ranks=Ranks(rank=0, world_size=2))
    shared = source_images(model, cfg, first)[0]
    assert made == [8] * len(assign([1.0] * 3, 2, 0))  # its own share only; rank 1's chunks are read
    assert torch.equal(shared, one)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # fmt: skip


def _wait_for_layers(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len([p for p in (run_dir / "layers").glob("*.json") if p.name != "FINGERPRINT.json"]) < n:
        assert proc.poll() is None, "the run ended before it was killed"
        assert time.monotonic() < deadline, "no layers finished in time"
        time.sleep(0.2)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "devices", "plugins"),
    [(signal.SIGKILL, 2, []), (signal.SIGTERM, 1, ["generator=pink_noise", "compressor.rounding=offset_round"])],
)
def test_killed_job_resumes_to_the_uninterrupted_result(
    tiny_checkpoint: Path, tmp_path: Path, sig: signal.Signals, devices: int, plugins: list[str]
) -> None:
    """Killed in the middle of its layer runs, a job fails visibly (never exit 0, no summary.json; SIGTERM lands
    inside a Lightning Trainer, SIGKILL on the parent of two spawned ranks, which must not outlive it); started
    again on the same run dir it reuses the finished layers and ends with the uninterrupted run's model. The
    SIGTERM case runs the example plug-ins' generator and rounding (experiments/plugin_example): they resume alike."""
    common = ["lwcompress", *TINY, f"model.weights={tiny_checkpoint}", *W4A4, "layerwise.steps=150",
              "layerwise.mode=independent", "layerwise.bucket_params=1", f"trainer.devices={devices}",
              *plugins]  # fmt: skip
    killed = tmp_path / "killed"
    proc = _start([*common, f"hydra.run.dir={killed}"], tmp_path / "killed.log")
    _wait_for_layers(killed, 3, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) != 0
    deadline = time.monotonic() + 10
    while _alive(proc.pid) and time.monotonic() < deadline:  # spawned ranks die with their parent
        time.sleep(0.1)
    assert not _alive(proc.pid)
    assert not (killed / "summary.json").exists()
    finished = {p.name: p.read_text() for p in (killed / "layers").glob("*.json")}
    assert 3 <= len(finished) - 1 < 10
    run_cli(*common, f"hydra.run.dir={killed}")
    after = {p.name: p.read_text() for p in (killed / "layers").glob("*.json")}
    assert len(after) == 11 and all(after[name] == text for name, text in finished.items())  # reused, not re-run
    run_cli(*[a for a in common if not a.startswith("trainer.devices")], f"hydra.run.dir={tmp_path / 'whole'}")
    assert_same_model(killed, tmp_path / "whole")


def test_launch_refuses_a_world_that_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLURM (or torchrun) started another number of processes than devices x nodes: one clear line, no hang."""
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "lwcompress")
    assert external_launcher() == ("SLURM", 2)
    with pytest.raises(UserError, match=r"SLURM started 2 processes for trainer.devices=1 x trainer.num_nodes=1"):
        launch(print, devices=1)
    monkeypatch.delenv("SLURM_NTASKS")
    assert external_launcher() is None
    with pytest.raises(UserError, match="needs a launcher that starts its processes"):
        launch(print, devices=1, num_nodes=2)
    assert launch(lambda ranks, x: (ranks.rank, ranks.world_size, x), 7) == (0, 1, 7)  # one process: runs here


def test_segments_belong_to_sequential_runs() -> None:
    with pytest.raises(UserError, match=r"layerwise.segments=2: segments cut a sequential run"):
        load_config(["layerwise.mode=independent", "layerwise.segments=2"])
    assert load_config(["layerwise.segments=4"]).layerwise.segments == 4
