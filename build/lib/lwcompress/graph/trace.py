"""Symbolic tracing shared by layer analysis and BN folding."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import fx, nn

from lwcompress.errors import UserError

# Modules that must stay single call_module nodes even when a user subclasses them (the default tracer only
# keeps torch.nn-defined classes as leaves and would inline a user's `class MyConv(nn.Conv2d)` into F.conv2d).
_LEAF_BASES: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.SyncBatchNorm,
)


class _Tracer(fx.Tracer):
    """fx tracer that also keeps subclasses of conv/linear/BN as leaves, if they keep the stock forward."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        for base in _LEAF_BASES:
            if isinstance(m, base) and type(m).forward is base.forward:
                return True
        return super().is_leaf_module(m, module_qualified_name)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block, then restore each one's own flag."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


def trace(model: nn.Module) -> fx.GraphModule:
    """Trace `model` as in eval mode; a model fx cannot trace is a UserError with a one-line reason.

    The returned GraphModule shares its submodules with `model` (no copy), under the same qualified names. A model
    traced already (a GraphModule, e.g. a BN-folded network) is returned as it is: its nodes keep the record of the
    original modules they ran in (`module_path`), which a trace of the GraphModule would lose.
    """
    if isinstance(model, fx.GraphModule):
        return model
    with eval_mode(model):
        try:
            graph = _Tracer().trace(model)
        except Exception as e:  # fx raises TraceError, TypeError, AttributeError, ... depending on the model
            lines = str(e).strip().splitlines()
            reason = lines[0] if lines else type(e).__name__
            raise UserError(f"model {type(model).__name__} is not FX-traceable: {reason}") from e
    return fx.GraphModule(model, graph, type(model).__name__)


def module_path(node: fx.Node) -> list[tuple[str, type]]:
    """(qualified name, class) of the modules a traced node ran inside, outermost first (the model itself aside)."""
    return list(node.meta.get("nn_module_stack", {}).values())


def runs_in(node: fx.Node, name: str) -> bool:
    """Whether `node` is the call of module `name` or an operation inside it."""
    return (node.op == "call_module" and node.target == name) or any(path == name for path, _ in module_path(node))
