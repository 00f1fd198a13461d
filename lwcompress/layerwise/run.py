"""One bucket of independent layer reconstruction runs, driven by a Lightning Trainer.

Layers do not depend on each other (inputs and targets come from the FP network), so a bucket is trained as one
LightningModule whose single step takes one optimizer step for every layer in it: the losses touch disjoint
parameters, so this is exactly independent training, with Lightning's per-step overhead paid once per bucket
instead of once per layer (it dominates a tiny layer's step). Manual optimization keeps each layer's backward
separate, which also gives honest per-layer wall times.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightning_fabric.plugins.environments import LightningEnvironment
from torch import nn
from torch.utils.data import DataLoader

from lwcompress.compress.config import CompressorConfig
from lwcompress.compress.modules import CompressedLayer
from lwcompress.generate.inputs import LayerInputs, PairedPool, Pool, layer_stream
from lwcompress.layerwise.config import LayerwiseConfig
from lwcompress.layerwise.refit import refit_survivors
from lwcompress.layerwise.rounding import ROUNDINGS, SolvedRounding, TrainedRounding, trained_rounding

ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6}


@dataclass
class LayerTask:
    """One layer's problem: make `quant` reproduce `reference` (the FP layer) on `inputs`."""

    name: str
    index: int  # position in the model: seeds the layer's random streams
    quant: CompressedLayer
    reference: nn.Module
    inputs: LayerInputs | None  # None until a sequential run captures them
    activation: str | None = None  # applied to output and target for loss=mse_post_act
    real_inputs: torch.Tensor | None = None  # held-out real layer inputs, for diagnostics only
    train: bool = True  # False: keep round-to-nearest, only measure

    @property
    def params(self) -> int:
        return self.quant.layer.weight.numel()


@dataclass(frozen=True)
class Learned:
    """What a layer run learns besides nothing (the compressor's choice): the rounding (a name in
    layerwise.rounding.ROUNDINGS, a class's import path, or "auto"), the weight grid's scale, and the input grid's
    scale."""

    rounding: str = "auto"
    weight_scale: bool = True
    input_scale: bool = False
    gptq_wbits: int = CompressorConfig.auto_gptq_wbits  # "auto": the widest weights GPTQ solves

    def rounding_of(self, q: CompressedLayer) -> str:
        """The rounding this layer gets: `rounding`, except that "auto" solves layers with weights of at most
        `gptq_wbits` bits by GPTQ and learns the rest by AdaRound (float weights are trained directly)."""
        if self.rounding != "auto":
            return self.rounding
        return "gptq" if q.wbits is not None and q.wbits <= self.gptq_wbits else "adaround"


@dataclass
class LayerResult:
    """Per-layer metrics: relative output error (MSE / Var(target)) before (RTN) and after the run."""

    name: str
    rtn_error: float
    error: float
    real_rtn_error: float | None
    real_error: float | None
    reverted: bool
    wall_s: float
    rank: int = 0  # the process of the job that ran it
    losses: list[float] = field(default_factory=list)  # the run's reconstruction loss at every step


