"""The two jobs behind the console scripts, on checked config dataclasses (no Hydra here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import LightningEnvironment

from lwcompress import io
from lwcompress.api import Runtime, compress
from lwcompress.compress import CompressorConfig
from lwcompress.data import DataConfig, build_data
from lwcompress.distributed import Ranks, check_devices, launch, quiet_srun_hint
from lwcompress.errors import UserError
from lwcompress.eval_cache import FPCache, fp_key
from lwcompress.evaluate import evaluate, size_bits
from lwcompress.generate import DIAGNOSTIC_IMAGES, GENERATORS
from lwcompress.layerwise import layer_trainer
from lwcompress.loggers import build_loggers, finish, log_results
from lwcompress.models import ModelConfig, build_model, save_checkpoint
from lwcompress.models.checkpoint import round_weights, weights_digest
from lwcompress.models.inputs import check_input_size, resolve_normalization
from lwcompress.pretrain import PretrainModule
from lwcompress.progress import LayerDisplay
from lwcompress.report import layer_rows, plot_layer_errors, table, write_csv
from lwcompress.schema import CompressJob, PretrainJob, TrainerConfig

log = logging.getLogger("lwcompress")


def setup_process(seed: int, threads: int) -> None:
    """Seed everything and set torch's thread count deliberately (oversubscribed cores run several x slower)."""
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    # Lightning's info lines (GPU available, tips) drown the summary; real warnings still show.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    pl.seed_everything(seed, workers=True, verbose=False)


def show_bars(cfg: TrainerConfig) -> bool:
    """Progress bars as asked, or (enable_progress_bar=null) when stderr is a terminal."""
    return cfg.enable_progress_bar if cfg.enable_progress_bar is not None else sys.stderr.isatty()


def make_trainer(cfg: TrainerConfig, loggers: list, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        precision=cfg.precision,
        max_epochs=cfg.max_epochs,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        limit_test_batches=cfg.limit_test_batches,
        enable_progress_bar=show_bars(cfg),
        deterministic=cfg.deterministic,
        logger=loggers or False,
        enable_model_summary=False,
        **kwargs,
    )


def single_device(cfg: TrainerConfig) -> TrainerConfig:
    """Evaluation runs in one process on one device: every sample counted exactly once."""
    return dataclasses.replace(cfg, devices=1, num_nodes=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish_checkpoint(src: Path, checkpoint_dir: Path, data: str, model: str, entry: dict[str, Any]) -> Path:
    """Install a trained checkpoint as the reference for (data, model) and record it in MANIFEST.json."""
    dst = io.write_bytes(checkpoint_dir / data / f"{model}.pt", src.read_bytes())
    manifest_path = checkpoint_dir / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[f"{data}/{model}.pt"] = {**entry, "sha256": sha256(dst), "bytes": dst.stat().st_size}
    io.write_json(manifest_path, dict(sorted(manifest.items())))
    return dst


def epoch_checkpoint(ckpt_dir: Path) -> pl.callbacks.ModelCheckpoint:
    """last.ckpt in `ckpt_dir`, rewritten after every epoch: what a killed pretraining resumes from. (save_last with
    save_top_k=0 writes nothing while training runs.)"""
    return pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False)


