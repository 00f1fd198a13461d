"""Layer inputs captured from a forward pass of the FP network (real images, or noise with batch-stat BN)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lwcompress.graph.trace import runs_in, trace


@torch.no_grad()
def visit_inputs(
    model: nn.Module, names: list[str], images: torch.Tensor, batch_stat_bn: bool, chunk: int,
    visit: Callable[[str, torch.Tensor], None], device: torch.device | str = "cpu",
) -> None:  # fmt: skip
    """Run `images` through a copy of `model` in chunks and hand the input of every module in `names` to `visit`.

    device: where the forward passes run (a GPU for ImageNet-sized models); `visit` gets tensors there.
    batch_stat_bn: every BatchNorm normalizes by the chunk's own statistics instead of its running ones, so each
    BN output has exactly mean beta and std |gamma| per channel (the paper's input model) whatever the images
    are, while spatial and cross-channel correlations come from the network's weights ("propagated" data).
    """
    net = copy.deepcopy(model).eval().to(device)
    if batch_stat_bn:
        for m in net.modules():
            if isinstance(m, _BatchNorm):
                m.train()  # batch statistics; the running statistics of this throwaway copy do not matter

    seen: set[str] = set()

    def hook_for(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            visit(name, args[0])
            seen.add(name)
            if len(seen) == len(names):
                raise _Captured  # the rest of the forward pass would compute nothing we keep

        return hook

    handles = [net.get_submodule(n).register_forward_pre_hook(hook_for(n)) for n in names]
    try:
        for start in range(0, len(images), chunk):
            seen.clear()
            with contextlib.suppress(_Captured):
                net(images[start : start + chunk].to(device))
    finally:
        for h in handles:
            h.remove()


class _Captured(Exception):
    """Every requested input of this chunk has been handed over."""


def capture_inputs(
    model: nn.Module, names: list[str], images: torch.Tensor, batch_stat_bn: bool, chunk: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The input of every module in `names` for all `images` (see `visit_inputs`), run on `device`, kept on the CPU."""
    captured: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    # a copy: later in-place ops of the network must not change what was kept
    keep = lambda n, x: captured[n].append(x.detach().to("cpu", copy=True))  # noqa: E731
    visit_inputs(model, names, images, batch_stat_bn, chunk, keep, device)
    return {n: torch.cat(v) for n, v in captured.items()}


class _Runner(fx.Interpreter):
    """Runs a traced network node by node, with some of its modules replaced (by qualified name)."""

    def __init__(self, gm: fx.GraphModule, replaced: dict[str, nn.Module], device: torch.device | str) -> None:
        super().__init__(gm)
        self.replaced, self.device = replaced, device

    def call_module(self, target, args, kwargs):  # noqa: ANN001, ANN201 (fx's signature)
        if target in self.replaced:
            return self.replaced[target].to(self.device)(*args, **kwargs)
        return super().call_module(target, args, kwargs)


class Stepwise:
    """Forward passes of `images` (in chunks of `chunk`) through `model` that advance only as far as asked: up to
    the call of one module, whose input (all chunks) they return, so the caller can change that module before the
    passes go on. A sequential run then costs one forward pass in all instead of one per layer.

    `replaced` maps qualified names to the modules the passes call instead (the compressed layers); they may change
    between steps, and are moved to `device` as they are called. Values no later node needs are freed."""

    def __init__(
        self, model: nn.Module, images: torch.Tensor, chunk: int, device: torch.device | str = "cpu",
        replaced: dict[str, nn.Module] | None = None,
    ) -> None:  # fmt: skip
        gm = trace(copy.deepcopy(model).eval().to(device))
        self.runners = []
        self.chunks = [images[start : start + chunk].to(device) for start in range(0, len(images), chunk)]
        for x in self.chunks:
            runner = _Runner(gm, replaced or {}, device)
            runner.env, runner.args_iter = {}, iter([x])
            self.runners.append(runner)
        self.nodes = list(gm.graph.nodes)
        self.position = 0

    @torch.no_grad()
    def input_of(self, name: str) -> torch.Tensor:
        """Advance every pass to the first node of module `name` (a leaf's call, or the first operation inside a
        block such as a residual block; not through it) and return that node's input, on the CPU; ValueError if
        the passes are already past it or it is never called."""
        while self.position < len(self.nodes):
            node = self.nodes[self.position]
            if runs_in(node, name):
                return torch.cat([r.env[node.args[0]].detach().cpu() for r in self.runners])
            for r in self.runners:
                r.env[node] = r.run_node(node)
                for dead in r.user_to_last_uses.get(node, []):
                    del r.env[dead]
            self.position += 1
        raise ValueError(f"module {name} is not called after the current step")

    @torch.no_grad()
    def output_with(self, replaced: dict[str, nn.Module]) -> torch.Tensor:
        """The network's output (all chunks, on the CPU) with every pass continued from the current step to the end
        with `replaced` swapped in as well, on copies of the live values: this object stays where it is, so trial
        after trial shares the passes up to here (in-place ops of the rest touch only the copies)."""
        outs = []
        for r, x in zip(self.runners, self.chunks, strict=True):
            trial = _Runner(r.module, {**r.replaced, **replaced}, r.device)
            trial.env = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in r.env.items()}
            trial.args_iter = iter([x])  # for the input placeholder, if the passes have not started
            for node in self.nodes[self.position :]:
                value = trial.run_node(node)
                if node.op == "output":
                    outs.append(value.detach().cpu())
                    break
                trial.env[node] = value
                for dead in trial.user_to_last_uses.get(node, []):
                    del trial.env[dead]
        return torch.cat(outs)
