"""The library modules of a command, imported when the command first uses them.

A command module names what it calls as ``analyzer = load("specflow.annotate.analyzer")``
and calls ``analyzer.annotate(...)`` in the command's body: building the command for
``specflow <command> --help`` then imports none of torch, pymatgen, MLflow, pyFAI or Dask.
What typer reads while building it (option defaults, choices, annotations) comes from light
modules only (:mod:`specflow.cli.options`, :mod:`specflow.learn.names`,
:mod:`specflow.registry.names`).

The handle is not a lazy module in ``sys.modules`` (``importlib.util.LazyLoader``, which
``lazy_loader.load`` uses): code that walks ``sys.modules`` — ``inspect.getmodule`` while
torch imports, for one — would load such a module at an arbitrary moment, even halfway
through importing one of its own imports. The module is imported the normal way, on the
first attribute asked of the handle.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


class Deferred:
    """Module ``name``, imported on the first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


def load(name: str) -> Any:
    """A :class:`Deferred` handle of module ``name`` (typed Any: it answers as the module)."""
    return Deferred(name)
