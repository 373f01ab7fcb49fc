"""Names of methods and label strategies, in one light module (no torch) that the CLI's
option choices, the evaluation and the pretraining share."""

from __future__ import annotations

SSL_METHODS = ("rrmoco", "rr", "moco", "selftime")
METHODS = (*SSL_METHODS, "raw", "untrained")
LABEL_STRATEGIES = ("even", "stratified", "suggest")
METHOD_NAMES = {"rrmoco": "SpecRRMoco", "rr": "SpecRR", "moco": "SpecMoco",
                "selftime": "SpecSelfTime", "raw": "raw curves",
                "untrained": "untrained encoder", "reference": "released encoder",
                "pressure": "pressure only", "neighbour": "nearest labelled neighbour"}
