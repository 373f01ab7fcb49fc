"""The library modules of a command, imported when the command first uses them.

A command module names what it calls as ``analyzer = load("specflow.annotate.analyzer")``
(a :func:`lazy_loader.load` proxy) and calls ``analyzer.annotate(...)`` in the command's
body: building the command for ``specflow <command> --help`` then imports none of torch,
pymatgen, MLflow, pyFAI or Dask. What typer reads while building it (option defaults,
choices, annotations) comes from light modules only (:mod:`specflow.cli.options`,
:mod:`specflow.learn.names`, :mod:`specflow.registry.names`).
"""

from __future__ import annotations

import sys
from types import ModuleType

import lazy_loader


def load(name: str) -> ModuleType:
    """A proxy of module ``name`` that imports it on first attribute access.

    Its parent packages are imported now, which is why lazy_loader warns about submodules;
    specflow's packages are light (their names load on use), so the warning is silenced.
    The proxy is bound in its parent as ``import parent.child`` would bind the module, so
    ``parent.child`` resolves before and after the module loads."""
    module = lazy_loader.load(name, suppress_warning=True)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
