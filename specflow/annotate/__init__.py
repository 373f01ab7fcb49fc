"""Annotate: label stored runs with the registered phase model and write the labels to Tiled.

The names below are imported on first use, so that a module of this package that needs
none of them (a catalog query) does not pull in the analyzer, torch and the simulator.
"""

from importlib import import_module

_EXPORTS = {
    "AnnotationError": "analyzer", "AnnotationResult": "analyzer",
    "TiledUnreachable": "analyzer", "annotate": "analyzer", "annotate_run": "analyzer",
    "publish_rule": "analyzer",
    "LoadedModel": "model", "load_model": "model", "parse_model_uri": "model",
    "PhaseRecord": "query", "find_phases": "query", "search": "query",
    "transition_summary": "summary",
    "read_labels": "writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
