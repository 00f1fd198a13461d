"""One run dir, one configuration: a rerun into a run dir resumes the run that is there, anything else is refused
before Hydra starts the job (which rewrites `.hydra/` at once, after which the loggers truncate their files).

The configuration a run dir holds is read from the `.hydra/config.yaml` its last job wrote; only the settings that
decide the compressed model are compared (threads, loggers, bars, evaluation switches and where the data files lie
may change between a run and its resumption). A setting the saved configuration lacks (the run was made before
the option existed) matches where the new one holds the option's schema default: options are added at their old
behaviour. The layer store's own fingerprint (weights digest included) stays the last line of defence.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lwcompress.errors import UserError
from lwcompress.eval_cache import LOADER_KEYS
from lwcompress.fields import defaults

# Per job config: the keys whose values decide what a run computes, and the leaves under them that do not.
RESULT_KEYS = {
    "config": ("model", "data", "preconditioner", "generator", "compressor", "layerwise", "seed", "trainer.precision"),
    "pretrain": ("model", "data", "pretrain", "seed", "trainer.precision"),
}
# The data loader's settings (as the FP cache ignores them) and where the files lie.
NEUTRAL = {f"data.{k}" for k in (*LOADER_KEYS, "root", "default_root")}


def _leaves(key: str, value: Any, out: dict[str, Any]) -> None:
    """`value`'s leaves (nested dicts flattened) into `out` as {"<key>.<sub>...": leaf}, NEUTRAL keys left out."""
    if isinstance(value, dict):
        for k, v in value.items():
            _leaves(f"{key}.{k}", v, out)
    elif key not in NEUTRAL:
        out[key] = value


def result_config(cfg: DictConfig, config_name: str) -> dict[str, Any]:
    """The resolved leaves of `cfg` under RESULT_KEYS[config_name], as {"compressor.wbits": 4, ...}."""
    out: dict[str, Any] = {}
    for key in RESULT_KEYS[config_name]:
        node = OmegaConf.select(cfg, key, throw_on_missing=False)
        _leaves(key, OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node, out)
    return out


def schema_defaults(cfg: DictConfig, config_name: str) -> dict[str, Any]:
    """The schema default of every leaf under RESULT_KEYS[config_name] whose node is a structured (dataclass)
    config, keyed as `result_config`'s."""
    out: dict[str, Any] = {}
    for key in RESULT_KEYS[config_name]:
        node = OmegaConf.select(cfg, key, throw_on_missing=False)
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if schema is not None and dataclasses.is_dataclass(schema):
            _leaves(key, defaults(schema), out)
    return out


def check_run_dir(run_dir: str | Path, cfg: DictConfig, config_name: str) -> None:
    """UserError (one line, naming the first differences) if `run_dir` holds a run of another configuration."""
    saved = Path(run_dir) / ".hydra" / "config.yaml"
    if not saved.is_file():
        return
    try:
        old = result_config(OmegaConf.load(saved), config_name)
    except Exception:  # unreadable or unresolvable here: the layer store's fingerprint still guards the layers
        return
    new, default = result_config(cfg, config_name), schema_defaults(cfg, config_name)
    added = {k for k in new.keys() - old.keys() if k in default and default[k] == new[k]}
    changed = [f"{k}: {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}" for k in sorted(old.keys() | new.keys())
               if old.get(k) != new.get(k) and k not in added]  # fmt: skip
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise UserError(f"{run_dir} holds a run of another configuration ({'; '.join(changed[:3])}{more}): choose a "
                        "new run dir (hydra.run.dir / hydra.sweep.dir), or rerun with its settings to resume it; "
                        "nothing was written")  # fmt: skip
