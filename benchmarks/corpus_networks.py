"""Train the corpus networks that ship with specflow (``specflow/models/weights``).

For every built-in transition, and for the Fe + FeO pair the demo records, simulate the
default corpus (:class:`~specflow.simulator.corpus.CorpusRecipe`: 120 loadings per transition,
each with no marker, Au or Pt, seeds from 1,000,000 — no benchmark uses them), train the
default network on it (:data:`~specflow.learn.corpus_model.CORPUS_TRAINING`) and copy it
into the package, so that
``PhaseClassifier()`` finds it instead of training. Each training is tracked in MLflow
(experiment ``specflow-corpus``: recipe, settings, loss curve, seconds) when
``--mlflow-uri`` is given.

    python benchmarks/corpus_networks.py                      # all of them (~30 min, 2 processes)
    python benchmarks/corpus_networks.py --transitions Fe Si  # some
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from dataclasses import asdict

from specflow.data.preprocess import Preprocessing
from specflow.learn.corpus_model import (
    CORPUS_TRAINING,
    SHIPPED,
    corpus_network,
    network_name,
)
from specflow.simulator.corpus import build_corpus, cache_dir, recipe_from_text
from specflow.simulator.transitions import TRANSITIONS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", nargs="+", default=[*TRANSITIONS, "Fe+FeO"],
                    help="names; A+B trains one network on both corpora; +Au names a marker")
    ap.add_argument("--mlflow-uri", default=None, help="track each training here")
    ap.add_argument("--no-copy", action="store_true", help="leave the package untouched")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    prep, training = Preprocessing(), CORPUS_TRAINING
    if args.mlflow_uri:
        import mlflow

        mlflow.set_tracking_uri(args.mlflow_uri)
        mlflow.set_experiment("specflow-corpus")
    for name in args.transitions:
        recipe = recipe_from_text(name)
        t0 = time.perf_counter()
        corpus = build_corpus(recipe, prep)
        trained = corpus_network(corpus, training)
        file = network_name(recipe, prep, training)
        print(f"{recipe.name}: {len(corpus)} curves (simulated in {corpus.seconds:.0f} s), "
              f"network trained in {trained.seconds:.0f} s, {file} "
              f"({time.perf_counter() - t0:.0f} s here)", flush=True)
        if args.mlflow_uri:
            with mlflow.start_run(run_name=f"corpus-network-{recipe.name}"):
                mlflow.log_params({f"corpus.{k}": v for k, v in recipe.to_dict().items()})
                mlflow.log_params({f"training.{k}": v for k, v in asdict(training).items()})
                mlflow.log_dict({"recipe": recipe.to_dict(), "training": asdict(training),
                                 "preprocessing": prep.to_dict(), "file": file},
                                "corpus_recipe.json")
                for step, loss in enumerate(trained.history):
                    mlflow.log_metric("loss", loss, step=step)
                mlflow.log_metrics({"train_seconds": trained.seconds,
                                    "corpus_curves": len(corpus),
                                    "corpus_seconds": corpus.seconds})
                mlflow.log_artifact(str(cache_dir() / "networks" / file))
        if not args.no_copy and (cache_dir() / "networks" / file).exists():
            SHIPPED.mkdir(parents=True, exist_ok=True)
            shutil.copy(cache_dir() / "networks" / file, SHIPPED / file)
    index = {p.name: p.stat().st_size for p in sorted(SHIPPED.glob("*.pt"))}
    print(json.dumps(index, indent=1))


if __name__ == "__main__":
    main()
