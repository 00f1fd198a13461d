"""Atomic file writes: a killed run never leaves a half-written output behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from lwcompress.errors import UserError


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through a temp file in the target folder, fsync, then rename over the target. The file gets the mode a
    plain open() would give it (0666 less the umask; mkstemp's 0600 would hide results from a teammate)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return _atomic(path, lambda f: f.write(text.encode()))


def write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic(path, lambda f: f.write(data))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_figure(path: str | Path, fig: Any, **savefig: Any) -> Path:
    """A matplotlib figure as PNG (`savefig`: its keyword arguments, e.g. dpi)."""
    return _atomic(path, lambda f: fig.savefig(f, format="png", **savefig))


def torch_save(path: str | Path, obj: Any) -> Path:
    return _atomic(path, lambda f: torch.save(obj, f))


def torch_load(path: str | Path) -> Any:
    """Load tensors written by `torch_save` (weights only: a file can never run code); a one-line error if broken."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
