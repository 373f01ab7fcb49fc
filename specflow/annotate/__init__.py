"""Annotate: label stored runs with the registered phase model and write the labels to Tiled."""

from .analyzer import (
    AnnotationError,
    AnnotationResult,
    TiledUnreachable,
    annotate,
    annotate_run,
    publish_rule,
)
from .model import LoadedModel, load_model, parse_model_uri
from .query import PhaseRecord, find_phases, search
from .summary import transition_summary
from .writer import read_labels

__all__ = [
    "AnnotationError",
    "AnnotationResult",
    "LoadedModel",
    "PhaseRecord",
    "TiledUnreachable",
    "annotate",
    "annotate_run",
    "find_phases",
    "load_model",
    "parse_model_uri",
    "publish_rule",
    "read_labels",
    "search",
    "transition_summary",
]
