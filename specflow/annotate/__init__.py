"""Annotate: label stored runs with the registered phase model and write the labels to Tiled.

The names below are imported on first use, so that a module of this package that needs
none of them (a catalog query) does not pull in the analyzer, torch and the simulator.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "analyzer": ["AnnotationError", "AnnotationResult", "TiledUnreachable", "annotate",
                 "annotate_run", "publish_rule"],
    "model": ["LoadedModel", "load_model", "parse_model_uri"],
    "query": ["PhaseRecord", "find_phases", "search"],
    "summary": ["transition_summary"],
    "writer": ["read_labels"],
})
