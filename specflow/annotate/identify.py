"""Identified phases in a run's ``specflow`` block: which library phase each segment shows."""

from __future__ import annotations

from typing import Any

import numpy as np

from specflow.data.schema import PHASE_NAMES

from .writer import read_labels

#: Candidates kept per segment in the metadata.
TOP = 3
SEGMENTS = tuple(PHASE_NAMES.values())


def identified_block(identifier: Any, ds: Any, labels: np.ndarray) -> dict[str, Any]:
    """``specflow.identified`` of a run: for each segment (``before``, ``during``, ``after``
    from the phase model's ``labels``) the best library phase with its formula, space group,
    score, the segment's pressure range and the top candidates — None for a segment the run
    does not have, so a re-annotation replaces every segment (Tiled merges metadata). ``names``
    lists the best phases (a Tiled ``Contains`` query finds runs by exact name), ``elements``
    the sample-chemistry filter used (None: the whole library), ``no_phase_of`` the run's
    elements when the library holds no phase of them (its candidates are guesses). A run the
    identifier cannot read (e.g. outside its Q range) gets ``{"error": ...}`` and keeps its
    phase labels."""
    block: dict[str, Any] = {"library_version": identifier.library_.version,
                             "method": identifier.method, "names": [], "elements": None,
                             **dict.fromkeys(SEGMENTS)}
    try:
        result = identifier.identify_run(ds, labels=labels, top=TOP)
    except ValueError as exc:
        return {**block, "error": str(exc)}
    block["elements"] = result.get("elements")
    block["no_phase_of"] = result.get("no_phase_of")  # candidates are guesses when set
    block["generated"] = bool(result.get("generated"))
    block["library_version"] = result.get("library_version", block["library_version"])
    for segment, ranked in result["segments"].items():
        lo, hi = result["pressure"][segment]
        block[segment] = {**ranked[0], "pressure_min": lo, "pressure_max": hi,
                          "candidates": ranked}
        if ranked[0]["name"] not in block["names"]:
            block["names"].append(ranked[0]["name"])
    return block


def published_labels(run: Any) -> np.ndarray | None:
    """The phase labels of a run's published ``specflow`` node (None when not annotated)."""
    if not (run.metadata.get("specflow") or {}).get("latest"):
        return None
    return read_labels(run)["label"].values
