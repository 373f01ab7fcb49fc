"""What a logged model needs installed: the third-party distributions that the specflow code
it bundles imports, found by reading that code (not a hand-kept list), pinned to the versions
installed here."""

from __future__ import annotations

import ast
import importlib.util
import sys
from functools import lru_cache
from importlib.metadata import packages_distributions, version

#: imported only for an optional backend (``model_config={"backend": "onnx"}``): not declared
OPTIONAL = frozenset({"onnxruntime"})


def specflow_closure(module: str) -> tuple[set[str], set[str]]:
    """The specflow modules that importing ``module`` can reach (its packages' ``__init__``
    and every specflow import in their source, including imports inside functions) and the
    top-level names of the other packages they import."""
    seen: set[str] = set()
    external: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # the packages
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for imported in names:
                top = imported.split(".")[0]
                if top == "specflow":
                    if _is_module(imported):
                        todo.append(imported)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    external.add(top)
    return seen, external


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # ``from pkg import function``: not a module
        return False


@lru_cache(maxsize=4)
def pinned_requirements(module: str) -> tuple[str, ...]:
    """``name==version`` of every distribution the specflow code reachable from ``module``
    imports (less :data:`OPTIONAL`), sorted."""
    owners = packages_distributions()
    pins = set()
    for top in specflow_closure(module)[1] - OPTIONAL:
        dists = owners.get(top)
        if not dists:
            raise RuntimeError(f"{module} imports {top!r}, which no installed distribution "
                               "provides: install it, or the logged model cannot load")
        dist = top if top in dists else sorted(dists)[0]
        pins.add(f"{dist}=={version(dist).split('+')[0]}")
    return tuple(sorted(pins))
