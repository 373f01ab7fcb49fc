"""SpecRRMoco at the published budget on the multi-transition corpus (hours on a CPU).

The corpus holds ``--runs`` simulated loadings of every built-in transition (the realistic
preset, corpus seeds); pretraining runs the paper's recipe (``PretrainConfig.paper``) for
about ``--steps`` optimiser steps of ``--batch`` curves with ``--views`` views each, and
appends each epoch's losses and seconds to ``OUT/history.jsonl``, a checkpoint per epoch
beside it. The whole training state lives in ``OUT/state.pt``: started again with the same
arguments, a stopped run goes on after its last finished epoch (hours on a CPU need not fit
one sitting). Start it in the background and read the history while it runs:

    nohup python benchmarks/ssl_budget.py --out ssl --threads 2 &
    python benchmarks/ssl_budget.py --out ssl-quick --runs 2 --steps 4 --batch 32   # a check

When it is done, ``OUT/rrmoco_encoder.pt`` is the encoder without the MoCo queue, with the
corpus recipe inside (specflow ships the one it made at
``specflow/models/weights/ssl/rrmoco-10-transitions.pt``). Register it and compare it,
paired, with the other methods under the same heads:

    specflow register-encoder ssl/rrmoco_encoder.pt
    python benchmarks/accuracy.py --methods raw untrained --ssl-checkpoint ssl/rrmoco_encoder.pt
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch

from specflow.learn.data import order_bins
from specflow.learn.pretrain import (
    PretrainConfig,
    pretrain,
    save_checkpoint,
    slim_checkpoint,
)
from specflow.simulator.corpus import CorpusRecipe, build_corpus
from specflow.simulator.transitions import TRANSITIONS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=20, help="loadings per transition")
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    recipe = CorpusRecipe(tuple(TRANSITIONS), runs=args.runs)
    corpus = build_corpus(recipe)
    per_epoch = math.ceil(len(corpus) / args.batch)
    epochs = max(1, math.ceil(args.steps / per_epoch))
    cfg = PretrainConfig.paper(method="rrmoco", epochs=epochs, batch_size=args.batch,
                               n_views=args.views, warmup_epochs=1, device=args.device, seed=0)
    print(f"corpus {len(corpus)} curves ({time.perf_counter() - t0:.0f} s); {epochs} epochs × "
          f"{per_epoch} steps", flush=True)
    state = args.out / "state.pt"
    if state.exists():
        done = len(torch.load(state, weights_only=True)["history"])
        print(f"resuming after epoch {done - 1} from {state}", flush=True)
    described = {"corpus": recipe.to_dict(), "epochs": epochs, "batch": args.batch,
                 "views": args.views}
    (args.out / "recipe.json").write_text(json.dumps(described, indent=1))
    history = (args.out / "history.jsonl").open("a")

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        history.write(json.dumps({"epoch": epoch, **metrics}) + "\n")
        history.flush()
        print(epoch, {k: round(v, 4) for k, v in metrics.items()}, flush=True)

    def on_checkpoint(epoch: int, model: torch.nn.Module) -> None:
        save_checkpoint(args.out / f"rrmoco_epoch{epoch:03d}.pt", model, cfg, corpus.grid)

    targets = order_bins(corpus.run, corpus.order, cfg.tmp_bins)
    result = pretrain(corpus.x, cfg, on_epoch=on_epoch, targets=targets,
                      on_checkpoint=on_checkpoint, state=state)
    result.corpus = described
    slim_checkpoint(result.save(args.out / "rrmoco_final.pt"), args.out / "rrmoco_encoder.pt")
    print(f"done in {(time.perf_counter() - t0) / 3600:.2f} h", flush=True)


if __name__ == "__main__":
    main()