def draw(inputs: LayerInputs, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(layer input, input of the FP reference): the same tensor, except in sequential runs (a PairedPool)."""
    x = inputs.sample(n, generator)
    return x if isinstance(x, tuple) else (x, x)


def relative_error(out: torch.Tensor, target: torch.Tensor, loss: str, activation: str | None) -> torch.Tensor:
    """The reconstruction loss: squared error over the target's variance (whole tensor or per channel)."""
    if loss == "mse_post_act" and activation is not None:
        out, target = ACTIVATIONS[activation](out), ACTIVATIONS[activation](target)
    if loss == "mse_channel" and out.ndim > 1:
        dims = [d for d in range(out.ndim) if d != 1]
        return ((out - target).pow(2).mean(dims) / target.var(dims).clamp_min(1e-8)).mean()
    return (out - target).pow(2).mean() / target.var().clamp_min(1e-8)


def param_groups(q: CompressedLayer, cfg: LayerwiseConfig, output_std: float) -> list[dict]:
    """Adam's parameter groups for what a layer run opened in `q`, each at a learning rate in the unit of what it
    moves (see LayerwiseConfig)."""
    # w_scale is the weight's unit: its grid step, or its RMS when it stays float (see CompressedLayer).
    groups = q.rounding.param_groups(q, cfg) if q.rounding is not None else []
    if q.wbits is None and q.layer.weight.requires_grad:  # float weights (pruning alone) train directly
        groups.append({"params": [q.layer.weight], "lr": cfg.lr_weight * float(q.w_scale.detach().mean())})
    if q.abits is not None and q.a_scale.requires_grad:
        groups.append({"params": [q.a_scale], "lr": cfg.lr_scaled * float(q.a_scale.detach())})
    if q.layer.bias is not None and q.layer.bias.requires_grad:
        groups.append({"params": [q.layer.bias], "lr": cfg.lr_scaled * 0.1 * output_std})
    return groups


def optimizer(groups: list[dict], cfg: LayerwiseConfig):  # noqa: ANN201 (Lightning's optimizer config)
    """Adam over `groups`, with the cosine schedule stepped per step unless the schedule is constant."""
    opt = torch.optim.Adam(groups)
    if cfg.schedule == "constant":
        return opt
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def penalty(q: CompressedLayer, cfg: LayerwiseConfig, progress: float, rtn_error: float) -> torch.Tensor | float:
    """What a learning layer pays besides its reconstruction loss at `progress` (0..1) of its run: its learned
    rounding's penalty (AdaRound: the regularizer past its warm-up, the trust region scaled by `rtn_error`)."""
    return q.rounding.penalty(q, cfg, progress, rtn_error) if q.rounding is not None else 0.0


class ReconstructionModule(pl.LightningModule):
    """Trains every CompressedLayer of a bucket to match its reference layer on freshly drawn inputs."""

    def __init__(
        self, tasks: list[LayerTask], cfg: LayerwiseConfig, output_std: list[float], rtn_error: list[float]
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.tasks = tasks
        self.cfg = cfg
        self.output_std = output_std
        self.rtn_error = rtn_error  # each layer's held-out round-to-nearest error: the trust region's scale
        # Registered so that Lightning moves them to the device; the references are frozen.
        self.quants = nn.ModuleList(t.quant for t in tasks)
        self.references = nn.ModuleList(t.reference for t in tasks)
        self.streams = [layer_stream(cfg.seed, t.index) for t in tasks]
        self.wall_s = [0.0] * len(tasks)
        self.losses: list[list[float]] = [[] for _ in tasks]

    def configure_optimizers(self):
        groups = [
            g for t, std in zip(self.tasks, self.output_std, strict=True) for g in param_groups(t.quant, self.cfg, std)
        ]
        return optimizer(groups, self.cfg)

    def training_step(self, batch, batch_idx: int) -> None:
        opt = self.optimizers()
        opt.zero_grad()
        progress = batch_idx / max(1, self.cfg.steps)
        for i, task in enumerate(self.tasks):
            start = time.perf_counter()
            x, x_ref = (t.to(self.device) for t in draw(task.inputs, self.cfg.batch_size, self.streams[i]))
            with torch.no_grad():
                target = task.reference(x_ref)
            loss = relative_error(task.quant(x), target, self.cfg.loss, task.activation)
            self.losses[i].append(float(loss.detach()))
            self.manual_backward(loss + penalty(task.quant, self.cfg, progress, self.rtn_error[i]))
            self.wall_s[i] += time.perf_counter() - start
        opt.step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        # No self.log: its per-step result collection cost more than the steps themselves (~1.7 ms of ~11 ms on
        # resnet20); the loss curves are kept in self.losses and reach the loggers with the results.


def layer_trainer(accelerator: str = "cpu", precision: str = "32-true", device: int = 0) -> pl.Trainer:
    """A Trainer for one bucket of layer runs on one device (`device`: this rank's GPU index), with no logging,
    checkpointing, bars or summaries (Lightning's per-step machinery would otherwise cost more than a small layer's
    step). It never takes the cluster's identity: a rank's layer runs are its own, not a distributed training."""
    devices = [device] if accelerator in ("gpu", "cuda") else 1
    return pl.Trainer(accelerator=accelerator, devices=devices, precision=precision, max_epochs=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      plugins=[LightningEnvironment()])  # fmt: skip


@torch.no_grad()
def held_out_error(task: LayerTask, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor], loss: str) -> float:
    x, x_ref = x if isinstance(x, tuple) else (x, x)
    return float(relative_error(task.quant(x), task.reference(x_ref), loss, task.activation))


def run_bucket(
    tasks: list[LayerTask], cfg: LayerwiseConfig, make_trainer: Callable[[], pl.Trainer], learned: Learned
) -> list[LayerResult]:
    """Reconstruct each layer of the bucket (trained by `make_trainer()`'s Trainer, or solved in closed form where
    its rounding is a SolvedRounding, see Learned.rounding_of); layers that end worse than round-to-nearest are put
    back."""
    held = [draw(t.inputs, cfg.eval_batch, layer_stream(cfg.seed + 1, t.index)) for t in tasks]
    metric = "mse" if cfg.loss == "mse_channel" else cfg.loss
    rtn = [held_out_error(t, x, metric) for t, x in zip(tasks, held, strict=True)]
    real_rtn = [held_out_error(t, t.real_inputs, metric) if t.real_inputs is not None else None for t in tasks]
    initial = [{k: v.clone() for k, v in t.quant.state_dict().items()} for t in tasks]
    with torch.no_grad():
        output_std = [float(t.reference(x_ref).std()) for t, (_, x_ref) in zip(tasks, held, strict=True)]
    trained = [i for i, t in enumerate(tasks) if t.train]
    for i in trained:
        q = tasks[i].quant
        if cfg.refit and q.mask is not None:  # before make_trainable: rounding logits start from the refit weights
            x, x_ref = draw(tasks[i].inputs, cfg.refit_samples, layer_stream(cfg.seed + 2, tasks[i].index))
            with torch.no_grad():
                refit_survivors(q, x, tasks[i].reference(x_ref))
            q.fit_grid()
    names = {i: learned.rounding_of(tasks[i].quant) for i in trained}
    methods = {i: ROUNDINGS.get(name) for i, name in names.items()}
    settings = {i: cfg.rounding_settings(name) for i, name in names.items()}
    solved = [i for i in trained if not methods[i].trained]
    learnt = [i for i in trained if methods[i].trained]
    wall_s = dict(zip(solved, _solve([tasks[i] for i in solved], [methods[i](settings[i]) for i in solved], cfg),
                      strict=True))  # fmt: skip
    losses: dict[int, list[float]] = {}
    if learnt:
        walls, curves = _train([tasks[i] for i in learnt], [trained_rounding(methods[i], settings[i]) for i in learnt],
                               cfg, make_trainer, learned,
                               [output_std[i] for i in learnt], [rtn[i] for i in learnt])  # fmt: skip
        wall_s.update(zip(learnt, walls, strict=True))
        losses.update(zip(learnt, curves, strict=True))
    results = []
    for i, (t, x) in enumerate(zip(tasks, held, strict=True)):
        t.quant.harden()
        t.quant.cpu()
        error = held_out_error(t, x, metric)
        reverted = cfg.keep_better and error > (1 - cfg.min_gain) * rtn[i]
        if reverted:
            t.quant.load_state_dict(initial[i])
            error = rtn[i]
        real = held_out_error(t, t.real_inputs, metric) if t.real_inputs is not None else None
        results.append(LayerResult(t.name, rtn[i], error, real_rtn[i], real, reverted, wall_s.get(i, 0.0),
                                   losses=losses.get(i, [])))  # fmt: skip
    return results


def _train(
    tasks: list[LayerTask], roundings: list[Callable[[CompressedLayer, bool], TrainedRounding]], cfg: LayerwiseConfig,
    make_trainer: Callable[[], pl.Trainer], learned: Learned, output_std: list[float], rtn_error: list[float],
) -> tuple[list[float], list[list[float]]]:  # fmt: skip
    """`cfg.steps` optimizer steps for every layer at once, each learning its rounding; (wall seconds, loss
    curve) per layer."""
    for t, rounding in zip(tasks, roundings, strict=True):
        t.quant.make_trainable(rounding, learned.weight_scale, learned.input_scale, cfg.train_bias, cfg.drop_prob)
    module = ReconstructionModule(tasks, cfg, output_std, rtn_error)
    if cfg.steps > 0 and tasks:
        with warnings.catch_warnings():
            # The frozen references and the inputs' path modules stay in eval mode on purpose.
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
            make_trainer().fit(module, train_dataloaders=DataLoader(range(cfg.steps), batch_size=None))
    return module.wall_s, module.losses


def _solve(tasks: list[LayerTask], roundings: list[SolvedRounding], cfg: LayerwiseConfig) -> list[float]:
    """Closed-form roundings (GPTQ) per layer on the whole captured pool (every position of every image: no crop
    borders), or on `cfg.refit_samples` drawn inputs where the inputs are sampled; wall seconds per layer."""
    wall_s = []
    for t, rounding in zip(tasks, roundings, strict=True):
        start = time.perf_counter()
        if isinstance(t.inputs, Pool):
            ref = t.inputs.reference if isinstance(t.inputs, PairedPool) else None
            x, x_ref = t.inputs.data, t.inputs.data if ref is None else ref
        else:
            x, x_ref = draw(t.inputs, cfg.refit_samples, layer_stream(cfg.seed + 2, t.index))
        rounding.solve(t.quant, x, x_ref, cfg)
        wall_s.append(time.perf_counter() - start)
    return wall_s
