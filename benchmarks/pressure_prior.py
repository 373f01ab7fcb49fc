"""Pressure as a prior on where the transition lies, combined with the curves in the decoder.

The corpus of the transition gives, per 0.5 GPa of recorded pressure, how often each phase
occurs (counts smoothed over ±1 GPa, plus one); dividing by the corpus's overall phase
shares gives a likelihood ratio that multiplies the default model's probabilities (fully,
or as its square root) before decoding. "prior only" decodes the prior alone. Zero hand
labels, the same unseen runs as ``network_seeds.py`` (validation seeds 600+), realistic and
shifted. Accuracy and "during" recall: mean ± 1.96 standard errors over runs, and the
paired difference from the default.

    python benchmarks/pressure_prior.py FeO 12
"""

from __future__ import annotations

import argparse

import numpy as np
from corpus_budget import (  # benchmarks/corpus_budget.py, beside this
    unlabelled_runs,
    validation_runs,
)
from network_seeds import candidate_rows  # benchmarks/network_seeds.py, beside this
from scipy.ndimage import gaussian_filter1d

from specflow.learn.classifier import PhaseClassifier
from specflow.learn.decode import DecoderConfig, decode
from specflow.simulator.corpus import CorpusRecipe, build_corpus

BINS = np.arange(0, 60.5, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transition", nargs="?", default="FeO")
    ap.add_argument("runs", nargs="?", type=int, default=12)
    args = ap.parse_args()
    name = args.transition
    corpus = build_corpus(CorpusRecipe.for_transition(name))
    counts = np.stack([np.histogram(corpus.pressure[corpus.label == c], BINS)[0]
                       for c in range(3)], 1).astype(float)
    counts = gaussian_filter1d(counts, 2, axis=0) + 1.0
    prior = counts / counts.sum(1, keepdims=True)
    shares = np.bincount(corpus.label, minlength=3) / len(corpus.label)
    runs = validation_runs(name, args.runs)
    unlabelled = unlabelled_runs(name)
    clf = PhaseClassifier().fit(unlabelled)
    cfg = DecoderConfig(**clf.bundle_["decoder"])

    def candidates(run) -> dict[str, np.ndarray]:
        pressure = run["pressure"].values
        predicted = clf.predict(run)
        probs = predicted["probabilities"].values
        at = prior[np.clip(np.digitize(pressure, BINS) - 1, 0, len(prior) - 1)]
        out = {"default": predicted["label"].values}
        for power, key in ((1.0, "prior^1"), (0.5, "prior^0.5")):
            q = probs * (at / shares) ** power
            out[key] = decode(q / q.sum(1, keepdims=True), pressure, cfg).labels
        out["prior only"] = decode(at, pressure, cfg).labels
        return out

    for kind, rs in runs.items():
        candidate_rows(name, kind, rs, candidates, "default")


if __name__ == "__main__":
    main()
