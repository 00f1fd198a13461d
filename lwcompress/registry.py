"""A tiny name -> factory registry, one per config group (models, data, compressors, ...).

A registry with a `base` class also takes classes from outside the package, checked against that base:
- by import path: `get("my_pkg.gen.MyGenerator")` imports and registers the class under that name;
- by entry point: installed distributions announce plug-ins in the `lwcompress.plugins` group
  (`mygen = "my_pkg.gen:MyGenerator"` in their pyproject.toml); each registry takes the ones that subclass its base,
  under the entry point's name, the first time it is asked for a name.
A plug-in that cannot be imported, is not a subclass of the base, leaves one of its abstract methods unimplemented,
or (with a registry's `config`) brings a `config` that does not extend that dataclass is a one-line UserError naming
it. `settings(name, ...)` builds an option's own config.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from lwcompress.errors import UserError

T = TypeVar("T")
PLUGIN_GROUP = "lwcompress.plugins"


class Registry(Generic[T]):
    """Maps names to factories; unknown names fail with the list of allowed ones."""

    def __init__(self, kind: str, base: type | None = None, config: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self.config = config  # the dataclass every class's own `config` must extend (None: classes have none)
        self._items: dict[str, T] = {}
        self._imported: dict[str, T] = {}  # classes asked for by import path: usable, but not listed as choices
        self._plugins: dict[str, str] = {}  # entry-point name -> its value
        self._plugins_loaded = base is None

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        self._load_plugins()
        if name in self._items:
            return self._items[name]
        if self.base is not None and "." in name:
            if name not in self._imported:
                self._imported[name] = self._checked(f"'{name}'", _import(name, self.kind))
            return self._imported[name]
        hint = " (or a class's import path)" if self.base is not None else ""
        raise UserError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}{hint}")

    def settings(self, name: str, **values: Any) -> Any:
        """Option `name`'s settings: its class's own `config` dataclass with `values` over the defaults and `name`
        set; an unknown setting is a one-line UserError that lists the known ones."""
        cls = self.get(name).config
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"{self.kind}={name}: unknown setting {unknown[0]!r}; {cls.__name__} has "
                            f"{', '.join(sorted(known))}")  # fmt: skip
        return cls(name=name, **values)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def plugins(self) -> dict[str, str]:
        """Entry-point plug-ins registered here: name -> where the class lives ("pkg.module:Name")."""
        self._load_plugins()
        return dict(self._plugins)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._items or name in self._imported

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # before loading: a plug-in module may import this registry
        for ep in entry_points(group=PLUGIN_GROUP):
            where = f"plug-in '{ep.name}' ({ep.value}, from {ep.dist.name if ep.dist else 'an unknown package'})"
            try:
                item = ep.load()
            except Exception as e:  # noqa: BLE001 (any failure of foreign code is reported in one line)
                raise UserError(f"{where} cannot be imported: {type(e).__name__}: {e}") from None
            if inspect.isclass(item) and issubclass(item, self.base) and ep.name not in self._items:
                self._items[ep.name] = self._checked(where, item)
                self._plugins[ep.name] = ep.value

    def _checked(self, where: str, item: Any) -> Any:
        """`item` if it is a usable subclass of the base, else a one-line UserError."""
        if not (inspect.isclass(item) and issubclass(item, self.base)):
            raise UserError(f"{self.kind} {where} is not a subclass of {self.base.__module__}."
                            f"{self.base.__qualname__}")  # fmt: skip
        if inspect.isabstract(item):
            missing = ", ".join(sorted(item.__abstractmethods__))
            raise UserError(f"{self.kind} {where} does not implement {missing}")
        own = getattr(item, "config", None)
        if self.config is not None and not (inspect.isclass(own) and issubclass(own, self.config)):
            raise UserError(f"{self.kind} {where}: its `config` must be a dataclass that extends "
                            f"{self.config.__module__}.{self.config.__qualname__}, not {own!r}")  # fmt: skip
        return item


def _import(path: str, kind: str) -> Any:
    """The object at `path` ("pkg.module.Name" or "pkg.module:Name"); a one-line UserError if there is none."""
    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception as e:  # noqa: BLE001 (any failure of foreign code is reported in one line)
        raise UserError(f"{kind} '{path}' cannot be imported: {type(e).__name__}: {e}") from None
