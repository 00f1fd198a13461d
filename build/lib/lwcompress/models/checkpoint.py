"""Safe checkpoint I/O: `torch.load(weights_only=True)`, one-line errors, atomic writes.

A checkpoint is {"state_dict": ..., "meta": {...}}; `meta` records what the weights need to be used
correctly later (architecture name, input normalization, input size, accuracy). A bare state dict, as
written by `torch.save(model.state_dict())`, is accepted too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lwcompress import io
from lwcompress.errors import UserError


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any], dtype: torch.dtype | None = None) -> Path:
    """Write the model's state dict with `meta`; floating tensors stored as `dtype` if given (loading casts them back
    to the model's own dtype)."""
    state = model.state_dict()
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return io.torch_save(path, {"state_dict": state, "meta": meta})


@torch.no_grad()
def round_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Round every floating parameter and buffer to the values `dtype` can hold, in place (kept in their own dtype):
    the model then computes exactly what it will after a save in `dtype` and a load."""
    for v in model.state_dict().values():
        if v.is_floating_point():
            v.copy_(v.to(dtype))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict, meta) of a checkpoint file, refusing anything but tensors and plain data."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated / foreign / unsafe files
        raise UserError(_unreadable(path, e)) from None
    if isinstance(obj, dict) and "state_dict" in obj:
        state, meta = obj["state_dict"], obj.get("meta", {})
    else:
        state, meta = obj, {}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path} holds no state dict of tensors")
    return state, meta


def _unreadable(path: Path, e: Exception) -> str:
    """Why a checkpoint cannot be read, in one line, without torch's advice to load it unsafely."""
    pickled = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
    if pickled:
        return (f"checkpoint {path} holds a pickled object ({pickled.group(1)}); safe loading (weights_only=True) "
                "refuses it because unpickling could run code: save the weights instead, "
                "torch.save(model.state_dict(), path) or {'state_dict': ..., 'meta': {...}}")  # fmt: skip
    return f"cannot read checkpoint {path}: corrupt or not a torch file ({type(e).__name__})"


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint into `model` strictly; a state dict that does not fit is a one-line error."""
    state, meta = load_checkpoint(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = sorted(shapes)[0]
            parts.append(f"{len(shapes)} with wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise UserError(f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state)
    return meta


def weights_digest(model: nn.Module) -> str:
    """A cheap fingerprint of a model's weights and buffers: stored layer results and generated images are never
    reused for other weights."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