def run_pretrain(job: PretrainJob, out_dir: Path, command: str) -> dict[str, Any]:
    """Train a reference model; write model.pt and summary.json in the run dir (resumes from last.ckpt)."""
    if job.trainer.devices * job.trainer.num_nodes > 1:
        raise UserError("lwcompress-pretrain trains on one device (trainer.devices=1, trainer.num_nodes=1); the small "
                        "reference models take minutes there")  # fmt: skip
    quiet_srun_hint()
    check_devices(job.trainer.accelerator, job.trainer.devices)
    setup_process(job.seed, job.threads)
    dm, model, _ = model_and_data(job.model, job.data)
    config = asdict(job)
    ckpt_dir = out_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    name = job.logger.run_name or f"pretrain-{job.model.name}"
    loggers = build_loggers(job.logger, out_dir, name, config, continued=last.is_file())
    trainer = make_trainer(job.trainer, loggers, callbacks=[epoch_checkpoint(ckpt_dir)])
    module = PretrainModule(model, job.pretrain)
    start = time.perf_counter()
    model.train()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if last.is_file() else None)
    train_wall_s = time.perf_counter() - start
    dtype = getattr(torch, job.weights_dtype)
    round_weights(model, dtype)
    # The recorded top-1 is the checkpoint's own, in full precision, whatever precision it was trained in.
    eval_trainer = make_trainer(dataclasses.replace(job.trainer, precision="32-true"), loggers)
    val_top1 = evaluate(model, dm.val_dataloader(), eval_trainer, stage="val")
    test_top1 = evaluate(model, dm.test_dataloader(), eval_trainer, stage="test")
    entry = {
        "command": command,
        "seed": job.seed,
        "epochs": job.trainer.max_epochs,
        "val_top1": round(val_top1, 2),
        "test_top1": round(test_top1, 2),
        "train_wall_s": round(train_wall_s, 1),
        "threads": torch.get_num_threads(),
        "precision": job.trainer.precision,
        "weights_dtype": job.weights_dtype,
        "torch": str(torch.__version__),  # TorchVersion is not a plain str: weights_only loading refuses it
    }
    meta = {"model": job.model.name, **dm.describe(), **entry}
    path = save_checkpoint(out_dir / "model.pt", model, meta, dtype)
    if job.publish:
        publish_checkpoint(path, Path(job.paths.checkpoint_dir), job.data.name, job.model.name, entry)
    summary = {**entry, "checkpoint": str(path), "config": config}
    io.write_json(out_dir / "summary.json", summary)
    finish(loggers)
    line = (f"{job.model.name} on {job.data.name}: val top-1 {val_top1:.2f}  test top-1 {test_top1:.2f}  "
            f"({train_wall_s:.0f} s)  -> {path}")  # fmt: skip
    print(line)
    log.info(line)
    return summary


def run_compress(job: CompressJob, out_dir: Path, command: str) -> dict[str, Any] | None:
    """The main job: FP model -> compress -> evaluate; summary.json, layers.csv, layers.png, compressed.pt, a table.

    Runs as `trainer.devices` x `trainer.num_nodes` processes (see `lwcompress.distributed`); returns rank 0's
    summary. With a learned compressor its round-to-nearest start is evaluated beside it (`rtn_top1`), so every
    run shows what the layer-wise runs bought.
    """
    t = job.trainer
    return launch(_compress, job, out_dir, command, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes)


