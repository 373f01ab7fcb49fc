"""Names of methods and label strategies, in one light module (no torch) that the CLI's
option choices, the evaluation and the pretraining share."""

from __future__ import annotations

SSL_METHODS = ("rrmoco", "rr", "moco", "selftime")
# End-to-end supervised models (METHOD_SPEC §6, specflow.models.supervised): no pretraining,
# every weight trained on the labels. "lstm" reads the curves before each one; "transformer"
# and "convsct" read the whole run (transductive).
SUPERVISED_METHODS = ("cnn", "lstm", "transformer", "fnn", "resnet", "convsc", "convsct",
                      "binned")
TRANSDUCTIVE_METHODS = ("transformer", "convsct")
METHODS = (*SSL_METHODS, "raw", "untrained", *SUPERVISED_METHODS)
LABEL_STRATEGIES = ("even", "stratified", "suggest")
# The default method is the one with the best mean cross-run recall over Fe, FeO and Si in
# docs/benchmarks.md (test seeds; within the intervals of the others, and no pretraining):
# a seeded random ConvSC encoder under the linear probe. The SSL methods stay available.
DEFAULT_METHOD = "untrained"
METHOD_NAMES = {"rrmoco": "SpecRRMoco", "rr": "SpecRR", "moco": "SpecMoco",
                "selftime": "SpecSelfTime", "raw": "raw curves",
                "untrained": "untrained encoder", "reference": "released encoder",
                "pressure": "pressure only", "neighbour": "nearest labelled neighbour",
                "cnn": "CNN", "lstm": "LSTM (past curves)",
                "transformer": "Transformer (transductive)", "fnn": "FNN-1D",
                "resnet": "multi-scale ResNet", "convsc": "ConvSC supervised",
                "convsct": "ConvSCT (transductive)", "binned": "binned FCNN"}
