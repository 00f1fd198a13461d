"""The console scripts end to end, as a user runs them: pretrain, the main job, a multirun sweep with W&B."""

from __future__ import annotations

import csv
import json
import os
import stat
import struct
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lwcompress.api import load_compressed
from lwcompress.jobs import epoch_checkpoint
from lwcompress.loggers import ContinuedCSVLogger
from lwcompress.models import MODELS

from .conftest import TINY, run_cli, run_cli_tty


def test_pretraining_checkpoints_after_every_epoch(tmp_path: Path) -> None:
    """A pretraining killed in epoch k resumes from epoch k, not from scratch: last.ckpt is there after each epoch."""

    class Toy(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx: int) -> torch.Tensor:
            return self.layer(batch).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    seen = []

    class Look(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            seen.append((tmp_path / "last.ckpt").is_file())

    trainer = pl.Trainer(max_epochs=3, callbacks=[epoch_checkpoint(tmp_path), Look()], logger=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(Toy(), torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=4))
    assert seen == [False, True, True] and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_resumed_training_keeps_the_logged_epochs(tmp_path: Path) -> None:
    """A training resumed from last.ckpt appends its epochs to metrics.csv (Lightning's CSV writer deletes the file
    it finds), also when the resumed run logs a metric the first did not."""

    class Toy(pl.LightningModule):
        def __init__(self, extra: bool) -> None:
            super().__init__()
            self.layer, self.extra = torch.nn.Linear(2, 1), extra

        def training_step(self, batch, batch_idx: int) -> torch.Tensor:
            loss = self.layer(batch).pow(2).mean()
            self.log("loss", loss, on_step=False, on_epoch=True)
            if self.extra:
                self.log("extra", 1.0, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=4)
    for epochs, logger_class, extra in [(2, pl.loggers.CSVLogger, False), (4, ContinuedCSVLogger, True)]:
        ckpt = tmp_path / "checkpoints" / "last.ckpt"
        logger = logger_class(str(tmp_path), name="csv", version="")
        trainer = pl.Trainer(max_epochs=epochs, callbacks=[epoch_checkpoint(ckpt.parent)], logger=logger,
                             enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.fit(Toy(extra), data, ckpt_path=str(ckpt) if ckpt.is_file() else None)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [r["extra"] for r in rows[:2]] == ["", ""] and all(float(r["extra"]) == 1 for r in rows[2:])


def test_fp_accuracy_is_evaluated_once_per_weights_and_data(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The FP top-1 is cached under paths.data_dir: a second run with another compressor reuses it."""
    common = [*TINY, f"model.weights={tiny_checkpoint}", "compressor=rtn", f"paths.data_dir={tmp_path / 'data'}",
              "save_model=false"]  # fmt: skip
    summaries, out = [], []
    for i, extra in enumerate([["compressor.wbits=4"], ["compressor.wbits=8"], ["cache=false"]]):
        out.append(run_cli("lwcompress", *common, *extra, f"hydra.run.dir={tmp_path / str(i)}").stdout)
        summaries.append(json.loads((tmp_path / str(i) / "summary.json").read_text()))
    assert [s["fp_cached"] for s in summaries] == [False, True, False]
    assert summaries[0]["fp_top1"] == summaries[1]["fp_top1"] == summaries[2]["fp_top1"]
    assert summaries[1]["fp_eval_wall_s"] == 0 < summaries[0]["fp_eval_wall_s"]
    assert len(list((tmp_path / "data" / "cache" / "fp_top1").glob("*.json"))) == 1
    assert ["FP32 (cached)" in o for o in out] == [False, True, False]


def test_pretrain_writes_checkpoint_with_meta(tiny_checkpoint: Path) -> None:
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    meta = ckpt["meta"]
    assert meta["model"] == "resnet8_tiny" and meta["data"] == "synthetic"
    assert set(meta["normalization"]) == {"mean", "std"} and meta["input_shape"] == [1, 28, 28]
    assert meta["test_top1"] > 30  # 10 classes: well above chance after two epochs
    assert meta["command"].startswith("lwcompress-pretrain ")
    summary = json.loads((tiny_checkpoint.parent / "summary.json").read_text())
    assert summary["config"]["model"]["name"] == "resnet8_tiny"


def test_main_job_end_to_end(tiny_checkpoint: Path, tmp_path: Path) -> None:
    proc = run_cli("lwcompress", *TINY, f"model.weights={tiny_checkpoint}", "compressor.wbits=4",
                   "compressor.abits=4", f"hydra.run.dir={tmp_path}")  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("fp_top1", "top1", "size_bits", "fp_size_bits", "compress_wall_s", "eval_wall_s"):
        assert isinstance(summary[key], int | float), key
    assert summary["config"]["compressor"]["wbits"] == 4
    assert summary["fp_top1"] > 30 and summary["top1"] > 20
    assert summary["size_bits"] < summary["fp_size_bits"] / 3
    rows = list(csv.DictReader((tmp_path / "layers.csv").open()))
    assert len(rows) == 10
    assert [r["wbits"] for r in rows] == ["8"] + ["4"] * 8 + ["8"]  # first and last layer at 8 bits
    assert rows[1]["shape"] == "4x4x3x3" and int(rows[1]["params"]) == 144
    compressed = torch.load(tmp_path / "compressed.pt", weights_only=True)
    assert compressed["meta"]["compressor"]["wbits"] == 4
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert "FP32" in proc.stdout and "rtn W4A4" in proc.stdout


def wandb_records(run: Path) -> dict[str, object]:
    """What an offline W&B run holds, read from its .wandb file (a LevelDB-style log of protobuf records, 32 KiB
    blocks after a 7-byte header): the run record, and the keys of its config, summary and history."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out: dict[str, object] = {"config": set(), "summary": {}, "history": set()}
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf, pos = buf + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or its last fragment
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            kind_name = record.WhichOneof("record_type")
            if kind_name == "run":
                out["run"] = record.run
                out["config"] |= {i.key for i in record.run.config.update}
            elif kind_name == "summary":
                out["summary"].update({i.key: i.value_json for i in record.summary.update if i.key})
            elif kind_name == "history":
                out["history"] |= {i.key or i.nested_key[0] for i in record.history.item}
    return out


def test_multirun_sweep_with_wandb_offline_and_report(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A real Hydra multirun in one process: every job its own run dir, summary and W&B run (grouped by sweep,
    tagged, with the resolved config, top-1 and wall times in its summary, the per-layer table and chart and the
    layer runs' loss curves); `lwcompress-report` turns the sweep into a table and plots without W&B."""
    sweep = run_cli("lwcompress", "-m", *TINY, f"model.weights={tiny_checkpoint}", "compressor.wbits=8,3",
                    "logger=wandb", "layerwise.steps=10", "generator.num_images=32", "save_model=false",
                    f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    # The sweep ends with its table (the report's), one row per method, one column per swept setting.
    table = sweep.stdout[sweep.stdout.index(f"sweep {tmp_path}") :]
    assert "| model | method | FP32 | W8A8 | W3A8 |" in table
    assert "| resnet8_tiny | compressor=quant generator=distilled mode=sequential |" in table
    summaries = {json.loads(p.read_text())["wbits"]: p.parent for p in tmp_path.glob("*/summary.json")}
    assert sorted(summaries) == [3, 8]
    run_ids = set()
    for wbits, job_dir in summaries.items():
        runs = list((job_dir / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{job_dir}: {runs}"
        run_ids.add(runs[0].name.rsplit("-", 1)[-1])
        held = wandb_records(runs[0])
        assert held["run"].run_group == "compress" and held["run"].display_name == f"wbits={wbits}"
        assert list(held["run"].tags) == ["resnet8_tiny", "quant", f"W{wbits}A8", "distilled", "sequential"]
        assert {"model", "compressor", "generator", "layerwise", "seed"} <= held["config"]
        assert {"fp_top1", "rtn_top1", "top1", "compress_wall_s", "rtn_wall_s", "eval_wall_s"} <= set(held["summary"])
        assert json.loads(held["summary"]["top1"]) == json.loads((job_dir / "summary.json").read_text())["top1"]
        assert {"layers/table", "layers/error_table", "layers/loss_curves"} <= held["history"]
        tables = {p.name.split("_")[0] for p in (runs[0] / "files" / "media" / "table" / "layers").glob("*.json")}
        assert {"table", "error", "loss"} <= tables
    assert len(run_ids) == 2
    report = run_cli("lwcompress-report", str(tmp_path), "--by", "compressor.name")
    assert "| resnet8_tiny | compressor=quant |" in report.stdout
    assert (tmp_path / "report.md").is_file() and (tmp_path / "top1_vs_bits.png").stat().st_size > 1000
    # The same sweep dir with another value in the sweep: job 1's dir holds W3, so nothing starts or is rewritten.
    kept = {p: p.read_bytes() for p in [tmp_path / "multirun.yaml", *(tmp_path / "1" / ".hydra").iterdir()]}
    refused = run_cli("lwcompress", "-m", *TINY, f"model.weights={tiny_checkpoint}", "compressor.wbits=8,2",
                      "logger=wandb", "layerwise.steps=10", "generator.num_images=32", "save_model=false",
                      f"hydra.sweep.dir={tmp_path}", check=False)  # fmt: skip
    assert refused.returncode == 2 and f"{tmp_path / '1'} holds a run of another configuration" in refused.stderr
    assert "compressor.wbits: 3 -> 2" in refused.stderr
    assert {p: p.read_bytes() for p in kept} == kept


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["lwcompress", "data=fashion_mnist", "data.root=/nonexistent/fmnist", "data.download=false"],
         "Fashion-MNIST not found in /nonexistent/fmnist (data.download=false)"),
        (["lwcompress", "model=resnet8_tiny", "data=synthetic", "trainer=gpu"], "trainer.accelerator=gpu: no CUDA"),
        (["lwcompress-pretrain", "model=resnet8_tiny", "data=synthetic", "trainer.accelerator=cuda"],
         "trainer.accelerator=cuda: no CUDA"),
    ],
)  # fmt: skip
def test_inputs_the_machine_cannot_honour_fail_in_one_line(argv: list[str], expected: str, tmp_path: Path) -> None:
    """An explicit data.root is used or refused (never swapped for the system copy); an accelerator the machine
    lacks is one line and exit 2, not Lightning's traceback."""
    if "no CUDA" in expected and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli(*argv, "threads=1", f"hydra.run.dir={tmp_path}", check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr


def test_layerwise_job_end_to_end_and_resume(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """compressor=quant through the CLI: RTN beside it, per-layer metrics (synthetic and real), the plot, the layer
    phase's bar on a terminal and its log lines in cli.log; a rerun in the same run dir reuses the stored layers
    (and says so) and gives the same model; a rerun with another configuration is refused, nothing overwritten."""
    args = ["lwcompress", "model=resnet8_tiny", "data=synthetic", "threads=1", f"model.weights={tiny_checkpoint}",
            "compressor=quant", "generator=propagated", "compressor.wbits=4", "compressor.abits=4",
            "layerwise.steps=20", "generator.num_images=32", f"hydra.run.dir={tmp_path}"]  # fmt: skip
    rc, shown = run_cli_tty(*args)  # enable_progress_bar=null: bars on a terminal
    assert rc == 0, shown
    frames = shown.replace("\r", "\n")
    assert "layer 0/10 |" in frames and "layer 10/10 |" in frames and "ETA" in frames
    assert "fc: error" in frames and "Testing DataLoader" in frames
    first = json.loads((tmp_path / "summary.json").read_text())
    assert first["generator"] == "propagated" and isinstance(first["rtn_top1"], float)
    rows = list(csv.DictReader((tmp_path / "layers.csv").open()))
    assert len(rows) == 10 and all(float(r["rtn_error"]) >= 0 and float(r["real_error"]) >= 0 for r in rows)
    assert float(rows[0]["wall_s"]) == 0  # the image-fed conv stays at round-to-nearest (data-free)
    assert (tmp_path / "layers.png").stat().st_size > 0
    assert len(list((tmp_path / "layers").iterdir())) >= 10
    assert "quant W4A4 (propagated)" in shown and "rtn W4A4" in shown
    log = (tmp_path / "cli.log").read_text()
    assert sum(f"] - layer {i}/10 " in log for i in range(1, 11)) == 10 and "quant W4A4 (propagated)" in log

    proc = run_cli(*args)  # not a terminal: no bars, one line about the reused layers
    assert f"resuming: 10 of 10 layers reused from {tmp_path / 'layers'}" in proc.stderr
    assert "layer 0/10 |" not in proc.stderr and "Testing DataLoader" not in proc.stderr
    mask = os.umask(0o022)
    os.umask(mask)
    modes = {p.relative_to(tmp_path): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o666 & ~mask}, modes  # every output readable as a plain open() makes it
    second = json.loads((tmp_path / "summary.json").read_text())
    assert second["top1"] == first["top1"] and second["compress_wall_s"] < first["compress_wall_s"]

    kept = {p: p.read_bytes() for p in [*(tmp_path / ".hydra").iterdir(), tmp_path / "csv" / "metrics.csv"]}
    refused = run_cli(*args, "compressor.wbits=3", check=False)
    assert refused.returncode == 2 and "compressor.wbits: 4 -> 3" in refused.stderr
    assert {p: p.read_bytes() for p in kept} == kept


def test_prune_job_reports_sparsity_and_saves_masks(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """compressor=prune through the CLI: the magnitude baseline beside it, per-layer and total sparsity, masks and
    true zeros in the saved model."""
    proc = run_cli("lwcompress", *TINY, f"model.weights={tiny_checkpoint}", "compressor=prune",
                   "compressor.sparsity=0.6", "layerwise.steps=20", "generator.num_images=32",
                   "real_diagnostics=false", f"hydra.run.dir={tmp_path}")  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = list(csv.DictReader((tmp_path / "layers.csv").open()))
    assert float(rows[0]["sparsity"]) == 0  # the image layer stays dense (first_layer_sparsity=0)
    assert all(abs(float(r["sparsity"]) - 0.6) < 0.01 for r in rows[1:])
    params = [int(r["params"]) for r in rows]
    total = sum(float(r["sparsity"]) * p for r, p in zip(rows, params, strict=True)) / sum(params)
    assert summary["sparsity"] == pytest.approx(total) and isinstance(summary["generate_wall_s"], float)
    saved = load_compressed(tmp_path / "compressed.pt", MODELS.get("resnet8_tiny")(10, 1))
    pruned = [q for q in saved.compressed_layers().values() if q.mask is not None]
    assert len(pruned) == 9 and not any(q.layer.weight[~q.mask].any() for q in pruned)
    assert "prune_magnitude W32A32 60% uniform" in proc.stdout and "prune W32A32 60% uniform (distilled)" in proc.stdout