def _compress(ranks: Ranks, job: CompressJob, out_dir: Path, command: str) -> dict[str, Any] | None:
    """One rank of the main job: every rank compresses (its share of the layer runs); rank 0 then evaluates and
    writes the outputs."""
    setup_process(job.seed, job.threads)
    dm, model, model_meta = model_and_data(job.model, job.data)
    input_shape = (dm.in_channels, dm.image_size, dm.image_size)
    uses_generator = job.compressor.learned or job.compressor.act_range == "calibrated"
    # Real images feed generator=real and the per-layer diagnostics of layer-wise runs; nothing else.
    needs_real = (uses_generator and GENERATORS.get(job.generator.name).needs_real) or (
        job.compressor.learned and job.real_diagnostics
    )
    real_images = dm.train_images(job.generator.num_images + DIAGNOSTIC_IMAGES) if needs_real else None
    cache: dict = {}  # generated images, shared by the closed-form start and the run
    gpu = job.trainer.accelerator in ("gpu", "cuda")
    device = torch.device("cuda", ranks.local_rank) if gpu else torch.device("cpu")

    def layer_runs() -> pl.Trainer:
        return layer_trainer(job.trainer.accelerator, job.trainer.precision, ranks.local_rank)

    kept = Path(job.paths.data_dir) / "cache" / "images" if job.cache else None  # distilled images, across runs
    if ranks.is_main:
        log.info(f"{command}: {job.model.name} {job.compressor.name} {job.compressor.label()}, generator "
                 f"{job.generator.name}, {ranks.world_size} process(es) x {torch.get_num_threads()} thread(s); "
                 f"run dir {out_dir}")  # fmt: skip
    display = LayerDisplay(show_bars(job.trainer), str(out_dir / "layers")) if ranks.is_main else None
    runtime = Runtime(
        make_trainer=layer_runs,
        store_dir=out_dir,
        cache=cache,
        image_cache_dir=kept,
        ranks=ranks,
        device=device,
        progress=display,
    )
    compressed = compress(model, job.compressor, dm.normalization, input_shape, job.preconditioner, job.generator,
                          job.layerwise, real_images, runtime)  # fmt: skip
    if compressed is None:  # not rank 0: its layers are in the run dir
        return None
    log.info(f"compressed in {compressed.wall_s:.1f} s (generating inputs {compressed.meta['generate_wall_s']:.1f} s)")

    config = asdict(job)
    c = job.compressor
    tags = [job.model.name, c.name, c.label(), *([job.generator.name, job.layerwise.mode] if uses_generator else []),
            *job.labels.values()]  # fmt: skip
    name = job.logger.run_name or " ".join([*tags, f"seed{job.seed}"])
    loggers = build_loggers(job.logger, out_dir, name, config, tags)
    trainer = make_trainer(single_device(job.trainer), loggers, plugins=[LightningEnvironment()])
    loader = dm.test_dataloader() if job.eval_split == "test" else dm.val_dataloader()
    summary: dict[str, Any] = {
        "model": job.model.name,
        "data": job.data.name,
        "compressor": job.compressor.name,
        "generator": job.generator.name if uses_generator else None,
        "setting": job.compressor.label(),
        "wbits": job.compressor.wbits,
        "abits": job.compressor.abits,
        "eval_split": job.eval_split,
        "world_size": ranks.world_size,
        "fp_size_bits": size_bits(model),
    }
    if "SLURM_JOB_ID" in os.environ:  # which job made it (as scontrol names it), and how often it was requeued
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job_id = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]
        summary.update(slurm_job_id=job_id, slurm_restarts=int(os.environ.get("SLURM_RESTART_COUNT", 0)))
    if job.eval_fp:
        summary["fp_top1"], summary["fp_eval_wall_s"], summary["fp_cached"] = _fp_top1(job, model, dm, loader, trainer)
    else:
        summary["fp_top1"] = None
    learned = compressed.meta["learned"]  # False where layerwise.learn_above kept the closed form: RTN's model
    if learned and job.eval_rtn:
        start = replace(compressed.config, name=job.compressor.closed_form)  # the widths a budget chose, if any
        rtn = compress(model, start, dm.normalization, input_shape, job.preconditioner, job.generator, job.layerwise,
                       real_images, Runtime(cache=cache, image_cache_dir=kept, device=device))  # fmt: skip
        summary["rtn_top1"] = evaluate(rtn.model, loader, trainer, "rtn/", job.eval_split)
        summary["rtn_wall_s"] = rtn.wall_s
    summary["top1"], summary["eval_wall_s"] = _timed(evaluate, compressed.model, loader, trainer, "", job.eval_split)
    if job.compressor.learned and job.eval_rtn and not learned:
        summary["rtn_top1"], summary["rtn_wall_s"] = summary["top1"], compressed.wall_s
    summary.update(generate_wall_s=compressed.meta["generate_wall_s"],
                   generate_reused_s=compressed.meta["generate_reused_s"], size_bits=compressed.size_bits(),
                   sparsity=compressed.sparsity(), compress_wall_s=compressed.wall_s, learned=learned,
                   headroom=compressed.meta.get("headroom"), integer_graph=compressed.meta.get("integer_graph"),
                   command=command,
                   config=config, **{f"guard_{k}": v for k, v in compressed.meta.get("guard", {}).items()})  # fmt: skip
    summary["avg_wbits"], summary["weight_bits"] = compressed.average_wbits(), compressed.weight_bits()
    summary["layer_bits"] = {r.name: {"wbits": r.wbits, "abits": r.abits, "sparsity": round(r.sparsity, 4)}
                             for r in compressed.layers}  # fmt: skip
    allocation = compressed.meta.get("allocation")
    if allocation is not None:
        summary["allocate_wall_s"] = allocation["wall_s"]
        io.write_json(out_dir / "allocation.json", allocation)  # the chosen widths and every measured sensitivity

    rows = layer_rows(compressed.layers, compressed.results)
    log_results(loggers, summary, rows, compressed.results)
    write_csv(out_dir / "layers.csv", rows)
    if compressed.results:
        plot_layer_errors(out_dir / "layers.png", compressed.results,
                          f"{job.model.name} {job.compressor.label()}, generator={job.generator.name}",
                          baseline_name(job.compressor))  # fmt: skip
    if job.save_model:
        summary["checkpoint"] = str(compressed.save(out_dir / "compressed.pt", {"model": job.model.name}))
    io.write_json(out_dir / "summary.json", summary)
    finish(loggers)
    print_summary(summary, job)
    log.info(f"wrote {out_dir / 'summary.json'}")
    return summary


