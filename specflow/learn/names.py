"""Names of methods and label strategies, in one light module (no torch) that the CLI's
option choices, the evaluation and the pretraining share."""

from __future__ import annotations

SSL_METHODS = ("rrmoco", "rr", "moco", "selftime")
# End-to-end supervised models (§6, specflow.models.supervised): no pretraining,
# every weight trained on the labels. "lstm" reads the curves before each one; "transformer"
# and "convsct" read the whole run (transductive).
SUPERVISED_METHODS = ("cnn", "lstm", "transformer", "fnn", "resnet", "convsc", "convsct",
                      "binned")
TRANSDUCTIVE_METHODS = ("transformer", "convsct")
METHODS = (*SSL_METHODS, "raw", "untrained", "reference", *SUPERVISED_METHODS)
# Networks trained on a simulated corpus when given one (the others train on labels); "convsc"
# and "convsct" can start from the shipped SSL encoder (SupervisedConfig.init).
CORPUS_NETWORKS = ("cnn", "convsc", "convsct")
LABEL_STRATEGIES = ("even", "stratified", "suggest")
# "auto" resolves when a model is fitted: with a corpus of the transition, the network
# trained on it (DEFAULT_CORPUS_METHOD); without one, the linear probe on the curves
# (DEFAULT_FEW_LABEL_METHOD). Both are the best rows of docs/benchmarks.md for their case.
DEFAULT_METHOD = "auto"
DEFAULT_CORPUS_METHOD = "cnn"
DEFAULT_FEW_LABEL_METHOD = "raw"
METHOD_NAMES = {"rrmoco": "SpecRRMoco", "rr": "SpecRR", "moco": "SpecMoco",
                "selftime": "SpecSelfTime", "raw": "raw curves",
                "untrained": "untrained encoder", "reference": "released encoder",
                "pressure": "pressure only", "neighbour": "nearest labelled neighbour",
                "cnn": "CNN", "lstm": "LSTM (past curves)",
                "transformer": "Transformer (transductive)", "fnn": "FNN-1D",
                "resnet": "multi-scale ResNet", "convsc": "ConvSC supervised",
                "convsct": "ConvSCT (transductive)", "binned": "binned FCNN"}
