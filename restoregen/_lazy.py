"""Lazy package exports: names load from their submodule on first use, so imports stay cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    ``exports`` maps a public name to the submodule defining it; a name mapped to itself is the
    submodule. Use as ``__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)``.
    """

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{exports[name]}")
        return module if exports[name] == name else getattr(module, name)

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(exports))

    return __getattr__, __dir__


def load_entry(package: str, table: dict, name: str, kind: str):
    """The object that ``table[name]`` (``"module:attribute"`` under ``package``, or a registry entry
    with such a ``target``) names, imported now."""
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    entry = table[name]
    module, attribute = getattr(entry, "target", entry).split(":")
    return getattr(importlib.import_module(f"{package}.{module}"), attribute)