def _fp_top1(
    job: CompressJob, model: torch.nn.Module, dm: Any, loader: Any, trainer: pl.Trainer
) -> tuple[float, float, bool]:
    """(top-1, evaluation seconds, from the cache?) of the FP model: evaluated once per weights, data and split."""
    cache = FPCache(job.paths.data_dir) if job.cache else None
    limit = job.trainer.limit_test_batches if job.eval_split == "test" else job.trainer.limit_val_batches
    key = fp_key(weights_digest(model), asdict(job.data), job.eval_split, dm.normalization, limit)
    hit = cache.get(key) if cache else None
    if hit is not None:
        return float(hit["top1"]), 0.0, True
    top1, wall_s = _timed(evaluate, model, loader, trainer, "fp/", job.eval_split)
    if cache:
        entry = {"top1": top1, "model": job.model.name, "weights": job.model.weights, "data": job.data.name,
                 "split": job.eval_split, "images": len(loader.dataset), "eval_wall_s": round(wall_s, 2)}  # fmt: skip
        cache.put(key, entry)
    return top1, wall_s, False


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


def model_and_data(model_cfg: ModelConfig, data_cfg: DataConfig) -> tuple[Any, torch.nn.Module, dict[str, Any]]:
    """The data module, the model with its weights and checkpoint meta; the images normalized as the model was
    trained (`lwcompress.models.inputs`: declared, recorded, or the data set's) and of the size it takes."""
    dm = build_data(data_cfg)
    model, meta = build_model(model_cfg, dm.num_classes, dm.in_channels)
    check_input_size(model_cfg.input_size, meta, dm.image_size, data_cfg.name)
    norm = resolve_normalization(model_cfg.normalization, meta, dm.normalization, data_cfg.name, dm.in_channels,
                                 model_cfg.weights)  # fmt: skip
    if norm != dm.normalization:
        dm.renormalize(norm)
    return dm, model, meta


def baseline_name(c: CompressorConfig) -> str:
    """What a learned compressor's closed-form start did, in words: "RTN", "magnitude", "magnitude + RTN"."""
    pruned, rounded = c.prunes, c.wbits is not None or c.abits is not None
    return " + ".join([*(["magnitude"] if pruned else []), *(["RTN"] if rounded else [])])


def print_summary(s: dict[str, Any], job: CompressJob) -> None:
    """The closing table: FP, round-to-nearest and the chosen compressor side by side, with their wall times."""
    c = job.compressor
    bits = c.label()
    fp = s["fp_top1"]
    kib = s["size_bits"] / 8 / 1024

    def delta(top1: float) -> float | str:
        return top1 - fp if fp is not None else "-"

    rows = []
    if fp is not None:
        rows.append(["FP32 (cached)" if s.get("fp_cached") else "FP32", fp, 0.0, s["fp_size_bits"] / 8 / 1024, "-"])
    if "rtn_top1" in s:
        rows.append([f"{c.closed_form} {bits}", s["rtn_top1"], delta(s["rtn_top1"]), kib, f"{s['rtn_wall_s']:.2f}"])
    name = f"{c.name} {bits}" + (f" ({job.generator.name})" if s["generator"] else "")
    rows.append([name, s["top1"], delta(s["top1"]), kib, f"{s['compress_wall_s']:.2f}"])
    text = (f"{job.model.name} on {job.data.name} ({s['eval_split']} split), preconditioner {job.preconditioner.name}\n"
            + table(["method", "top1 %", "delta", "size KiB", "compress s"], rows))  # fmt: skip
    print(f"\n{text}")
    log.info(f"results:\n{text}")
