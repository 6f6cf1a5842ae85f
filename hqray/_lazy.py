"""Names a package exports but loads only on first use.

``import hqray`` and ``hqray --help`` must not pay for torch, PennyLane or Ray (seconds
of start-up) when nothing needs them. A package lists which module defines each public
name; the module is imported the first time the name is read (PEP 562).

**Example** (a package's ``__init__.py``)::

    __getattr__, __dir__ = lazy_exports(__name__, {"hqray.models.modules": ["HybridNet"]})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> tuple[Callable[[str], Any],
                                                                             Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: the package's ``__name__``.
        exports: module path -> the names it defines that the package exports.

    Returns:
        ``(__getattr__, __dir__)`` to assign in the package's ``__init__``.
    """
    origin = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        try:
            module = origin[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later reads skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(origin))

    return __getattr__, __dir__
