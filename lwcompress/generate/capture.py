"""Layer inputs captured from a forward pass of the FP network (real images, or noise with batch-stat BN)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


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
